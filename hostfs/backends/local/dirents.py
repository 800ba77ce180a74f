"""getdents64(2) into a reusable buffer, and the entries it holds, decoded one at a time.

A directory is read the way virtiofsd's ``do_readdir`` reads it: lseek to the
guest's offset, one getdents64, and each entry's ``d_off`` becomes its FUSE
offset, so nothing but the open directory fd lives between two READDIRs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterator

from hostfs.core.types import DirEntry

_libc = ctypes.CDLL(None, use_errno=True)
_libc.getdents64.restype = ctypes.c_ssize_t
_libc.getdents64.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]

_DIRENT64 = struct.Struct("=QqHB")
"""``struct linux_dirent64`` (getdents64(2)): d_ino u64, d_off s64, d_reclen u16,
d_type u8; ``d_name`` follows, NUL-terminated, padded to ``d_reclen``."""

FIRST_READ = 4096
"""The first getdents64 of a READDIR asks for at most one page: the kernel's FUSE
READDIR request is at least a page, and a linux_dirent64 is never larger
than the fuse_dirent it becomes, so one page of host entries fills a page of reply."""
LARGEST_READ = 32768
"""Later getdents64 calls of the same READDIR double up to 32 KiB, the buffer
glibc's readdir uses (the kernel asks for up to the caller's getdents size)."""

_U64 = 1 << 64


def to_fuse_offset(d_off: int) -> int:
    """FUSE offsets are u64 (fuse_dirent.off); d_off is loff_t: the same bits."""
    return d_off % _U64


def to_seek_offset(offset: int) -> int:
    """The loff_t that lseek(2) takes for a guest's u64 offset (the bits, as virtiofsd casts)."""
    if not 0 <= offset < _U64:
        raise OSError(errno.EINVAL, f"readdir offset {offset} out of range")
    return offset - _U64 if offset >= 1 << 63 else offset


class Buffer:
    """One getdents64 buffer per backend: a stream keeps no bytes between READDIRs."""

    def __init__(self, size: int = LARGEST_READ) -> None:
        self._raw = ctypes.create_string_buffer(size)
        self.size = size

    def read(self, fd: int, size: int) -> bytes:
        """One getdents64 of at most ``size`` bytes; b"" at the end of the directory.

        The bytes are copied out so that a READDIR that waits part-way (a lookup)
        keeps its entries while another READDIR reuses the buffer.
        """
        count = _libc.getdents64(fd, self._raw, min(size, self.size))
        if count < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"getdents64: {os.strerror(code)}")
        return ctypes.string_at(self._raw, count)


def first_read(wanted: int) -> int:
    """The size of a READDIR's first getdents64: what the stream's last READDIR took
    (a reply takes as many entries again, and taking all it reads spares the next
    READDIR an lseek), at least 1 KiB (a linux_dirent64 is at most 280 bytes), at
    most FIRST_READ; further reads of the same READDIR double."""
    return max(1024, min(wanted, FIRST_READ))


def entries(data: bytes) -> Iterator[tuple[DirEntry, int, int]]:
    """Each entry of one getdents64 result with its d_off and d_reclen, decoded only
    when asked for."""
    position, end = 0, len(data)
    unpack = _DIRENT64.unpack_from
    while position + _DIRENT64.size < end:
        ino, d_off, reclen, dtype = unpack(data, position)
        after = position + reclen
        if reclen <= _DIRENT64.size or after > end:
            return  # the kernel never writes this; stop rather than loop or overrun
        # d_name ends at its NUL; the padding after it is whatever the buffer held.
        name_at = position + _DIRENT64.size
        name_end = data.find(b"\0", name_at, after)
        name = data[name_at : name_end if name_end >= 0 else after]
        yield DirEntry(name, ino, dtype), d_off, reclen
        position = after
