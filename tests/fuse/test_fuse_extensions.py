"""Request extensions (fuse.h 7.38): FUSE_EXT_GROUPS decoded, malformed ones refused."""

from __future__ import annotations

import errno

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from hostfs.core.types import Caller
from hostfs.fuse import abi
from hostfs.fuse import requests as rq
from hostfs.fuse.abi import Opcode
from hostfs.fuse.dispatcher import Dispatcher
from hostfs.fuse.extensions import Extensions, decode_extensions
from hostfs.testing import fuse_wire as wire
from hostfs.testing.fuse_wire import groups_ext
from tests.fuse.fakefs import FakeFileSystem
from tests.fuse.test_fuse_requests import CASES, decoded, parse


def extended(opcode: int, args: bytes, extensions: bytes, **header: int) -> bytes:
    """A request with ``extensions`` after its arguments and ``total_extlen`` to match."""
    data = bytearray(wire.request(opcode, args + extensions, **header))
    data[36:38] = (len(extensions) // 8).to_bytes(2, "little")
    return bytes(data)


def extensions_of(data: bytes) -> Extensions | rq.BadRequest:
    header, args = rq.frame([memoryview(data)])
    assert header is not None and not isinstance(args, rq.BadRequest)
    return decode_extensions([memoryview(data)], header)


MKDIR = abi.MKDIR_IN.pack(0o755, 0o022) + wire.names(b"d")


def test_the_kernels_one_group() -> None:
    """get_create_supp_group sends one group, the parent directory's: 16 bytes."""
    assert len(groups_ext(4321)) == 16
    assert extensions_of(extended(Opcode.MKDIR, MKDIR, groups_ext(4321))) == Extensions((4321,))


def test_many_groups_unknown_types_skipped_and_no_extension() -> None:
    unknown = abi.EXT_HEADER.pack(24, 7) + bytes(16)  # a security context (types 0..31)
    data = extended(Opcode.MKDIR, MKDIR, unknown + groups_ext(1, 2, 3))
    assert extensions_of(data) == Extensions((1, 2, 3))
    assert extensions_of(wire.request(Opcode.MKDIR, MKDIR)) == Extensions()


@pytest.mark.parametrize(
    "extension",
    [
        abi.EXT_HEADER.pack(0, abi.EXT_GROUPS),  # a zero size would never advance
        abi.EXT_HEADER.pack(4, abi.EXT_GROUPS),  # smaller than its own header
        abi.EXT_HEADER.pack(12, abi.EXT_GROUPS) + bytes(4) + bytes(4),  # not 8-aligned
        abi.EXT_HEADER.pack(32, abi.EXT_GROUPS) + bytes(8),  # runs past the end
        abi.EXT_HEADER.pack(8, abi.EXT_GROUPS),  # no nr_groups
        groups_ext(1, count=2),  # counts more groups than it holds
        groups_ext(1, count=0xFFFF_FFFF),
        groups_ext(1) + groups_ext(2),  # two lists
    ],
    ids=["zero", "short", "misaligned", "past-end", "no-count", "count", "huge-count", "twice"],
)
def test_malformed_extensions_are_einval(extension: bytes) -> None:
    assert extensions_of(extended(Opcode.MKDIR, MKDIR, extension)) == rq.BadRequest(errno.EINVAL)


@pytest.mark.parametrize(("opcode", "args", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_no_decoder_reads_the_extension_as_its_arguments(
    opcode: int, args: bytes, expected: object
) -> None:
    """total_extlen's bytes are cut off before any decoder: a name stays the name, a WRITE's
    data stays its data, whatever opcode the extension follows."""
    plain = decoded(opcode, args)
    with_ext = parse(extended(opcode, args, groups_ext(77, 78), nodeid=7))[1]
    if isinstance(plain, rq.BatchForget):
        assert isinstance(with_ext, rq.BatchForget)
        assert list(with_ext.items()) == list(plain.items())
    elif isinstance(plain, rq.Write):
        assert isinstance(with_ext, rq.Write)
        assert [bytes(v) for v in with_ext.data] == [bytes(v) for v in plain.data]
    else:
        assert with_ext == plain


@given(st.binary(max_size=96).map(lambda raw: raw + bytes(-len(raw) % 8)))
def test_any_extension_bytes_decode_or_are_einval(extension: bytes) -> None:
    result = extensions_of(extended(Opcode.MKDIR, MKDIR, extension))
    assert isinstance(result, Extensions) or result == rq.BadRequest(errno.EINVAL)


# -- through the dispatcher --------------------------------------------------------


class RecordingFs(FakeFileSystem):
    """Remembers who asked for each creation."""

    def __init__(self) -> None:
        super().__init__()
        self.callers: list[Caller] = []

    async def mkdir(self, caller, parent, name, mode):
        self.callers.append(caller)
        return await super().mkdir(caller, parent, name, mode)

    async def lookup(self, caller, parent, name):
        self.callers.append(caller)
        return await super().lookup(caller, parent, name)


async def session(fs: RecordingFs, kernel_flags: int) -> Dispatcher:
    dispatcher = Dispatcher(fs)
    flags2 = kernel_flags >> 32
    init = abi.INIT_IN.pack(7, 38, 65536, (kernel_flags | abi.INIT_EXT) & 0xFFFFFFFF, flags2)
    reply = bytearray(256)
    written = await dispatcher.handle(
        [memoryview(wire.request(Opcode.INIT, init))], [memoryview(reply)]
    )
    agreed = abi.INIT_OUT.unpack_from(wire.reply(reply, written).payload)
    assert bool(agreed[10] << 32 & abi.CREATE_SUPP_GROUP) == bool(
        kernel_flags & abi.CREATE_SUPP_GROUP and fs.supplementary_groups
    )
    return dispatcher


async def answer(dispatcher: Dispatcher, data: bytes) -> int:
    reply = bytearray(4096)
    written = await dispatcher.handle([memoryview(data)], [memoryview(reply)])
    return -wire.reply(reply, written).error


async def test_a_creation_carries_the_groups_once_agreed() -> None:
    fs = RecordingFs()
    dispatcher = await session(fs, abi.CREATE_SUPP_GROUP)
    mkdir = extended(Opcode.MKDIR, MKDIR, groups_ext(4321), uid=1000, gid=1000)
    assert await answer(dispatcher, mkdir) == 0
    assert fs.callers[-1] == Caller(1000, 1000, 4242, (4321,))
    # Only creations: the same extension on a LOOKUP gives it no groups.
    lookup = extended(Opcode.LOOKUP, wire.names(b"x"), groups_ext(4321), uid=1000, gid=1000)
    assert await answer(dispatcher, lookup) == 0
    assert fs.callers[-1] == Caller(1000, 1000, 4242)
    # A malformed one is EINVAL, and the file system is not asked.
    asked = len(fs.callers)
    bad = extended(Opcode.MKDIR, MKDIR, groups_ext(1, count=9), uid=1000, gid=1000)
    assert await answer(dispatcher, bad) == errno.EINVAL
    assert len(fs.callers) == asked


async def test_without_the_flag_the_groups_are_ignored() -> None:
    for kernel_flags, supported in ((0, True), (abi.CREATE_SUPP_GROUP, False)):
        fs = RecordingFs()
        fs.supplementary_groups = supported
        dispatcher = await session(fs, kernel_flags)
        mkdir = extended(Opcode.MKDIR, MKDIR, groups_ext(4321), uid=1000, gid=1000)
        assert await answer(dispatcher, mkdir) == 0
        assert fs.callers[-1] == Caller(1000, 1000, 4242)


CREATIONS = [
    (Opcode.MKDIR, MKDIR),
    (Opcode.SYMLINK, wire.names(b"l", b"target")),
    (Opcode.CREATE, abi.CREATE_IN.pack(0o102, 0o644, 0o022, 0) + wire.names(b"f")),
    (Opcode.MKNOD, abi.MKNOD_IN.pack(0o10644, 0, 0o022, 0) + wire.names(b"p")),
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(CREATIONS),
    st.lists(
        st.one_of(
            st.builds(lambda groups: groups_ext(*groups), st.lists(st.integers(0, 2**32 - 1))),
            st.binary(max_size=40).map(lambda raw: raw + bytes(-len(raw) % 8)),
        ),
        max_size=3,
    ),
    st.integers(0, 23),
)
def test_the_dispatcher_answers_any_extension(
    creation: tuple[int, bytes], records: list[bytes], cut: int
) -> None:
    """Whatever follows a creation's arguments, split anywhere: an answer, 0 or EINVAL."""
    opcode, args = creation
    data = extended(opcode, args, b"".join(records), uid=1000, gid=1000)

    async def main() -> int:
        dispatcher = await session(RecordingFs(), abi.CREATE_SUPP_GROUP)
        point = len(data) - cut if cut < len(data) else len(data)
        readable = [memoryview(data)[:point], memoryview(data)[point:]]
        reply = bytearray(4096)
        written = await dispatcher.handle(readable, [memoryview(reply)])
        return -wire.reply(reply, written).error

    assert trio.run(main) in (0, errno.EINVAL)
