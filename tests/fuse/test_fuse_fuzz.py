"""Fuzzing: random and mutated requests through the decoder and the dispatcher.

Bounded: 2000 examples through the decoder, 1000 sequences of up to 4 requests
through the dispatcher (about 8 s in all on this 2-core machine).
Whatever arrives, nothing escapes, and every reply is well formed: its length
field equals what was written, its error is a valid negative errno or 0, and
it answers the request's ``unique``.
"""

from __future__ import annotations

import itertools
import logging

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostfs.fuse import abi
from hostfs.fuse import requests as rq
from hostfs.fuse.abi import Opcode
from hostfs.fuse.dispatcher import Dispatcher
from hostfs.fuse.init import Protocol
from hostfs.testing import fuse_wire as wire
from tests.fuse.fakefs import FakeFileSystem
from tests.fuse.test_fuse_requests import CASES, decode_request

EXAMPLES = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
VALID = [wire.request(opcode, args, unique=2) for opcode, args, _ in CASES] + [
    wire.request(Opcode.WRITE, wire.write_in(3, 0, 4) + b"abcd", unique=2)
]
PROTOCOLS = st.sampled_from([Protocol(), Protocol(7, 31, 0), Protocol(7, 38, abi.SETXATTR_EXT)])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid request with bytes flipped, cut or appended, its header mostly kept sane."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    data = data[: draw(st.integers(0, len(data)))] + draw(st.binary(max_size=64))
    if len(data) >= abi.IN_HEADER.size and draw(st.booleans()):
        abi.IN_HEADER.pack_into(data, 0, len(data), *abi.IN_HEADER.unpack_from(data)[1:])
    return bytes(data)


@st.composite
def random_request(draw: st.DrawFn) -> bytes:
    """A header with any opcode (mostly real ones) and random arguments."""
    opcode = draw(st.one_of(st.sampled_from(list(Opcode)), st.integers(0, 2**32 - 1)))
    return wire.request(
        opcode, draw(st.binary(max_size=300)), unique=draw(st.integers(0, 2**64 - 1))
    )


def splits(data: bytes, cuts: list[int]) -> list[memoryview]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [memoryview(data)[a:b] for a, b in itertools.pairwise(points)] or [memoryview(data)]


@EXAMPLES
@given(st.one_of(mutated(), random_request()), PROTOCOLS, st.lists(st.integers(0, 400), max_size=3))
def test_decoder_never_raises(data: bytes, proto: Protocol, cuts: list[int]) -> None:
    header, request = decode_request(proto, splits(data, cuts))
    assert header is not None or len(data) < abi.IN_HEADER.size
    if type(request) is rq.BadRequest:
        assert 0 < request.errno < 512


def check_reply(data: bytes, reply: bytearray, written: int) -> None:
    if written == 0:
        return
    parsed = wire.reply(reply, written)
    assert -511 <= parsed.error <= 0
    if parsed.error:
        assert parsed.length == abi.OUT_HEADER.size
    assert parsed.unique == abi.IN_HEADER.unpack_from(data)[2]


@settings(EXAMPLES, max_examples=1000)
@given(
    st.lists(st.one_of(mutated(), random_request()), min_size=1, max_size=4),
    st.lists(st.integers(0, 400), max_size=3),
    st.sampled_from([16, 100, 4096, 1 << 16]),
)
def test_dispatcher_always_answers_well_formed(
    requests: list[bytes], cuts: list[int], reply_size: int
) -> None:
    async def main() -> None:
        fs = FakeFileSystem()
        fs.block.set()
        dispatcher = Dispatcher(fs)
        await dispatcher.handle(
            [memoryview(wire.request(Opcode.INIT, wire.init_in()))], [memoryview(bytearray(256))]
        )
        for data in requests:
            reply = bytearray(reply_size)
            writable = splits(reply, cuts) if len(cuts) > 1 else [memoryview(reply)]
            written = await dispatcher.handle(splits(data, cuts), writable)
            check_reply(data, reply, written)

    quiet = logging.getLogger("hostfs")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        trio.run(main)
    finally:
        quiet.setLevel(level)
