"""Naming a descriptor as a path: ``/proc/self/fd/N``.

The local backend re-opens O_PATH nodes and reaches their inodes through these
magic links.  A sandboxed daemon cannot name ``/proc`` any more: its working
directory is then that very directory, opened before the pivot
(``hostfs.sandbox.namespaces``), and :func:`relative_to_cwd` makes every name
relative to it.
"""

from __future__ import annotations

_prefix = "/proc/self/fd/"


def fd_path(fd: int) -> str:
    """A path that opens the inode behind ``fd`` itself (never resolved through the share)."""
    return f"{_prefix}{fd}"


def fdinfo_path(fd: int) -> str:
    """``/proc/self/fdinfo/N``: the descriptor's position, flags and the locks it owns."""
    return f"/proc/self/fdinfo/{fd}" if _prefix else f"../fdinfo/{fd}"


def fd_directory() -> str:
    """The directory listing this process's descriptors."""
    return _prefix or "."


def relative_to_cwd() -> None:
    """The sandbox made ``/proc/self/fd`` the working directory: name descriptors from there."""
    global _prefix
    _prefix = ""
