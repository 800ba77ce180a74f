"""File handles: naming an inode without holding a descriptor on it.

``name_to_handle_at(2)`` turns an fd into an opaque handle (the file system's
own, as an NFS server exports: inode number and generation), and
``open_by_handle_at(2)`` turns it back into an fd, given any fd on the same
mount. virtiofsd's ``--inode-file-handles`` keeps such a handle per inode
instead of an O_PATH fd, so a guest may hold more inodes than RLIMIT_NOFILE.
The handle never leaves the host: the guest sees nodeids only.
"""

from __future__ import annotations

import ctypes
import os
from typing import NamedTuple

from hostfs.backends.local.syscalls import AT_EMPTY_PATH
from hostfs.core.types import build

MODES = ("never", "prefer", "mandatory")
"""virtiofsd's ``--inode-file-handles``: never (every inode pins an O_PATH fd),
prefer (a handle where the file system has them, an O_PATH fd elsewhere),
mandatory (a handle always; refuse to start where there are none)."""

DEFAULT_MODE = "prefer"
"""virtiofsd 1.13.3's default. A repeat lookup of a held node stays as cheap as with
pinned fds for the nodes in use (inodes.py keeps a bounded LRU of their fds open)."""

MAX_HANDLE_SZ = 128
"""linux/exportfs.h: the largest handle any file system returns."""

_libc = ctypes.CDLL(None, use_errno=True)
_name_to_handle_at = _libc.name_to_handle_at
_open_by_handle_at = _libc.open_by_handle_at
"""Resolved at import: the sandboxed daemon imports its modules before the pivot."""


class _FileHandleStruct(ctypes.Structure):
    """struct file_handle (name_to_handle_at(2)), with room for the largest handle."""

    _fields_ = [
        ("handle_bytes", ctypes.c_uint),
        ("handle_type", ctypes.c_int),
        ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ),
    ]


class FileHandle(NamedTuple):
    """An inode as its file system names it; equal handles are the same inode, and
    a handle outlives no inode (a reused inode number gets a new generation)."""

    mount_id: int
    type: int
    data: bytes


def _raise(what: str) -> None:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}")


def name_to_handle(fd: int, name: bytes = b"") -> FileHandle:
    """The handle of the inode ``fd`` stands for (an O_PATH fd: a symlink itself), or
    of ``name`` in the directory ``fd`` (one component; a final symlink not followed).

    EOPNOTSUPP where the file system cannot export its inodes (ramfs, procfs,
    overlayfs without ``nfs_export``...).
    """
    handle = _FileHandleStruct(MAX_HANDLE_SZ, 0)
    mount_id = ctypes.c_int()
    # No AT_SYMLINK_NOFOLLOW: name_to_handle_at(2) never follows a final symlink
    # unless given AT_SYMLINK_FOLLOW, and answers EINVAL to any other flag.
    flags = 0 if name else AT_EMPTY_PATH
    if _name_to_handle_at(fd, name, ctypes.byref(handle), ctypes.byref(mount_id), flags):
        _raise("name_to_handle_at")
    # The array's buffer, then a slice: slicing the ctypes array itself makes a list of ints.
    data = bytes(handle.f_handle)[: handle.handle_bytes]
    return build(FileHandle, (mount_id.value, handle.handle_type, data))


def open_by_handle(mount_fd: int, handle: FileHandle, flags: int) -> int:
    """A new fd on the inode ``handle`` names; ``mount_fd`` is any fd on its mount.

    Needs CAP_DAC_READ_SEARCH (EPERM without it); ESTALE once the inode is gone.
    """
    raw = _FileHandleStruct(len(handle.data), handle.type)
    ctypes.memmove(raw.f_handle, handle.data, len(handle.data))
    fd: int = _open_by_handle_at(mount_fd, ctypes.byref(raw), flags)
    if fd < 0:
        _raise("open_by_handle_at")
    return fd
