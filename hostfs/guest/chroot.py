"""A Debian 13 (trixie) root with QEMU 10.0, built once into the cache, for the newer stack.

QEMU 10 needs trixie's libraries (glib, pixman, ...), too many to run under
trixie's loader as virtiofsd is (:mod:`hostfs.guest.rust_virtiofsd`), so it
runs in a chroot: ``debootstrap --variant=minbase trixie`` (about a minute),
then ``apt-get install qemu-system-x86`` inside.  Every mount the build and
the runs need (proc, dev) is made in a private mount namespace
(``unshare --mount``): it ends with the process, nothing is left mounted on
the host, and the cache directory can be removed at any time.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from hostfs.guest.apt import MIRROR
from hostfs.guest.errors import GuestError
from hostfs.guest.kernel import default_cache_dir, run_checked
from hostfs.progress import phase

logger = logging.getLogger(__name__)

SUITE = "trixie"
PACKAGES = ("qemu-system-x86",)
"""QEMU 10.0 and its firmware (SeaBIOS); ``--no-install-recommends`` as in peers.md."""
READY = ".hostfs-ready"
"""Written last: a root without it is a build that did not finish."""
QEMU_IN_ROOT = "/usr/bin/qemu-system-x86_64"


def fetch_trixie_root(cache_dir: Path | None = None) -> Path:
    """The cached trixie root with QEMU installed; built on first use."""
    base = (cache_dir or default_cache_dir()) / "chroots"
    root = base / SUITE
    if (root / READY).exists():
        return root
    if shutil.which("debootstrap") is None:
        raise GuestError("debootstrap is not installed (scripts/setup installs it)")
    base.mkdir(parents=True, exist_ok=True)
    with (
        phase(f"building a {SUITE} root for QEMU 10 (debootstrap, about a minute)"),
        tempfile.TemporaryDirectory(dir=base, prefix=".build-") as scratch,
    ):
        target = Path(scratch) / "root"
        logger.info("building a %s root for QEMU 10 in %s (about a minute)", SUITE, target)
        run_checked(
            [*private_mounts(), "debootstrap", "--variant=minbase", SUITE, str(target), MIRROR]
        )
        install = "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
        run_checked(in_root(target, ["sh", "-c", install + " ".join(PACKAGES)]))
        (target / READY).touch()
        try:
            target.rename(root)
        except OSError:
            if not (root / READY).exists():
                raise
    return root


def private_mounts() -> list[str]:
    """Run the rest of the command in a mount namespace of its own."""
    return ["unshare", "--mount", "--propagation", "private", "--"]


def in_root(root: Path, command: list[str]) -> list[str]:
    """``command`` run inside ``root`` with /proc and /dev, mounted privately for it."""
    mounts = 'mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && exec chroot "$@"'
    return [*private_mounts(), "sh", "-c", mounts, "sh", str(root), *command]
