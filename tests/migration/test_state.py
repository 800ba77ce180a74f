"""The migration stream codec: round trips, validation, and a fuzzed decoder.

Bounded: 1500 mutated and 500 random streams (a few seconds).  Whatever arrives,
``decode`` returns a valid State or raises StateError, nothing else; and a state
it accepts encodes back to the very bytes.
"""

from __future__ import annotations

import fcntl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostfs.migration import state
from hostfs.migration.state import (
    DirState,
    FileState,
    FlockState,
    NodeState,
    PosixLockState,
    SessionState,
    State,
    StateError,
)

SAMPLE = State(
    SessionState(True, 7, 38, 0x45044642B),
    next_nodeid=10,
    next_file_fh=5,
    next_dir_fh=3,
    nodes=[
        NodeState(2, 0, 3, 0o40755, b"work"),
        NodeState(7, 0, 1, 0o100644, b"work/log"),
    ],
    files=[FileState(4, 7, 0o2002)],
    dirs=[DirState(2, 2), DirState(1, 1)],
    posix_locks=[PosixLockState(7, 0xDEAD, 0, state.OFFSET_MAX, fcntl.F_WRLCK, 42)],
    flocks=[FlockState(7, 0xBEEF, fcntl.F_RDLCK)],
)

FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_round_trip() -> None:
    data = state.encode(SAMPLE)
    assert data.startswith(state.MAGIC)
    assert state.decode(data) == SAMPLE


def test_an_empty_session_round_trips() -> None:
    empty = State(SessionState(False), 2, 1, 1)
    assert state.decode(state.encode(empty)) == empty


@pytest.mark.parametrize(
    "broken",
    [
        State(SAMPLE.session, 7, 5, 3, SAMPLE.nodes),  # nodeid 7 not below next_nodeid
        State(SAMPLE.session, 10, 5, 3, [NodeState(1, 0, 1, 0o40755, b"root")]),
        State(SAMPLE.session, 10, 5, 3, [SAMPLE.nodes[0], SAMPLE.nodes[0]]),  # repeated
        State(SAMPLE.session, 10, 5, 3, [NodeState(2, 0, 0, 0o40755, b"w")]),  # no lookups
        State(SAMPLE.session, 10, 5, 3, SAMPLE.nodes, [FileState(4, 9, 0)]),  # unknown node
        State(SAMPLE.session, 10, 4, 3, SAMPLE.nodes, SAMPLE.files),  # fh 4 not below 4
        State(SAMPLE.session, 10, 5, 3, SAMPLE.nodes, [FileState(4, 7, 0)] * 2),
        State(
            SAMPLE.session, 10, 5, 3, SAMPLE.nodes, posix_locks=[PosixLockState(7, 1, 5, 4, 1, 0)]
        ),
        State(SAMPLE.session, 10, 5, 3, SAMPLE.nodes, flocks=[FlockState(7, 1, fcntl.F_UNLCK)]),
    ],
)
def test_inconsistent_states_are_refused(broken: State) -> None:
    with pytest.raises(StateError):
        state.encode(broken)


@pytest.mark.parametrize(
    "path",
    [b"", b"/etc/passwd", b"..", b"work/../..", b"a//b", b"work/", b"a\0b", b"x" * 256, b"."],
)
def test_paths_that_could_leave_the_share_are_refused(path: bytes) -> None:
    assert state.decode(_with_path(b"ok/fine")).nodes[0].path == b"ok/fine"  # the forgery works
    with pytest.raises(StateError):
        state.decode(_with_path(path))


def _with_path(path: bytes) -> bytes:
    """SAMPLE's stream with one node whose path is ``path``, however bad."""
    data = state.encode(State(SAMPLE.session, 10, 1, 1, [NodeState(2, 0, 1, 0o40755, b"p")]))
    length_at = data.index(b"p") - 2
    return data[:length_at] + len(path).to_bytes(2, "little") + path + data[length_at + 3 :]


def test_counts_beyond_the_stream_are_refused_before_reading() -> None:
    data = bytearray(state.encode(State(SAMPLE.session, 10, 1, 1)))
    count_at = len(state.MAGIC) + 8 + 17 + 24
    data[count_at : count_at + 4] = (2**32 - 1).to_bytes(4, "little")
    with pytest.raises(StateError, match="do not fit"):
        state.decode(bytes(data))


def test_trailing_bytes_and_oversize_streams_are_refused() -> None:
    with pytest.raises(StateError, match="after the state"):
        state.decode(state.encode(SAMPLE) + b"\0")
    with pytest.raises(StateError, match="exceeds"):
        state.decode(bytes(state.MAX_STATE_SIZE + 1))


def _decodes_or_refuses(data: bytes) -> None:
    try:
        decoded = state.decode(data)
    except StateError:
        return
    assert state.encode(decoded) == data


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(state.encode(SAMPLE))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))]) + draw(st.binary(max_size=48))


@FUZZ
@given(mutated())
def test_fuzz_mutated_streams(data: bytes) -> None:
    _decodes_or_refuses(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_random_streams(data: bytes) -> None:
    _decodes_or_refuses(state.MAGIC + data)
