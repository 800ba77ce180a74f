"""Decode FUSE requests: buffers from the kernel or a guest -> typed, checked values.

Sans-I/O.  :func:`parse` never raises: a request that is short, inconsistent
or oversized becomes :class:`BadRequest` with the errno to answer, an opcode
hostfs does not implement becomes ``BadRequest(ENOSYS)``.  Names are copied
out as ``bytes`` (without their NUL); WRITE data stays memoryviews of the
caller's buffers.
"""

from __future__ import annotations

import errno
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from hostfs.core.types import Lock, SetattrChanges
from hostfs.fuse import abi
from hostfs.fuse.abi import Opcode
from hostfs.fuse.init import Protocol
from hostfs.fuse.scatter import gather, slices, total_length

log = logging.getLogger(__name__)

NAME_MAX = 255
"""Longest single path component (``NAME_MAX``)."""
PATH_MAX = 4096
"""Longest symlink target including its NUL (``PATH_MAX``)."""
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
"""Linux's limits on extended attribute names and values (``<linux/limits.h>``)."""


class InHeader(NamedTuple):
    """``struct fuse_in_header``."""

    len: int
    opcode: int
    unique: int
    nodeid: int
    uid: int
    gid: int
    pid: int
    total_extlen: int
    padding: int


class BadRequest(NamedTuple):
    """A request to answer with ``-errno`` without calling the file system."""

    errno: int


class Lookup(NamedTuple):
    name: bytes


class Forget(NamedTuple):
    nlookup: int


class BatchForget(NamedTuple):
    items: list[tuple[int, int]]


class Getattr(NamedTuple):
    fh: int | None


class Setattr(NamedTuple):
    changes: SetattrChanges
    fh: int | None


class Empty(NamedTuple):
    """READLINK, STATFS, DESTROY, SYNCFS: no arguments worth keeping."""


class Symlink(NamedTuple):
    name: bytes
    target: bytes


class Mknod(NamedTuple):
    name: bytes
    mode: int
    rdev: int
    umask: int


class Mkdir(NamedTuple):
    name: bytes
    mode: int
    umask: int


class Unlink(NamedTuple):
    """UNLINK and RMDIR."""

    name: bytes


class Rename(NamedTuple):
    """RENAME and RENAME2."""

    new_parent: int
    name: bytes
    new_name: bytes
    flags: int


class Link(NamedTuple):
    old_nodeid: int
    new_name: bytes


class Open(NamedTuple):
    """OPEN and OPENDIR."""

    flags: int
    kill_suidgid: bool = False


class Read(NamedTuple):
    """READ, READDIR and READDIRPLUS."""

    fh: int
    offset: int
    size: int


class Write(NamedTuple):
    fh: int
    offset: int
    data: list[memoryview]
    kill_suidgid: bool


class Release(NamedTuple):
    """RELEASE and RELEASEDIR."""

    fh: int
    lock_owner: int
    flock_release: bool


class Fsync(NamedTuple):
    """FSYNC and FSYNCDIR."""

    fh: int
    datasync: bool


class Setxattr(NamedTuple):
    name: bytes
    value: bytes
    flags: int


class Getxattr(NamedTuple):
    name: bytes
    size: int


class Listxattr(NamedTuple):
    size: int


class Removexattr(NamedTuple):
    name: bytes


class Flush(NamedTuple):
    fh: int
    lock_owner: int


class Init(NamedTuple):
    major: int
    minor: int
    max_readahead: int
    flags: int
    """``flags | flags2 << 32`` when the kernel set FUSE_INIT_EXT."""


class Lk(NamedTuple):
    """GETLK, SETLK and SETLKW."""

    fh: int
    owner: int
    lock: Lock
    flock: bool


class Access(NamedTuple):
    mask: int


class Create(NamedTuple):
    name: bytes
    mode: int
    flags: int
    umask: int


class Interrupt(NamedTuple):
    unique: int


