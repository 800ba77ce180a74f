"""The kernel's side of the FUSE wire: build requests, split replies (bytes only, no I/O).

The one place the test side frames FUSE: :class:`~hostfs.testing.GuestFuseClient`,
the benchmark workloads and the tests build ``fuse_in_header`` and read
``fuse_out_header`` and ``fuse_dirent`` here.  Layouts are ``hostfs.fuse.abi``'s
(fuse.h); the defaults of :func:`request` are an ordinary user's, as a test wants.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

from hostfs.fuse import abi

_uniques = itertools.count(2, 2)
"""Uniques for requests that name none: even, as the kernel's (fuse_get_unique)."""


def in_header(
    length: int,
    opcode: int,
    unique: int,
    nodeid: int,
    uid: int = 0,
    gid: int = 0,
    pid: int = 0,
    extlen: int = 0,
) -> bytes:
    """``struct fuse_in_header``; ``extlen`` is ``total_extlen`` in 8-byte units (7.36)."""
    return abi.IN_HEADER.pack(length, opcode, unique, nodeid, uid, gid, pid, extlen, 0)


def request(
    opcode: int,
    args: bytes = b"",
    *,
    nodeid: int = abi.ROOT_ID,
    unique: int | None = None,
    uid: int = 1000,
    gid: int = 100,
    pid: int = 4242,
    data_size: int = 0,
) -> bytes:
    """``fuse_in_header`` + ``args``, with ``len`` filled in; ``data_size`` counts data
    pages that follow in buffers of their own (WRITE as the virtio-fs driver sends it)."""
    unique = next(_uniques) if unique is None else unique
    length = abi.IN_HEADER.size + len(args) + data_size
    return in_header(length, opcode, unique, nodeid, uid, gid, pid) + args


def names(*strings: bytes) -> bytes:
    """Names as requests carry them: each NUL-terminated, back to back (RENAME, SYMLINK)."""
    return b"".join(string + b"\0" for string in strings)


def groups_ext(*groups: int, count: int | None = None) -> bytes:
    """A FUSE_EXT_GROUPS record as fs/fuse/dir.c builds it (fuse_ext_size: 8-aligned);
    ``count`` overrides ``nr_groups`` (to lie about it)."""
    body = abi.SUPP_GROUPS.pack(len(groups) if count is None else count)
    body += b"".join(abi.GROUP.pack(group) for group in groups)
    body += bytes(-len(body) % 8)
    return abi.EXT_HEADER.pack(abi.EXT_HEADER.size + len(body), abi.EXT_GROUPS) + body


def init_in(
    minor: int = 45, flags: int = 0xFFFFFFFF, major: int = 7, readahead: int = 131072
) -> bytes:
    """``fuse_init_in``; ``flags`` bits 32.. go in ``flags2``."""
    return abi.INIT_IN.pack(major, minor, readahead, flags & 0xFFFFFFFF, flags >> 32)


def write_in(fh: int, offset: int, size: int, write_flags: int = 0, flags: int = 0) -> bytes:
    """``fuse_write_in``; ``fh`` is the FUSE handle OPEN returned."""
    return abi.WRITE_IN.pack(fh, offset, size, write_flags, 0, flags, 0)


def read_in(fh: int, offset: int, size: int, flags: int = 0) -> bytes:
    """``fuse_read_in`` (READ, READDIR, READDIRPLUS)."""
    return abi.READ_IN.pack(fh, offset, size, 0, 0, flags, 0)


class Reply(NamedTuple):
    length: int
    error: int
    """``fuse_out_header.error``: 0 or a negative errno."""
    unique: int
    payload: bytes


def split_reply(data: bytes | bytearray | memoryview) -> Reply:
    """``fuse_out_header`` and the payload it says follows (``len`` bytes in all)."""
    data = bytes(data)
    length, error, unique = abi.OUT_HEADER.unpack_from(data)
    return Reply(length, error, unique, data[abi.OUT_HEADER.size : length])


def reply(buffer: bytes | bytearray | memoryview, written: int) -> Reply:
    """Split the first ``written`` bytes of a reply buffer, checking that its header
    agrees (``len`` is what was written, ``error`` is 0 or negative)."""
    parsed = split_reply(buffer[:written])
    if parsed.length != written or parsed.error > 0:
        raise ValueError(f"reply header {parsed[:3]} for {written} bytes written")
    return parsed


def entry_out(payload: bytes) -> tuple[int, ...]:
    return abi.ENTRY_OUT.unpack_from(payload)


def dirents(payload: bytes, plus: bool) -> list[tuple[bytes, int, int, int, int]]:
    """(name, ino, off, type, nodeid) of every dirent in a READDIR(PLUS) reply."""
    out = []
    pos = 0
    while pos < len(payload):
        nodeid = 0
        if plus:
            nodeid = abi.ENTRY_OUT.unpack_from(payload, pos)[0]
            pos += abi.ENTRY_OUT.size
        ino, off, namelen, dtype = abi.DIRENT.unpack_from(payload, pos)
        name_at = pos + abi.DIRENT.size
        out.append((payload[name_at : name_at + namelen], ino, off, dtype, nodeid))
        pos = abi.rec_align(name_at + namelen)
    return out
