"""Encode FUSE replies: typed values from the core -> bytes in a reply buffer.

Sans-I/O.  Every encoder packs at ``pos`` into a caller-supplied writable
buffer (the reply buffer itself when it is contiguous) and returns the number
of bytes the reply carries; nothing is allocated but the argument tuple.
"""

from __future__ import annotations

import functools

from hostfs.core.types import AttrReply, Entry, Lock, Opened, Stat, StatFs
from hostfs.fuse import abi

_NS = 1_000_000_000
_ZEROS = bytes(8)
_NO_ENTRY = abi.ENTRY_OUT.unpack(bytes(abi.ENTRY_OUT.size))


@functools.lru_cache(maxsize=64)
def split_timeout(seconds: float) -> tuple[int, int]:
    """A cache timeout as fuse.h wants it: whole seconds and nanoseconds.

    Cached: a session uses two or three values (--cache), on every reply that carries
    an entry or attributes."""
    if seconds <= 0:
        return 0, 0
    whole = int(seconds)
    return whole, min(int((seconds - whole) * _NS), _NS - 1)


def attr_fields(st: Stat) -> tuple[int, ...]:
    """``struct fuse_attr`` field values for a :class:`Stat`."""
    atime, atimensec = divmod(st.atime_ns, _NS)
    mtime, mtimensec = divmod(st.mtime_ns, _NS)
    ctime, ctimensec = divmod(st.ctime_ns, _NS)
    return (
        st.ino,
        st.size,
        st.blocks,
        atime,
        mtime,
        ctime,
        atimensec,
        mtimensec,
        ctimensec,
        st.mode,
        st.nlink,
        st.uid,
        st.gid,
        st.rdev & 0xFFFFFFFF,
        st.blksize,
        0,
    )


def out_header(out: memoryview, length: int, error: int, unique: int) -> None:
    """``struct fuse_out_header`` at the start of ``out``."""
    abi.OUT_HEADER.pack_into(out, 0, length, error, unique)


def entry_out(out: memoryview, pos: int, entry: Entry) -> None:
    """``struct fuse_entry_out`` (LOOKUP, MKNOD, MKDIR, SYMLINK, LINK, CREATE)."""
    entry_valid, entry_nsec = split_timeout(entry.entry_timeout)
    attr_valid, attr_nsec = split_timeout(entry.attr_timeout)
    abi.ENTRY_OUT.pack_into(
        out,
        pos,
        entry.nodeid,
        entry.generation,
        entry_valid,
        attr_valid,
        entry_nsec,
        attr_nsec,
        *attr_fields(entry.attr),
    )


def attr_out(out: memoryview, pos: int, reply: AttrReply) -> None:
    """``struct fuse_attr_out`` (GETATTR, SETATTR)."""
    attr_valid, attr_nsec = split_timeout(reply.attr_timeout)
    abi.ATTR_OUT.pack_into(out, pos, attr_valid, attr_nsec, 0, *attr_fields(reply.attr))


def open_flags(opened: Opened) -> int:
    """``fuse_open_out.open_flags`` (FOPEN_*)."""
    flags = 0
    if opened.direct_io:
        flags |= abi.FOPEN_DIRECT_IO
    if opened.keep_cache:
        flags |= abi.FOPEN_KEEP_CACHE
    if opened.nonseekable:
        flags |= abi.FOPEN_NONSEEKABLE
    if opened.cache_dir:
        flags |= abi.FOPEN_CACHE_DIR
    return flags


def open_out(out: memoryview, pos: int, opened: Opened, backing_id: int | None = None) -> None:
    """``struct fuse_open_out`` (OPEN, OPENDIR, second half of CREATE), passing
    the file through to ``backing_id`` when there is one (hostfs.fuse.passthrough)."""
    flags = open_flags(opened)
    if backing_id is None:
        backing_id = 0
    else:
        # FOPEN_DIRECT_IO would override FOPEN_PASSTHROUGH (fuse_file_read_iter);
        # passthrough keeps no FUSE page cache, so --cache=never still holds and
        # FOPEN_KEEP_CACHE (--cache=always) has nothing to keep: the kernel refuses
        # it beside FOPEN_PASSTHROUGH (abi.FOPEN_PASSTHROUGH_MASK).
        flags = flags & abi.FOPEN_PASSTHROUGH_MASK & ~abi.FOPEN_DIRECT_IO
        flags |= abi.FOPEN_PASSTHROUGH
    abi.OPEN_OUT.pack_into(out, pos, opened.fh, flags, backing_id)


def statfs_out(out: memoryview, pos: int, st: StatFs) -> None:
    """``struct fuse_statfs_out``."""
    abi.KSTATFS.pack_into(
        out,
        pos,
        st.blocks,
        st.bfree,
        st.bavail,
        st.files,
        st.ffree,
        st.bsize,
        st.namelen,
        st.frsize,
        0,
    )


def lk_out(out: memoryview, pos: int, lock: Lock) -> None:
    """``struct fuse_lk_out``."""
    abi.FILE_LOCK.pack_into(out, pos, lock.start, lock.end, lock.type, lock.pid)


def dirent(
    out: memoryview, pos: int, end: int, name: bytes, ino: int, offset: int, dtype: int
) -> int:
    """``struct fuse_dirent`` + name, padded to 8 bytes; returns the position after it,
    or -1 when it does not fit before ``end``."""
    name_at = pos + abi.DIRENT.size
    after = abi.rec_align(name_at + len(name))
    if after > end:
        return -1
    abi.DIRENT.pack_into(out, pos, ino, offset, len(name), dtype)
    name_end = name_at + len(name)
    out[name_at:name_end] = name
    out[name_end:after] = _ZEROS[: after - name_end]
    return after


def direntplus(
    out: memoryview,
    pos: int,
    end: int,
    name: bytes,
    ino: int,
    offset: int,
    dtype: int,
    entry: Entry | None,
) -> int:
    """``struct fuse_direntplus``; ``entry`` None (``.``, ``..``) is sent as nodeid 0,
    which the kernel takes as "no lookup, no attributes"."""
    dirent_at = pos + abi.ENTRY_OUT.size
    if abi.rec_align(dirent_at + abi.DIRENT.size + len(name)) > end:
        return -1
    if entry is None:
        abi.ENTRY_OUT.pack_into(out, pos, *_NO_ENTRY)
    else:
        entry_out(out, pos, entry)
    return dirent(out, dirent_at, end, name, ino, offset, dtype)
