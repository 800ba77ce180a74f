"""The event loop's short poll for an expected reply (loop.py ``LoopRpc._poll``): it
reads the reply itself when nothing else wants to run, gives way at once when
another task does, waits for the reply asleep, not reading in a loop, and stops
waiting as soon as the event loop has I/O or a timer to see to."""

from __future__ import annotations

import select
import socket
import stat
import time
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from hostfs.backends.nfs import idle, loop
from hostfs.backends.nfs.libnfs_c import NfsStat64, lib
from hostfs.backends.nfs.loop import LoopRpc
from hostfs.backends.nfs.rpc3 import Request, getattr_request, root_filehandle
from tests.support.nfs_server import GaneshaServer
from tests.support.passes import in_one_pass


async def _sent(rpc_loop: LoopRpc) -> tuple[int, Request[NfsStat64]]:
    """A GETATTR3 of the export's root, sent on the loop's connection, not yet read."""
    context = await rpc_loop._connect(time.monotonic() + 10)
    rpc = lib.nfs_get_rpc_context(context.pointer)
    request: Request[NfsStat64] = getattr_request(root_filehandle(context))
    rpc_loop._pending.add(request)
    request.start(rpc)
    rpc_loop._service(rpc, select.POLLOUT)
    return rpc, request


def _poll(rpc_loop: LoopRpc, rpc: int, request: Request[NfsStat64]) -> bool:
    """``LoopRpc._poll`` as ``_pump`` calls it, with the event loop's state of the moment."""
    return rpc_loop._poll(rpc, request, *idle.loop_state())


@pytest.fixture
async def rpc_loop(nfs_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LoopRpc]:
    """A loop connection whose poll is long enough for any reply: an answer read must
    come from _poll's own reads, and a poll that stops stopped for another reason."""
    monkeypatch.setattr(loop, "REPLY_POLL_NS", 60 * 10**9)
    rpc_loop = LoopRpc(nfs_url.encode(), 10_000)
    yield rpc_loop
    rpc_loop.close()


async def test_poll_reads_the_reply_while_nothing_else_runs(rpc_loop: LoopRpc) -> None:
    rpc, request = await _sent(rpc_loop)
    assert _poll(rpc_loop, rpc, request)
    assert request.done is not None
    assert stat.S_ISDIR(request.result().mode)  # the root's GETATTR3 reply


async def test_poll_gives_way_to_a_runnable_task(rpc_loop: LoopRpc) -> None:
    rpc, request = await _sent(rpc_loop)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0)  # runnable from now on
        assert not _poll(rpc_loop, rpc, request)
        assert request.done is None  # no reply read: the poll stopped before any
    while request.done is None:  # the ordinary wait still gets it
        await rpc_loop._pump(rpc_loop._context, rpc, request)  # type: ignore[arg-type]
    request.result()


async def test_poll_gives_way_to_a_task_still_to_run_in_this_pass(rpc_loop: LoopRpc) -> None:
    """Two tasks woken together run in one batch, in no run queue: the first to run
    must not wait for a reply while the other one waits behind it."""
    rpc, request = await _sent(rpc_loop)
    polled = await in_one_pass(lambda: _poll(rpc_loop, rpc, request))
    assert polled == [False, True]  # the second, with nothing left to run, read it
    request.result()


async def test_poll_sleeps_until_the_reply_can_be_read(
    nfs_url: str, nfs_server: GaneshaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the server paused no reply can come: the whole window is one wait in the
    kernel and the reads around it, where reading in a loop made thousands."""
    monkeypatch.setattr(loop, "REPLY_POLL_NS", 200 * 10**6)
    rpc_loop = LoopRpc(nfs_url.encode(), 10_000)
    try:
        await rpc_loop._connect(time.monotonic() + 10)
        reads: list[int] = []
        service = LoopRpc._service
        monkeypatch.setattr(rpc_loop, "_service", lambda *args: reads.append(service(*args)))
        nfs_server.pause()
        try:
            rpc, request = await _sent(rpc_loop)
            assert not _poll(rpc_loop, rpc, request)
        finally:
            nfs_server.resume()
        assert request.done is None
        assert len(reads) <= 3  # the send, the wait's, perhaps one early wake-up
    finally:
        rpc_loop.close()


class Waits:
    """The :func:`~hostfs.backends.nfs.idle.ready` calls of a poll: timeouts and
    whether trio had work."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.timeouts_ns: list[int] = []
        self.busy: list[bool] = []
        monkeypatch.setattr(loop, "ready", self.ready)

    def ready(self, fd: int, events: int, timeout_ns: int, loop_fd: int | None) -> tuple[int, bool]:
        self.timeouts_ns.append(timeout_ns)
        revents, busy = idle.ready(fd, events, timeout_ns, loop_fd)
        self.busy.append(busy)
        return revents, busy


@pytest.fixture
async def unanswered(
    nfs_url: str, nfs_server: GaneshaServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[LoopRpc, int, Request[NfsStat64]]]:
    """A call the paused server cannot answer, and a poll whose own limit (a minute)
    no test reaches: what ends the wait is the event loop's work."""
    monkeypatch.setattr(loop, "POLL_MS", 60_000)
    rpc_loop = LoopRpc(nfs_url.encode(), 120_000)
    await rpc_loop._connect(time.monotonic() + 10)
    nfs_server.pause()
    try:
        rpc, request = await _sent(rpc_loop)
        yield rpc_loop, rpc, request
    finally:
        nfs_server.resume()
        rpc_loop.close()


async def test_poll_ends_when_the_loop_has_io(
    unanswered: tuple[LoopRpc, int, Request[NfsStat64]], monkeypatch: pytest.MonkeyPatch
) -> None:
    rpc_loop, rpc, request = unanswered
    waits = Waits(monkeypatch)
    mine, theirs = socket.socketpair()
    with mine, theirs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.lowlevel.wait_readable, mine)
            await trio.testing.wait_all_tasks_blocked()
            theirs.send(b"x")  # ready for trio, which has not looked yet
            assert not _poll(rpc_loop, rpc, request)
    assert waits.busy[-1]


async def test_poll_ends_by_the_loops_next_deadline(
    unanswered: tuple[LoopRpc, int, Request[NfsStat64]], monkeypatch: pytest.MonkeyPatch
) -> None:
    rpc_loop, rpc, request = unanswered
    waits = Waits(monkeypatch)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0.05)
        await trio.testing.wait_all_tasks_blocked()
        assert not _poll(rpc_loop, rpc, request)
    assert waits.timeouts_ns and max(waits.timeouts_ns) <= 0.05 * 1e9


async def test_pump_lets_runnable_tasks_go_first_then_waits_in_the_loops_place(
    rpc_loop: LoopRpc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task runnable when the pump starts gets a turn first (it blocks soon, as a FUSE
    worker going back to /dev/fuse does); then the reply is waited for in a select.

    trio runs each batch of runnable tasks in a random direction, so the other task
    may still be runnable after the one checkpoint: over 20 calls the wait happens at
    least once (all 20 missing it: one chance in a million), and never without it.
    """
    waits = Waits(monkeypatch)
    for _ in range(20):
        rpc, request = await _sent(rpc_loop)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 1)  # runnable now, blocked after one step
            while request.done is None:
                await rpc_loop._pump(rpc_loop._context, rpc, request)  # type: ignore[arg-type]
            nursery.cancel_scope.cancel()
        request.result()
    assert waits.timeouts_ns  # some replies were waited for in _poll, not in trio's epoll
