"""apt pointed at another Debian suite through its own files, the host's apt untouched.

The host is Debian 12; Debian 13 (trixie) has the newer guest kernel (6.12,
virtio-fs multi-queue) and peers.  A sources list naming only that suite,
its own lists, status and cache under the hostfs cache directory, passed as
``-o Dir::...`` to ``apt-get``/``apt-cache``: packages are still verified
against Debian's signed archive, and nothing the host's apt knows changes.
"""

from __future__ import annotations

from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
#: Debian's archive keyring; bookworm's copy already carries trixie's keys.
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def suite_apt_dir(cache_dir: Path, suite: str) -> Path:
    """The one private apt configuration of ``suite`` under the hostfs cache: the guest
    kernel and the peers from that suite share its package index."""
    return cache_dir / "apt" / suite


def private_apt_options(apt_dir: Path, suite: str) -> list[str]:
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


def has_lists(apt_dir: Path) -> bool:
    """Whether ``apt-get update`` ran here (a Packages index is present)."""
    return any((apt_dir / "state" / "lists").glob("*_Packages*"))
