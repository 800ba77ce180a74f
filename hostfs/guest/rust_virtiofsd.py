"""Rust virtiofsd 1.13 from Debian trixie, run on bookworm without a chroot.

The trixie binary needs glibc 2.39 (bookworm has 2.36), so it runs under
trixie's own loader with trixie's libraries: ``apt-get download`` them from a
private apt configuration (its own sources list, state and cache under the
hostfs cache directory, shared with the trixie guest kernel; the host's apt is
untouched), ``dpkg-deb -x`` them into one tree, and start ``ld-linux`` with
``--library-path`` pointing there.
"""

from __future__ import annotations

from pathlib import Path

from hostfs.guest.apt import private_apt_options, suite_apt_dir
from hostfs.guest.kernel import default_cache_dir, download_and_unpack, run_checked

SUITE = "trixie"
#: virtiofsd and what ``ldd`` shows it needs from trixie.
PACKAGES = ["virtiofsd", "libc6", "libseccomp2", "libcap-ng0", "libgcc-s1"]
LIBDIR = "usr/lib/x86_64-linux-gnu"


def fetch_rust_virtiofsd(cache_dir: Path | None = None) -> list[str]:
    """The command prefix that runs trixie's virtiofsd; downloads it once into the cache."""
    cache_dir = cache_dir or default_cache_dir()
    root = cache_dir / "rust-virtiofsd" / SUITE
    if not (root / "usr/libexec/virtiofsd").exists():
        options = private_apt_options(suite_apt_dir(cache_dir, SUITE), SUITE)
        run_checked(["apt-get", *options, "update", "-qq"])
        download_and_unpack(PACKAGES, root, options)
    return rust_virtiofsd_command(root)


def rust_virtiofsd_command(root: Path) -> list[str]:
    """``[loader, --library-path, libdir, virtiofsd]`` for an unpacked tree at ``root``."""
    libdir = root / LIBDIR
    return [
        str(libdir / "ld-linux-x86-64.so.2"),
        "--library-path",
        str(libdir),
        str(root / "usr/libexec/virtiofsd"),
    ]
