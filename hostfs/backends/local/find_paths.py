"""Find inodes in the shared tree by walking it: migration's fallback for a node's path.

``/proc/self/fd/N`` names an inode by the dentry its fd was opened through; an fd
opened from a file handle of a file whose dentry left the cache gets a
disconnected one, which names no path below the share.  Such nodes are found by
walking the share from its root (what virtiofsd's ``--migration-mode find-paths``
does for every node), stopping as soon as all are found.

The walk never follows a symlink (``O_NOFOLLOW`` on every directory it enters,
each one component below an fd it holds), holds one fd per level, stops at
:data:`MAX_DEPTH` levels and :data:`MAX_ENTRIES` entries, and confirms every match:
(st_dev, st_ino) alone for an inode whose fd pins it, the file handle as well for
one known by handle (an inode number can be reused once its file is gone).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from hostfs.backends.local import file_handles
from hostfs.backends.local.file_handles import FileHandle

MAX_DEPTH = 32
"""Directory levels below the share searched: one fd each, within the 64 fds the budget
keeps spare (fd_budget.py)."""

MAX_ENTRIES = 1 << 20
"""Directory entries read at most: a bound on the time a save may spend (~1 s here)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Key = tuple[int, int]


def find_paths(
    root_fd: int,
    wanted: dict[Key, FileHandle | None],
    *,
    max_depth: int = MAX_DEPTH,
    max_entries: int = MAX_ENTRIES,
) -> dict[Key, bytes]:
    """Paths relative to ``root_fd`` of the inodes ``wanted`` (key -> its handle, None for
    a pinned inode); those not found within the bounds are missing."""
    found: dict[Key, bytes] = {}
    if not wanted:
        return found
    budget = [max_entries]
    top = os.open(".", _DIR_FLAGS, dir_fd=root_fd)
    try:
        _walk(top, os.fstat(top).st_dev, b"", wanted, found, max_depth, budget)
    finally:
        os.close(top)
    return found


def _walk(
    fd: int,
    dev: int,
    prefix: bytes,
    wanted: dict[Key, FileHandle | None],
    found: dict[Key, bytes],
    depth: int,
    budget: list[int],
) -> None:
    for name, ino, is_dir in _entries(fd, budget):
        if len(found) == len(wanted):
            return
        path = prefix + name
        child = -1
        if is_dir:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # gone, or no longer a directory
        try:
            key = (dev, ino)
            if child >= 0:
                st = os.fstat(child)
                key = (st.st_dev, st.st_ino)  # a mount point: the mounted root
            if key in wanted and key not in found and _confirmed(fd, name, wanted[key]):
                found[key] = path
            if child >= 0 and depth > 1:
                _walk(child, key[0], path + b"/", wanted, found, depth - 1, budget)
        finally:
            if child >= 0:
                os.close(child)


def _entries(fd: int, budget: list[int]) -> Iterator[tuple[bytes, int, bool]]:
    """(name, inode, is a directory) of each entry, within the entry budget."""
    try:
        scan = os.scandir(fd)
    except OSError:
        return
    with scan:
        for entry in scan:
            budget[0] -= 1
            if budget[0] < 0:
                return
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            yield os.fsencode(entry.name), entry.inode(), is_dir


def _confirmed(parent: int, name: bytes, handle: FileHandle | None) -> bool:
    if handle is None:
        return True
    try:
        return file_handles.name_to_handle(parent, name) == handle
    except OSError:
        return False
