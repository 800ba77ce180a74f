"""Rust virtiofsd 1.13 from Debian trixie, run on bookworm without a chroot.

The trixie binary needs glibc 2.39 (bookworm has 2.36), so it runs under
trixie's own loader with trixie's libraries: ``apt-get download`` them from a
private apt configuration (its own sources list, state and cache under the
hostfs cache directory, so the host's apt is untouched), ``dpkg-deb -x`` them
into one tree, and start ``ld-linux`` with ``--library-path`` pointing there.
"""

from __future__ import annotations

from pathlib import Path

from hostfs.guest.kernel import default_cache_dir, download_and_unpack, run_checked

SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
#: Debian's archive keyring; bookworm's copy already carries trixie's keys.
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: virtiofsd and what ``ldd`` shows it needs from trixie.
PACKAGES = ["virtiofsd", "libc6", "libseccomp2", "libcap-ng0", "libgcc-s1"]
LIBDIR = "usr/lib/x86_64-linux-gnu"


def private_apt_options(apt_dir: Path, suite: str = SUITE) -> list[str]:
    """``-o`` options that make apt read ``suite`` from its own files under ``apt_dir``."""
    sources = apt_dir / "sources.list"
    if not sources.exists():
        apt_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("state/lists/partial", "cache/archives/partial"):
            (apt_dir / sub).mkdir(parents=True, exist_ok=True)
        (apt_dir / "status").touch()
        sources.write_text(f"deb [signed-by={KEYRING}] {MIRROR} {suite} main\n")
    return [
        "-o", f"Dir::Etc::SourceList={sources}",
        "-o", "Dir::Etc::SourceParts=-",
        "-o", f"Dir::State={apt_dir / 'state'}",
        "-o", f"Dir::State::status={apt_dir / 'status'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", "APT::Sandbox::User=root",
        "-o", "Debug::NoLocking=1",
    ]  # fmt: skip


def fetch_rust_virtiofsd(cache_dir: Path | None = None) -> list[str]:
    """The command prefix that runs trixie's virtiofsd; downloads it once into the cache."""
    base = (cache_dir or default_cache_dir()) / "rust-virtiofsd"
    root = base / SUITE
    if not (root / "usr/libexec/virtiofsd").exists():
        options = private_apt_options(base / "apt")
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
