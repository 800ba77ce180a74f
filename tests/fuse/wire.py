"""The kernel's side of the wire, for tests: build requests, split replies."""

from __future__ import annotations

import itertools
from typing import NamedTuple

from hostfs.fuse import abi

_uniques = itertools.count(2, 2)


def request(
    opcode: int,
    args: bytes = b"",
    *,
    nodeid: int = abi.ROOT_ID,
    unique: int | None = None,
    uid: int = 1000,
    gid: int = 100,
    pid: int = 4242,
) -> bytes:
    """``fuse_in_header`` + ``args``, with ``len`` filled in."""
    unique = next(_uniques) if unique is None else unique
    length = abi.IN_HEADER.size + len(args)
    return abi.IN_HEADER.pack(length, opcode, unique, nodeid, uid, gid, pid, 0, 0) + args


def names(*strings: bytes) -> bytes:
    return b"".join(string + b"\0" for string in strings)


def groups_ext(*groups: int, count: int | None = None) -> bytes:
    """A FUSE_EXT_GROUPS record as fs/fuse/dir.c builds it (fuse_ext_size: 8-aligned);
    ``count`` overrides ``nr_groups`` (to lie about it)."""
    body = abi.SUPP_GROUPS.pack(len(groups) if count is None else count)
    body += b"".join(abi.GROUP.pack(group) for group in groups)
    body += bytes(-len(body) % 8)
    return abi.EXT_HEADER.pack(abi.EXT_HEADER.size + len(body), abi.EXT_GROUPS) + body


def init_in(minor: int = 45, flags: int = 0xFFFFFFFF, major: int = 7, readahead: int = 131072):
    return abi.INIT_IN.pack(major, minor, readahead, flags, 0)


def write_in(fh: int, offset: int, size: int, write_flags: int = 0) -> bytes:
    return abi.WRITE_IN.pack(fh, offset, size, write_flags, 0, 0, 0)


def read_in(fh: int, offset: int, size: int) -> bytes:
    return abi.READ_IN.pack(fh, offset, size, 0, 0, 0, 0)


class Reply(NamedTuple):
    length: int
    error: int
    unique: int
    payload: bytes


def reply(buffer: bytes | bytearray | memoryview, written: int) -> Reply:
    """Split the first ``written`` bytes of a reply buffer; check its header agrees."""
    data = bytes(buffer[:written])
    length, error, unique = abi.OUT_HEADER.unpack_from(data)
    assert length == written, (length, written)
    assert error <= 0
    return Reply(length, error, unique, data[abi.OUT_HEADER.size :])


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
