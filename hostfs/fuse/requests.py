"""Decode FUSE requests: buffers from the kernel or a guest -> typed, checked values.

Sans-I/O, and never raises: :func:`frame` checks a request's header, and
:func:`decode` runs the decoder the dispatch table (hostfs/fuse/operations.py)
names for its opcode; a request that is short, inconsistent or oversized
becomes :class:`BadRequest` with the errno to answer.

A request costs at most a small constant times its size, and it is never
longer than ``SessionConfig.max_request``: a longer one is refused from its
header alone.  Decoders read fields where they lie (:class:`Args`) and copy
each byte at most once: names are copied out as ``bytes`` (without their NUL)
from a window no longer than the longest name allowed; WRITE data stays
memoryviews of the caller's buffers; BATCH_FORGET records stay in the request
until the core iterates them.
"""

from __future__ import annotations

import errno
import logging
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, NamedTuple

from hostfs.core.types import Lock, SetattrChanges, build
from hostfs.fuse import abi
from hostfs.fuse.args import Args
from hostfs.fuse.init import Protocol, SessionConfig
from hostfs.fuse.ratelimit import RateLimitedLog
from hostfs.fuse.scatter import gather, total_length

log = logging.getLogger(__name__)
guest_errors = RateLimitedLog(log)

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
    """``records`` ``fuse_forget_one`` records (``fuse_batch_forget_in.count``), left in
    the request until iterated."""

    records: int
    args: Args

    def items(self) -> Iterator[tuple[int, int]]:
        """(nodeid, nlookup) pairs, one tuple at a time: the core needs nothing more."""
        return self.args.records(abi.FORGET_ONE, abi.BATCH_FORGET_IN.size, self.records)


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


Request = (
    Lookup | Forget | BatchForget | Getattr | Setattr | Empty | Symlink | Mknod | Mkdir
    | Unlink | Rename | Link | Open | Read | Write | Release | Fsync | Setxattr | Getxattr
    | Listxattr | Removexattr | Flush | Init | Lk | Access | Create | Interrupt | Fallocate
    | Lseek | CopyFileRange
)  # fmt: skip
"""Every decoded request; a decoder returns one of these, :func:`decode` may instead
give :class:`BadRequest`."""

EMPTY = Empty()


class _Invalid(Exception):
    """Raised inside a decoder; becomes ``BadRequest(errno)``."""

    def __init__(self, error: int) -> None:
        self.errno = error


def _cstring(args: Args, offset: int, longest: int, too_long: int) -> tuple[bytes, int]:
    """The NUL-terminated string at ``offset`` and the offset after its NUL (fuse.h:
    names follow the fixed struct, each ending in ``\\0``).

    Only ``longest + 1`` bytes are looked at, so a megabyte without a NUL costs no
    more than a legal name: no NUL there is ``too_long`` if the arguments go on,
    else EINVAL.
    """
    window = bytes(args.view(offset, longest + 1))
    end = window.find(b"\0")
    if end < 0:
        raise _Invalid(too_long if offset + len(window) < args.size else errno.EINVAL)
    return window[:end], offset + end + 1


def _name(args: Args, offset: int = 0) -> tuple[bytes, int]:
    """A path component: 1..NAME_MAX bytes."""
    name, after = _cstring(args, offset, NAME_MAX, errno.ENAMETOOLONG)
    if not name:
        raise _Invalid(errno.EINVAL)
    return name, after


def _xattr_name(args: Args, offset: int = 0) -> tuple[bytes, int]:
    name, after = _cstring(args, offset, XATTR_NAME_MAX, errno.ERANGE)
    if not name:
        raise _Invalid(errno.EINVAL)
    return name, after


def decode_lookup(proto: Protocol, args: Args) -> Lookup:
    return build(Lookup, (_name(args)[0],))


def decode_forget(proto: Protocol, args: Args) -> Forget:
    return build(Forget, (args.unpack(abi.FORGET_IN)[0],))


def decode_batch_forget(proto: Protocol, args: Args) -> BatchForget:
    """``count`` must fit in the request (virtiofsd checks ``count * 16`` likewise)."""
    count = args.unpack(abi.BATCH_FORGET_IN)[0]
    if abi.BATCH_FORGET_IN.size + count * abi.FORGET_ONE.size > args.size:
        raise _Invalid(errno.EINVAL)
    return BatchForget(count, args)


def decode_getattr(proto: Protocol, args: Args) -> Getattr:
    flags, _, fh = args.unpack(abi.GETATTR_IN)
    return build(Getattr, (fh if flags & abi.GETATTR_FH else None,))


def _time(
    valid: int, set_bit: int, now_bit: int, seconds: int, nsec: int
) -> int | Literal["now"] | None:
    if valid & now_bit:
        return "now"
    if valid & set_bit:
        return seconds * 1_000_000_000 + nsec
    return None


def decode_setattr(proto: Protocol, args: Args) -> Setattr:
    (valid, _, fh, size, _, atime, mtime, _, atimensec, mtimensec, _, mode, _, uid, gid, _) = (
        args.unpack(abi.SETATTR_IN)
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


def decode_empty(proto: Protocol, args: Args) -> Empty:
    return EMPTY


def decode_symlink(proto: Protocol, args: Args) -> Symlink:
    name, after = _name(args)
    target, _ = _cstring(args, after, PATH_MAX - 1, errno.ENAMETOOLONG)
    if not target:
        raise _Invalid(errno.EINVAL)
    return Symlink(name, target)


def decode_mknod(proto: Protocol, args: Args) -> Mknod:
    mode, rdev, umask, _ = args.unpack(abi.MKNOD_IN)
    return Mknod(_name(args, abi.MKNOD_IN.size)[0], mode, rdev, umask)


def decode_mkdir(proto: Protocol, args: Args) -> Mkdir:
    mode, umask = args.unpack(abi.MKDIR_IN)
    return Mkdir(_name(args, abi.MKDIR_IN.size)[0], mode, umask)


def decode_unlink(proto: Protocol, args: Args) -> Unlink:
    return build(Unlink, (_name(args)[0],))


def _two_names(args: Args, offset: int) -> tuple[bytes, bytes]:
    name, after = _name(args, offset)
    return name, _name(args, after)[0]


def decode_rename(proto: Protocol, args: Args) -> Rename:
    (new_parent,) = args.unpack(abi.RENAME_IN)
    return Rename(new_parent, *_two_names(args, abi.RENAME_IN.size), 0)


def decode_rename2(proto: Protocol, args: Args) -> Rename:
    new_parent, flags, _ = args.unpack(abi.RENAME2_IN)
    return Rename(new_parent, *_two_names(args, abi.RENAME2_IN.size), flags)


def decode_link(proto: Protocol, args: Args) -> Link:
    (old_nodeid,) = args.unpack(abi.LINK_IN)
    return Link(old_nodeid, _name(args, abi.LINK_IN.size)[0])


def decode_open(proto: Protocol, args: Args) -> Open:
    flags, open_flags = args.unpack(abi.OPEN_IN)
    return Open(flags, bool(open_flags & abi.OPEN_KILL_SUIDGID))


def decode_read(proto: Protocol, args: Args) -> Read:
    fh, offset, size, _, _, _, _ = args.unpack(abi.READ_IN)
    return Read(fh, offset, size)


def decode_write(proto: Protocol, args: Args) -> Write:
    """WRITE's data stays views of the request's buffers, however many it spans."""
    if abi.WRITE_IN.size > args.size:
        raise _Invalid(errno.EINVAL)
    fh, offset, size, write_flags, _, _, _ = args.unpack(abi.WRITE_IN)
    if abi.WRITE_IN.size + size > args.size:
        raise _Invalid(errno.EINVAL)
    data = args.views(abi.WRITE_IN.size, size)
    return Write(fh, offset, data, bool(write_flags & abi.WRITE_KILL_SUIDGID))


def decode_release(proto: Protocol, args: Args) -> Release:
    fh, _, release_flags, lock_owner = args.unpack(abi.RELEASE_IN)
    return build(Release, (fh, lock_owner, bool(release_flags & abi.RELEASE_FLOCK_UNLOCK)))


def decode_fsync(proto: Protocol, args: Args) -> Fsync:
    fh, fsync_flags, _ = args.unpack(abi.FSYNC_IN)
    return Fsync(fh, bool(fsync_flags & abi.FSYNC_FDATASYNC))


def decode_setxattr(proto: Protocol, args: Args) -> Setxattr:
    if proto.setxattr_ext:
        size, flags, _, _ = args.unpack(abi.SETXATTR_IN)
        offset = abi.SETXATTR_IN.size
    else:
        size, flags = args.unpack(abi.COMPAT_SETXATTR_IN)
        offset = abi.COMPAT_SETXATTR_IN.size
    if size > XATTR_SIZE_MAX:
        raise _Invalid(errno.E2BIG)
    name, value_start = _xattr_name(args, offset)
    if value_start + size > args.size:
        raise _Invalid(errno.EINVAL)
    return Setxattr(name, args.copy(value_start, size), flags)


def decode_getxattr(proto: Protocol, args: Args) -> Getxattr:
    size, _ = args.unpack(abi.GETXATTR_IN)
    return Getxattr(_xattr_name(args, abi.GETXATTR_IN.size)[0], size)


def decode_listxattr(proto: Protocol, args: Args) -> Listxattr:
    return Listxattr(args.unpack(abi.GETXATTR_IN)[0])


def decode_removexattr(proto: Protocol, args: Args) -> Removexattr:
    return Removexattr(_xattr_name(args)[0])


def decode_flush(proto: Protocol, args: Args) -> Flush:
    fh, _, _, lock_owner = args.unpack(abi.FLUSH_IN)
    return build(Flush, (fh, lock_owner))


def decode_init(proto: Protocol, args: Args) -> Init:
    major, minor = args.unpack(abi.INIT_IN_PREFIX)
    if major != abi.KERNEL_VERSION:
        return Init(major, minor, 0, 0)
    if minor < 36 or args.size < abi.INIT_IN.size:  # flags2 and the rest came in 7.36
        _, _, max_readahead, flags = args.unpack(abi.COMPAT_INIT_IN)
        return Init(major, minor, max_readahead, flags)
    _, _, max_readahead, flags, flags2 = args.unpack(abi.INIT_IN)
    if flags & abi.INIT_EXT:
        flags |= flags2 << 32
    return Init(major, minor, max_readahead, flags)


def decode_lk(proto: Protocol, args: Args) -> Lk:
    fh, owner, start, end, lock_type, pid, lk_flags, _ = args.unpack(abi.LK_IN)
    return Lk(fh, owner, Lock(start, end, lock_type, pid), bool(lk_flags & abi.LK_FLOCK))


def decode_access(proto: Protocol, args: Args) -> Access:
    return Access(args.unpack(abi.ACCESS_IN)[0])


def decode_create(proto: Protocol, args: Args) -> Create:
    flags, mode, umask, _ = args.unpack(abi.CREATE_IN)
    return build(Create, (_name(args, abi.CREATE_IN.size)[0], mode, flags, umask))


def decode_interrupt(proto: Protocol, args: Args) -> Interrupt:
    return Interrupt(args.unpack(abi.INTERRUPT_IN)[0])


def decode_fallocate(proto: Protocol, args: Args) -> Fallocate:
    fh, offset, length, mode, _ = args.unpack(abi.FALLOCATE_IN)
    return Fallocate(fh, offset, length, mode)


def decode_lseek(proto: Protocol, args: Args) -> Lseek:
    fh, offset, whence, _ = args.unpack(abi.LSEEK_IN)
    return Lseek(fh, offset, whence)


def decode_copy_file_range(proto: Protocol, args: Args) -> CopyFileRange:
    return CopyFileRange(*args.unpack(abi.COPY_FILE_RANGE_IN))


Decoder = Callable[[Protocol, Args], Request]

MAX_REQUEST = SessionConfig().max_request
_IN_HEADER_SIZE = abi.IN_HEADER.size
_unpack_header = abi.IN_HEADER.unpack_from


def frame(
    readable: Sequence[memoryview], max_request: int = MAX_REQUEST
) -> tuple[InHeader | None, Args | BadRequest]:
    """The header and the arguments' range, checked against each other and the cap.

    The header is None only when fewer than ``sizeof(fuse_in_header)`` bytes
    arrived: then there is no ``unique`` to answer to.  Nothing past the header
    is read here, so an oversized request costs only its header.
    """
    total = total_length(readable)
    if total < _IN_HEADER_SIZE:
        return None, BadRequest(errno.EIO)
    first = readable[0]
    # In place when the first buffer holds the header (every driver we know puts it in
    # a descriptor of its own or with the arguments): no gather, no copy.
    raw = first if len(first) >= _IN_HEADER_SIZE else gather(readable, 0, _IN_HEADER_SIZE)
    header = build(InHeader, _unpack_header(raw))
    if header.len > max_request:
        return header, BadRequest(errno.ENOMEM)  # virtiofsd's errno for the same check
    if header.len != total:
        return header, BadRequest(errno.EINVAL)
    end = total - header.total_extlen * 8
    if end < _IN_HEADER_SIZE:
        return header, BadRequest(errno.EINVAL)
    return header, Args(readable, _IN_HEADER_SIZE, end - _IN_HEADER_SIZE)


def decode(decoder: Decoder, proto: Protocol, args: Args) -> Request | BadRequest:
    """Run ``decoder``; a request it cannot decode becomes :class:`BadRequest`."""
    try:
        return decoder(proto, args)
    except _Invalid as invalid:
        return BadRequest(invalid.errno)
    except struct.error:
        return BadRequest(errno.EINVAL)
    except Exception:
        guest_errors.log(
            "decoder failure",
            logging.ERROR,
            "decoding with %s failed",
            decoder.__name__,
            trace=True,
        )
        return BadRequest(errno.EIO)