class Fallocate(NamedTuple):
    fh: int
    offset: int
    length: int
    mode: int


class Lseek(NamedTuple):
    fh: int
    offset: int
    whence: int


class CopyFileRange(NamedTuple):
    fh_in: int
    offset_in: int
    nodeid_out: int
    fh_out: int
    offset_out: int
    length: int
    flags: int


Request = Any
"""One of the NamedTuples above, or :class:`BadRequest`."""

EMPTY = Empty()


class _Invalid(Exception):
    """Raised inside a decoder; becomes ``BadRequest(errno)``."""

    def __init__(self, error: int) -> None:
        self.errno = error


def _strings(body: memoryview, offset: int, count: int) -> list[bytes]:
    """``count`` NUL-terminated strings from ``offset`` (fuse.h: names follow the fixed
    struct, each ending in ``\\0``)."""
    raw = bytes(body[offset:])
    strings = []
    start = 0
    for _ in range(count):
        end = raw.find(b"\0", start)
        if end < 0:
            raise _Invalid(errno.EINVAL)
        strings.append(raw[start:end])
        start = end + 1
    return strings


def _name(body: memoryview, offset: int = 0) -> bytes:
    name = _strings(body, offset, 1)[0]
    return _checked_name(name)


def _checked_name(name: bytes) -> bytes:
    if not name:
        raise _Invalid(errno.EINVAL)
    if len(name) > NAME_MAX:
        raise _Invalid(errno.ENAMETOOLONG)
    return name


def _xattr_name(body: memoryview, offset: int = 0) -> bytes:
    name = _strings(body, offset, 1)[0]
    if not name:
        raise _Invalid(errno.EINVAL)
    if len(name) > XATTR_NAME_MAX:
        raise _Invalid(errno.ERANGE)
    return name


def _lookup(proto: Protocol, body: memoryview) -> Lookup:
    return Lookup(_name(body))


def _forget(proto: Protocol, body: memoryview) -> Forget:
    return Forget(abi.FORGET_IN.unpack_from(body)[0])


def _batch_forget(proto: Protocol, body: memoryview) -> BatchForget:
    count = abi.BATCH_FORGET_IN.unpack_from(body)[0]
    start = abi.BATCH_FORGET_IN.size
    end = start + count * abi.FORGET_ONE.size
    if end > len(body):
        raise _Invalid(errno.EINVAL)
    return BatchForget(list(abi.FORGET_ONE.iter_unpack(body[start:end])))


def _getattr(proto: Protocol, body: memoryview) -> Getattr:
    if proto.minor < 9:
        return Getattr(None)
    flags, _, fh = abi.GETATTR_IN.unpack_from(body)
    return Getattr(fh if flags & abi.GETATTR_FH else None)


def _time(valid: int, set_bit: int, now_bit: int, seconds: int, nsec: int) -> int | str | None:
    if valid & now_bit:
        return "now"
    if valid & set_bit:
        return seconds * 1_000_000_000 + nsec
    return None


def _setattr(proto: Protocol, body: memoryview) -> Setattr:
    (valid, _, fh, size, _, atime, mtime, _, atimensec, mtimensec, _, mode, _, uid, gid, _) = (
        abi.SETATTR_IN.unpack_from(body)
    )
    changes = SetattrChanges(
        mode=mode if valid & abi.FATTR_MODE else None,
        uid=uid if valid & abi.FATTR_UID else None,
        gid=gid if valid & abi.FATTR_GID else None,
        size=size if valid & abi.FATTR_SIZE else None,
        atime=_time(valid, abi.FATTR_ATIME, abi.FATTR_ATIME_NOW, atime, atimensec),
        mtime=_time(valid, abi.FATTR_MTIME, abi.FATTR_MTIME_NOW, mtime, mtimensec),
        kill_suidgid=bool(valid & abi.FATTR_KILL_SUIDGID),
    )
    return Setattr(changes, fh if valid & abi.FATTR_FH else None)


def _empty(proto: Protocol, body: memoryview) -> Empty:
    return EMPTY


def _symlink(proto: Protocol, body: memoryview) -> Symlink:
    name, target = _strings(body, 0, 2)
    if not target:
        raise _Invalid(errno.EINVAL)
    if len(target) >= PATH_MAX:
        raise _Invalid(errno.ENAMETOOLONG)
    return Symlink(_checked_name(name), target)


def _mknod(proto: Protocol, body: memoryview) -> Mknod:
    if proto.minor < 12:
        mode, rdev = abi.MKDIR_IN.unpack_from(body)
        return Mknod(_name(body, abi.COMPAT_MKNOD_IN_SIZE), mode, rdev, 0)
    mode, rdev, umask, _ = abi.MKNOD_IN.unpack_from(body)
    return Mknod(_name(body, abi.MKNOD_IN.size), mode, rdev, umask)


def _mkdir(proto: Protocol, body: memoryview) -> Mkdir:
    mode, umask = abi.MKDIR_IN.unpack_from(body)
    return Mkdir(_name(body, abi.MKDIR_IN.size), mode, umask)


def _unlink(proto: Protocol, body: memoryview) -> Unlink:
    return Unlink(_name(body))


def _rename(proto: Protocol, body: memoryview) -> Rename:
    (new_parent,) = abi.RENAME_IN.unpack_from(body)
    name, new_name = _strings(body, abi.RENAME_IN.size, 2)
    return Rename(new_parent, _checked_name(name), _checked_name(new_name), 0)


def _rename2(proto: Protocol, body: memoryview) -> Rename:
    new_parent, flags, _ = abi.RENAME2_IN.unpack_from(body)
    name, new_name = _strings(body, abi.RENAME2_IN.size, 2)
    return Rename(new_parent, _checked_name(name), _checked_name(new_name), flags)


def _link(proto: Protocol, body: memoryview) -> Link:
    (old_nodeid,) = abi.LINK_IN.unpack_from(body)
    return Link(old_nodeid, _name(body, abi.LINK_IN.size))


def _open(proto: Protocol, body: memoryview) -> Open:
    flags, open_flags = abi.OPEN_IN.unpack_from(body)
    return Open(flags, bool(open_flags & abi.OPEN_KILL_SUIDGID))


def _read(proto: Protocol, body: memoryview) -> Read:
    if proto.minor < 9:
        fh, offset, size, _ = abi.RW_IN_PREFIX.unpack_from(body)
    else:
        fh, offset, size, _, _, _, _ = abi.READ_IN.unpack_from(body)
    return Read(fh, offset, size)


def _release(proto: Protocol, body: memoryview) -> Release:
    fh, _, release_flags, lock_owner = abi.RELEASE_IN.unpack_from(body)
    return Release(fh, lock_owner, bool(release_flags & abi.RELEASE_FLOCK_UNLOCK))


def _fsync(proto: Protocol, body: memoryview) -> Fsync:
    fh, fsync_flags, _ = abi.FSYNC_IN.unpack_from(body)
    return Fsync(fh, bool(fsync_flags & abi.FSYNC_FDATASYNC))


def _setxattr(proto: Protocol, body: memoryview) -> Setxattr:
    if proto.setxattr_ext:
        size, flags, _, _ = abi.SETXATTR_IN.unpack_from(body)
        offset = abi.SETXATTR_IN.size
    else:
        size, flags = abi.COMPAT_SETXATTR_IN.unpack_from(body)
        offset = abi.COMPAT_SETXATTR_IN.size
    if size > XATTR_SIZE_MAX:
        raise _Invalid(errno.E2BIG)
    name = _xattr_name(body, offset)
    value_start = offset + len(name) + 1
    if value_start + size > len(body):
        raise _Invalid(errno.EINVAL)
    return Setxattr(name, bytes(body[value_start : value_start + size]), flags)


