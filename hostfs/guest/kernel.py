"""Fetch Debian's cloud kernel with apt and unpack it into a cache directory.

Everything the guest runs comes from Debian packages the host's apt already
trusts: ``apt-get download`` verifies the package against the signed
archive index, ``dpkg -x`` unpacks it without installing it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hostfs.guest.errors import GuestError
from hostfs.progress import phase

logger = logging.getLogger(__name__)

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"


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


def resolve_kernel_package(metapackage: str = KERNEL_METAPACKAGE) -> str:
    """The versioned image package the metapackage points at, per ``apt-cache depends``."""
    output = _run(["apt-cache", "depends", metapackage])
    match = re.search(r"^\s*Depends:\s*(linux-image-\S+)", output, re.MULTILINE)
    if match is None:
        raise GuestError(f"apt-cache knows no kernel behind {metapackage} (run apt-get update?)")
    return match.group(1)


def fetch_kernel(package: str | None = None, cache_dir: Path | None = None) -> GuestKernel:
    """Download and unpack ``package`` once; later calls reuse the cached tree."""
    package = package or resolve_kernel_package()
    root = (cache_dir or default_cache_dir()) / "kernels" / package
    if not root.exists():
        with phase(f"guest kernel: downloading {package} (apt-get)"):
            _download_and_unpack(package, root)
    return _locate(package, root)


def _download_and_unpack(package: str, root: Path) -> None:
    """Unpack into a scratch directory, then rename: concurrent callers never see half a tree."""
    root.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s with apt-get", package)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as scratch:
        _run(["apt-get", "download", package], cwd=scratch)
        (deb,) = Path(scratch).glob("*.deb")
        unpacked = Path(scratch) / "root"
        _run(["dpkg-deb", "-x", str(deb), str(unpacked)])
        try:
            unpacked.rename(root)
        except OSError:
            if not root.exists():
                raise
            shutil.rmtree(unpacked)


def _locate(package: str, root: Path) -> GuestKernel:
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    modules = sorted((root / "lib" / "modules").glob("*"))
    if len(vmlinuz) != 1 or len(modules) != 1:
        raise GuestError(f"{root}: expected one vmlinuz and one module tree in {package}")
    return GuestKernel(package, vmlinuz[0], modules[0])


def _run(command: list[str], cwd: str | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise GuestError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout
