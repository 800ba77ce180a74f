"""Request decoding: every opcode's layout, compat layouts, and malformed input."""

from __future__ import annotations

import errno

import pytest

from hostfs.core.types import Lock, SetattrChanges
from hostfs.fuse import abi
from hostfs.fuse import requests as rq
from hostfs.fuse.abi import Opcode
from hostfs.fuse.dispatcher import OPERATIONS
from hostfs.fuse.init import Protocol
from hostfs.testing.fuse_wire import names, read_in, request, write_in

NEW = Protocol(7, 38, abi.SETXATTR_EXT)


def decode_request(
    proto: Protocol, readable: list[memoryview], max_request: int = rq.MAX_REQUEST
) -> tuple[rq.InHeader | None, object]:
    """What the dispatcher decodes: frame, then the table's decoder for the opcode."""
    header, args = rq.frame(readable, max_request)
    if type(args) is rq.BadRequest:
        return header, args
    operation = OPERATIONS.get(header.opcode)
    if operation is None:
        return header, rq.BadRequest(errno.ENOSYS)
    return header, rq.decode(operation.decoder, proto, args)


def parse(data: bytes, proto: Protocol = NEW) -> tuple[rq.InHeader | None, object]:
    return decode_request(proto, [memoryview(data)])


def decoded(opcode: int, args: bytes, proto: Protocol = NEW) -> object:
    header, req = parse(request(opcode, args, nodeid=7), proto)
    assert header is not None and header.opcode == opcode and header.nodeid == 7
    return req


SETATTR_ALL = abi.SETATTR_IN.pack(
    abi.FATTR_MODE | abi.FATTR_UID | abi.FATTR_GID | abi.FATTR_SIZE | abi.FATTR_ATIME
    | abi.FATTR_ATIME_NOW | abi.FATTR_MTIME | abi.FATTR_FH | abi.FATTR_KILL_SUIDGID,
    0, 99, 4096, 0, 10, 20, 30, 1, 2, 3, 0o644, 0, 5, 6, 0,
)  # fmt: skip

CASES = [
    (Opcode.LOOKUP, names(b"a"), rq.Lookup(b"a")),
    (Opcode.FORGET, abi.FORGET_IN.pack(3), rq.Forget(3)),
    (
        Opcode.BATCH_FORGET,
        abi.BATCH_FORGET_IN.pack(2, 0) + abi.FORGET_ONE.pack(5, 1) + abi.FORGET_ONE.pack(6, 2),
        [(5, 1), (6, 2)],  # BatchForget's items
    ),
    (Opcode.GETATTR, abi.GETATTR_IN.pack(0, 0, 9), rq.Getattr(None)),
    (Opcode.GETATTR, abi.GETATTR_IN.pack(abi.GETATTR_FH, 0, 9), rq.Getattr(9)),
    (
        Opcode.SETATTR,
        SETATTR_ALL,
        rq.Setattr(SetattrChanges(0o644, 5, 6, 4096, "now", 20_000_000_002, True), 99),
    ),
    (Opcode.READLINK, b"", rq.EMPTY),
    (Opcode.SYMLINK, names(b"l", b"/target"), rq.Symlink(b"l", b"/target")),
    (
        Opcode.MKNOD,
        abi.MKNOD_IN.pack(0o10644, 0, 0o22, 0) + names(b"f"),
        rq.Mknod(b"f", 0o10644, 0, 0o22),
    ),
    (Opcode.MKDIR, abi.MKDIR_IN.pack(0o755, 0o22) + names(b"d"), rq.Mkdir(b"d", 0o755, 0o22)),
    (Opcode.UNLINK, names(b"x"), rq.Unlink(b"x")),
    (Opcode.RMDIR, names(b"x"), rq.Unlink(b"x")),
    (Opcode.RENAME, abi.RENAME_IN.pack(8) + names(b"a", b"b"), rq.Rename(8, b"a", b"b", 0)),
    (Opcode.RENAME2, abi.RENAME2_IN.pack(8, 1, 0) + names(b"a", b"b"), rq.Rename(8, b"a", b"b", 1)),
    (Opcode.LINK, abi.LINK_IN.pack(3) + names(b"n"), rq.Link(3, b"n")),
    (Opcode.OPEN, abi.OPEN_IN.pack(2, 0), rq.Open(2)),
    (Opcode.OPEN, abi.OPEN_IN.pack(0o1001, abi.OPEN_KILL_SUIDGID), rq.Open(0o1001, True)),
    (Opcode.OPENDIR, abi.OPEN_IN.pack(0o200000, 0), rq.Open(0o200000)),
    (Opcode.READ, read_in(4, 100, 4096), rq.Read(4, 100, 4096)),
    (Opcode.READDIR, read_in(4, 2, 4096), rq.Read(4, 2, 4096)),
    (Opcode.READDIRPLUS, read_in(4, 2, 4096), rq.Read(4, 2, 4096)),
    (Opcode.STATFS, b"", rq.EMPTY),
    (
        Opcode.RELEASE,
        abi.RELEASE_IN.pack(4, 0, abi.RELEASE_FLOCK_UNLOCK, 77),
        rq.Release(4, 77, True),
    ),
    (Opcode.RELEASEDIR, abi.RELEASE_IN.pack(4, 0, 0, 0), rq.Release(4, 0, False)),
    (Opcode.FSYNC, abi.FSYNC_IN.pack(4, abi.FSYNC_FDATASYNC, 0), rq.Fsync(4, True)),
    (Opcode.FSYNCDIR, abi.FSYNC_IN.pack(4, 0, 0), rq.Fsync(4, False)),
    (
        Opcode.SETXATTR,
        abi.SETXATTR_IN.pack(3, 1, 0, 0) + names(b"user.a") + b"xyz",
        rq.Setxattr(b"user.a", b"xyz", 1),
    ),
    (Opcode.GETXATTR, abi.GETXATTR_IN.pack(0, 0) + names(b"user.a"), rq.Getxattr(b"user.a", 0)),
    (Opcode.LISTXATTR, abi.GETXATTR_IN.pack(100, 0), rq.Listxattr(100)),
    (Opcode.REMOVEXATTR, names(b"user.a"), rq.Removexattr(b"user.a")),
    (Opcode.FLUSH, abi.FLUSH_IN.pack(4, 0, 0, 55), rq.Flush(4, 55)),
    (
        Opcode.INIT,
        abi.INIT_IN.pack(7, 45, 1024, abi.INIT_EXT | 1, 3),
        rq.Init(7, 45, 1024, (3 << 32) | abi.INIT_EXT | 1),
    ),
    (Opcode.INIT, abi.COMPAT_INIT_IN.pack(7, 22, 1024, 1), rq.Init(7, 22, 1024, 1)),
    (Opcode.GETLK, abi.LK_IN.pack(4, 9, 0, 10, 1, 0, 0, 0), rq.Lk(4, 9, Lock(0, 10, 1, 0), False)),
    (
        Opcode.SETLK,
        abi.LK_IN.pack(4, 9, 0, 2**63, 2, 0, abi.LK_FLOCK, 0),
        rq.Lk(4, 9, Lock(0, 2**63, 2, 0), True),
    ),
    (Opcode.SETLKW, abi.LK_IN.pack(4, 9, 5, 6, 2, 0, 0, 0), rq.Lk(4, 9, Lock(5, 6, 2, 0), False)),
    (Opcode.ACCESS, abi.ACCESS_IN.pack(4, 0), rq.Access(4)),
    (
        Opcode.CREATE,
        abi.CREATE_IN.pack(0o1101, 0o100644, 0o22, 0) + names(b"c"),
        rq.Create(b"c", 0o100644, 0o1101, 0o22),
    ),
    (Opcode.INTERRUPT, abi.INTERRUPT_IN.pack(40), rq.Interrupt(40)),
    (Opcode.DESTROY, b"", rq.EMPTY),
    (Opcode.FALLOCATE, abi.FALLOCATE_IN.pack(4, 10, 20, 1, 0), rq.Fallocate(4, 10, 20, 1)),
    (Opcode.LSEEK, abi.LSEEK_IN.pack(4, 10, 3, 0), rq.Lseek(4, 10, 3)),
    (
        Opcode.COPY_FILE_RANGE,
        abi.COPY_FILE_RANGE_IN.pack(1, 2, 3, 4, 5, 6, 0),
        rq.CopyFileRange(1, 2, 3, 4, 5, 6, 0),
    ),
    (Opcode.SYNCFS, abi.SYNCFS_IN.pack(0), rq.EMPTY),
]


@pytest.mark.parametrize(
    ("opcode", "args", "expected"), CASES, ids=lambda c: getattr(c, "name", "")
)
def test_every_request_decodes(opcode: int, args: bytes, expected: object) -> None:
    got = decoded(opcode, args)
    if type(got) is rq.BatchForget:
        got = list(got.items())
    assert got == expected


def test_every_implemented_opcode_has_a_case() -> None:
    covered = {opcode for opcode, _, _ in CASES} | {Opcode.WRITE}
    assert {operation.opcode for operation in OPERATIONS} <= covered


def test_write_keeps_data_as_views_of_one_buffer() -> None:
    data = request(Opcode.WRITE, write_in(4, 8, 5, abi.WRITE_KILL_SUIDGID) + b"hello")
    buffer = memoryview(bytearray(data))
    _, req = decode_request(NEW, [buffer])
    assert req == rq.Write(4, 8, [buffer[80:85]], True)
    assert req.data[0].obj is buffer.obj


def test_write_spanning_buffers_stays_zero_copy() -> None:
    data = bytearray(request(Opcode.WRITE, write_in(4, 0, 10) + b"0123456789"))
    pieces = [memoryview(data)[:30], memoryview(data)[30:84], memoryview(data)[84:]]
    _, req = decode_request(NEW, pieces)
    assert isinstance(req, rq.Write)
    assert b"".join(req.data) == b"0123456789"
    assert all(view.obj is data for view in req.data)
    assert [len(view) for view in req.data] == [4, 6]


def test_request_split_anywhere_decodes_the_same() -> None:
    data = request(Opcode.RENAME, abi.RENAME_IN.pack(8) + names(b"a", b"b"))
    for cut in range(1, len(data)):
        pieces = [memoryview(data[:cut]), memoryview(data[cut:])]
        assert decode_request(NEW, pieces)[1] == rq.Rename(8, b"a", b"b", 0)


def test_setxattr_without_ext_uses_the_compat_layout() -> None:
    args = abi.COMPAT_SETXATTR_IN.pack(2, 0) + names(b"user.x") + b"hi"
    assert decoded(Opcode.SETXATTR, args, Protocol(7, 38, 0)) == rq.Setxattr(b"user.x", b"hi", 0)


def test_extensions_are_skipped() -> None:
    data = bytearray(request(Opcode.LOOKUP, names(b"abc") + bytes(8)))
    abi.IN_HEADER.pack_into(data, 0, len(data), Opcode.LOOKUP, 2, 1, 0, 0, 0, 1, 0)
    assert parse(bytes(data))[1] == rq.Lookup(b"abc")


BAD = [
    (Opcode.LOOKUP, b"abc", errno.EINVAL),
    (Opcode.LOOKUP, names(b""), errno.EINVAL),
    (Opcode.LOOKUP, names(b"x" * 256), errno.ENAMETOOLONG),
    (Opcode.SYMLINK, names(b"l", b"x" * 4096), errno.ENAMETOOLONG),
    (Opcode.SYMLINK, names(b"l"), errno.EINVAL),
    (Opcode.RENAME, abi.RENAME_IN.pack(8) + names(b"a"), errno.EINVAL),
    (Opcode.GETATTR, b"\0" * 8, errno.EINVAL),
    (Opcode.SETATTR, b"", errno.EINVAL),
    (Opcode.BATCH_FORGET, abi.BATCH_FORGET_IN.pack(1000, 0), errno.EINVAL),
    (Opcode.WRITE, write_in(1, 0, 10) + b"short", errno.EINVAL),
    (Opcode.WRITE, b"\0" * 10, errno.EINVAL),
    (Opcode.SETXATTR, abi.SETXATTR_IN.pack(10, 0, 0, 0) + names(b"user.a") + b"x", errno.EINVAL),
    (Opcode.SETXATTR, abi.SETXATTR_IN.pack(1 << 20, 0, 0, 0) + names(b"user.a"), errno.E2BIG),
    (Opcode.GETXATTR, abi.GETXATTR_IN.pack(0, 0) + names(b"u" * 256), errno.ERANGE),
    (Opcode.BMAP, b"\0" * 16, errno.ENOSYS),
    (Opcode.IOCTL, b"\0" * 32, errno.ENOSYS),
    (999, b"", errno.ENOSYS),
]


@pytest.mark.parametrize(("opcode", "args", "error"), BAD)
def test_malformed_requests_become_errors(opcode: int, args: bytes, error: int) -> None:
    assert decoded(opcode, args) == rq.BadRequest(error)


def test_short_or_inconsistent_headers() -> None:
    assert parse(b"\0" * 39) == (None, rq.BadRequest(errno.EIO))
    data = bytearray(request(Opcode.LOOKUP, names(b"a")))
    header, req = parse(bytes(data) + b"extra")
    assert header is not None and req == rq.BadRequest(errno.EINVAL)
    abi.IN_HEADER.pack_into(data, 0, len(data), Opcode.LOOKUP, 2, 1, 0, 0, 0, 100, 0)
    assert parse(bytes(data))[1] == rq.BadRequest(errno.EINVAL)


def test_the_cap_is_on_the_header_length() -> None:
    data = request(Opcode.LOOKUP, names(b"a"))
    assert decode_request(NEW, [memoryview(data)], max_request=len(data))[1] == rq.Lookup(b"a")
    too_long = decode_request(NEW, [memoryview(data)], max_request=len(data) - 1)
    assert too_long[1] == rq.BadRequest(errno.ENOMEM)


@pytest.mark.parametrize(
    ("opcode", "args"),
    [
        (Opcode.SYMLINK, names(b"l", b"/target")),
        (Opcode.SETXATTR, abi.SETXATTR_IN.pack(3, 1, 0, 0) + names(b"user.a") + b"xyz"),
        (
            Opcode.BATCH_FORGET,
            abi.BATCH_FORGET_IN.pack(2, 0) + abi.FORGET_ONE.pack(5, 1) + abi.FORGET_ONE.pack(6, 2),
        ),
    ],
    ids=["symlink", "setxattr", "batch_forget"],
)
def test_any_request_split_anywhere_decodes_the_same(opcode: int, args: bytes) -> None:
    data = request(opcode, args)
    whole = decoded(opcode, args)
    for cut in range(1, len(data)):
        for second in (cut + 1, cut + 7):
            pieces = [
                memoryview(data)[:cut],
                memoryview(data)[cut:second],
                memoryview(data)[second:],
            ]
            got = decode_request(NEW, pieces)[1]
            if type(got) is rq.BatchForget:
                assert list(got.items()) == list(whole.items())
            else:
                assert got == whole