def _getxattr(proto: Protocol, body: memoryview) -> Getxattr:
    size, _ = abi.GETXATTR_IN.unpack_from(body)
    return Getxattr(_xattr_name(body, abi.GETXATTR_IN.size), size)


def _listxattr(proto: Protocol, body: memoryview) -> Listxattr:
    return Listxattr(abi.GETXATTR_IN.unpack_from(body)[0])


def _removexattr(proto: Protocol, body: memoryview) -> Removexattr:
    return Removexattr(_xattr_name(body))


def _flush(proto: Protocol, body: memoryview) -> Flush:
    fh, _, _, lock_owner = abi.FLUSH_IN.unpack_from(body)
    return Flush(fh, lock_owner)


def _init(proto: Protocol, body: memoryview) -> Init:
    major, minor = abi.INIT_IN_PREFIX.unpack_from(body)
    if major != abi.KERNEL_VERSION:
        return Init(major, minor, 0, 0)
    if minor < 36 or len(body) < abi.INIT_IN.size:
        _, _, max_readahead, flags = abi.COMPAT_INIT_IN.unpack_from(body)
        return Init(major, minor, max_readahead, flags)
    _, _, max_readahead, flags, flags2 = abi.INIT_IN.unpack_from(body)
    if flags & abi.INIT_EXT:
        flags |= flags2 << 32
    return Init(major, minor, max_readahead, flags)


def _lk(proto: Protocol, body: memoryview) -> Lk:
    fh, owner, start, end, lock_type, pid, lk_flags, _ = abi.LK_IN.unpack_from(body)
    return Lk(fh, owner, Lock(start, end, lock_type, pid), bool(lk_flags & abi.LK_FLOCK))


def _access(proto: Protocol, body: memoryview) -> Access:
    return Access(abi.ACCESS_IN.unpack_from(body)[0])


def _create(proto: Protocol, body: memoryview) -> Create:
    if proto.minor < 12:
        flags, mode = abi.OPEN_IN.unpack_from(body)
        return Create(_name(body, abi.OPEN_IN.size), mode, flags, 0)
    flags, mode, umask, _ = abi.CREATE_IN.unpack_from(body)
    return Create(_name(body, abi.CREATE_IN.size), mode, flags, umask)


def _interrupt(proto: Protocol, body: memoryview) -> Interrupt:
    return Interrupt(abi.INTERRUPT_IN.unpack_from(body)[0])


def _fallocate(proto: Protocol, body: memoryview) -> Fallocate:
    fh, offset, length, mode, _ = abi.FALLOCATE_IN.unpack_from(body)
    return Fallocate(fh, offset, length, mode)


def _lseek(proto: Protocol, body: memoryview) -> Lseek:
    fh, offset, whence, _ = abi.LSEEK_IN.unpack_from(body)
    return Lseek(fh, offset, whence)


def _copy_file_range(proto: Protocol, body: memoryview) -> CopyFileRange:
    return CopyFileRange(*abi.COPY_FILE_RANGE_IN.unpack_from(body))


Decoder = Callable[[Protocol, memoryview], Request]

DECODERS: list[Decoder | None] = [None] * (abi.MAX_OPCODE + 1)
for _opcode, _decoder in {
    Opcode.LOOKUP: _lookup,
    Opcode.FORGET: _forget,
    Opcode.GETATTR: _getattr,
    Opcode.SETATTR: _setattr,
    Opcode.READLINK: _empty,
    Opcode.SYMLINK: _symlink,
    Opcode.MKNOD: _mknod,
    Opcode.MKDIR: _mkdir,
    Opcode.UNLINK: _unlink,
    Opcode.RMDIR: _unlink,
    Opcode.RENAME: _rename,
    Opcode.LINK: _link,
    Opcode.OPEN: _open,
    Opcode.READ: _read,
    Opcode.STATFS: _empty,
    Opcode.RELEASE: _release,
    Opcode.FSYNC: _fsync,
    Opcode.SETXATTR: _setxattr,
    Opcode.GETXATTR: _getxattr,
    Opcode.LISTXATTR: _listxattr,
    Opcode.REMOVEXATTR: _removexattr,
    Opcode.FLUSH: _flush,
    Opcode.INIT: _init,
    Opcode.OPENDIR: _open,
    Opcode.READDIR: _read,
    Opcode.RELEASEDIR: _release,
    Opcode.FSYNCDIR: _fsync,
    Opcode.GETLK: _lk,
    Opcode.SETLK: _lk,
    Opcode.SETLKW: _lk,
    Opcode.ACCESS: _access,
    Opcode.CREATE: _create,
    Opcode.INTERRUPT: _interrupt,
    Opcode.DESTROY: _empty,
    Opcode.BATCH_FORGET: _batch_forget,
    Opcode.FALLOCATE: _fallocate,
    Opcode.READDIRPLUS: _read,
    Opcode.RENAME2: _rename2,
    Opcode.LSEEK: _lseek,
    Opcode.COPY_FILE_RANGE: _copy_file_range,
    Opcode.SYNCFS: _empty,
}.items():
    DECODERS[_opcode] = _decoder
"""Opcode -> decoder; None for opcodes answered with ENOSYS (BMAP, IOCTL, POLL, DAX
mappings, TMPFILE, NOTIFY_REPLY, CUSE)."""


def _write(proto: Protocol, readable: Sequence[memoryview], end: int) -> Write:
    """WRITE's data stays views of ``readable``, however many buffers it spans."""
    start = abi.IN_HEADER.size
    head_size = abi.WRITE_IN.size if proto.minor >= 9 else abi.COMPAT_WRITE_IN_SIZE
    if start + head_size > end:
        raise _Invalid(errno.EINVAL)
    head = gather(readable, start, abi.RW_IN_PREFIX.size)
    fh, offset, size, write_flags = abi.RW_IN_PREFIX.unpack_from(head)
    data_start = start + head_size
    if data_start + size > end:
        raise _Invalid(errno.EINVAL)
    data = slices(readable, data_start, size)
    return Write(fh, offset, data, bool(write_flags & abi.WRITE_KILL_SUIDGID))


def parse(proto: Protocol, readable: Sequence[memoryview]) -> tuple[InHeader | None, Request]:
    """Split a request into its header and its typed arguments.

    The header is None only when fewer than ``sizeof(fuse_in_header)`` bytes
    arrived: then there is no ``unique`` to answer to.
    """
    single = readable[0] if len(readable) == 1 else None
    total = len(single) if single is not None else total_length(readable)
    if total < abi.IN_HEADER.size:
        return None, BadRequest(errno.EIO)
    buffer = single if single is not None else gather(readable, 0, abi.IN_HEADER.size)
    header = InHeader._make(abi.IN_HEADER.unpack_from(buffer))
    if header.len != total:
        return header, BadRequest(errno.EINVAL)
    end = total - header.total_extlen * 8
    opcode = header.opcode
    try:
        if opcode == Opcode.WRITE:
            return header, _write(proto, readable, end)
        decoder = DECODERS[opcode] if 0 <= opcode < len(DECODERS) else None
        if decoder is None:
            return header, BadRequest(errno.ENOSYS)
        if end < abi.IN_HEADER.size:
            return header, BadRequest(errno.EINVAL)
        if single is not None:
            body = single[abi.IN_HEADER.size : end]
        else:
            body = gather(readable, abi.IN_HEADER.size, end - abi.IN_HEADER.size)
        return header, decoder(proto, body)
    except _Invalid as invalid:
        return header, BadRequest(invalid.errno)
    except struct.error:
        return header, BadRequest(errno.EINVAL)
    except Exception:
        log.exception("decoding opcode %d failed", opcode)
        return header, BadRequest(errno.EIO)
