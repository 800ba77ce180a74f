"""Fetch Debian's cloud kernel with apt and unpack it into a cache directory.

Everything the guest runs comes from Debian packages the host's apt already
trusts: ``apt-get download`` verifies the package against the signed
archive index, ``dpkg -x`` unpacks it without installing it.  The host's own
suite (bookworm: Linux 6.1) comes through the host's apt; another suite
(trixie: Linux 6.12, the first Debian kernel whose virtio-fs driver uses
several request queues, Linux >= 6.11) through a private apt configuration
(:mod:`hostfs.guest.apt`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hostfs.guest.apt import has_lists, private_apt_options, suite_apt_dir
from hostfs.guest.errors import GuestError
from hostfs.progress import phase

logger = logging.getLogger(__name__)

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
MODULE_ROOTS = ("lib/modules", "usr/lib/modules")
"""Where a kernel package keeps its module tree: bookworm's, and trixie's merged /usr."""


@dataclass(frozen=True, slots=True)
class GuestKernel:
    """An unpacked kernel package: the boot image and its module tree."""

    package: str
    vmlinuz: Path
    modules_dir: Path

    @property
    def release(self) -> str:
        return self.modules_dir.name


def default_cache_dir() -> Path:
    """``$HOSTFS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hostfs``, else ``~/.cache/hostfs``."""
    explicit = os.environ.get("HOSTFS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hostfs"


def resolve_kernel_package(
    metapackage: str = KERNEL_METAPACKAGE, apt_options: Sequence[str] = ()
) -> str:
    """The versioned image package the metapackage points at, per ``apt-cache depends``."""
    output = run_checked(["apt-cache", *apt_options, "depends", metapackage])
    match = re.search(r"^\s*Depends:\s*(linux-image-\S+)", output, re.MULTILINE)
    if match is None:
        raise GuestError(f"apt-cache knows no kernel behind {metapackage} (run apt-get update?)")
    return match.group(1)


def fetch_kernel(
    package: str | None = None, cache_dir: Path | None = None, suite: str | None = None
) -> GuestKernel:
    """Download and unpack ``package`` once; later calls reuse the cached tree.

    ``suite`` (e.g. ``trixie``) takes the kernel from that Debian suite instead of the
    host's; its package index is fetched once and refreshed only to download.
    """
    cache_dir = cache_dir or default_cache_dir()
    if suite is None:
        package = package or resolve_kernel_package()
        root = cache_dir / "kernels" / package
        if not root.exists():
            download_and_unpack([package], root)
        return _locate(package, root)
    apt_dir = suite_apt_dir(cache_dir, suite)
    options = private_apt_options(apt_dir, suite)
    fresh_index = not has_lists(apt_dir)
    if fresh_index:
        run_checked(["apt-get", *options, "update", "-qq"])
    resolved = package or resolve_kernel_package(apt_options=options)
    root = cache_dir / "kernels" / resolved
    if not root.exists() and not fresh_index:
        # An older index may name a version the mirror no longer has: refresh it first.
        run_checked(["apt-get", *options, "update", "-qq"])
        resolved = package or resolve_kernel_package(apt_options=options)
        root = cache_dir / "kernels" / resolved
    if not root.exists():
        download_and_unpack([resolved], root, options)
    return _locate(resolved, root)


def download_and_unpack(packages: list[str], root: Path, apt_options: Sequence[str] = ()) -> None:
    """``apt-get download`` each package and ``dpkg-deb -x`` all of them into ``root``.

    Unpacks into a scratch directory, then renames: concurrent callers never see
    half a tree. ``apt_options`` (``-o Dir::...``) point apt at another archive.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s with apt-get", " ".join(packages))
    with (
        phase(f"downloading {' '.join(packages)} (apt-get)"),
        tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as scratch,
    ):
        run_checked(["apt-get", *apt_options, "download", *packages], cwd=scratch)
        unpacked = Path(scratch) / "root"
        debs = sorted(Path(scratch).glob("*.deb"))
        if len(debs) != len(packages):
            raise GuestError(f"apt-get download {' '.join(packages)} gave {len(debs)} packages")
        for deb in debs:
            run_checked(["dpkg-deb", "-x", str(deb), str(unpacked)])
        try:
            unpacked.rename(root)
        except OSError:
            if not root.exists():
                raise
            shutil.rmtree(unpacked)


def _locate(package: str, root: Path) -> GuestKernel:
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    modules = sorted(tree for where in MODULE_ROOTS for tree in (root / where).glob("*"))
    if len(vmlinuz) != 1 or len(modules) != 1:
        raise GuestError(f"{root}: expected one vmlinuz and one module tree in {package}")
    return GuestKernel(package, vmlinuz[0], modules[0])


def run_checked(command: list[str], cwd: str | None = None) -> str:
    """Run ``command``; its stdout, or a :class:`GuestError` with its stderr."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise GuestError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout
