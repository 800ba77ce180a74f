"""Many calls in flight on the event loop's connection (loop.py): one task pumps the
socket, the others sleep until their own reply has come, and when the pumping task
leaves (answered, cancelled) one sleeper takes its place.

The server is paused (SIGSTOP) while the calls wait, so no reply can come and the
pumping task reads it only at its 100 ms timeouts (``POLL_MS``).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
import trio.testing

from hostfs.backends.nfs.libnfs_c import NfsStat64
from hostfs.backends.nfs.loop import LoopRpc
from hostfs.backends.nfs.rpc3 import POLL_MS, root_filehandle
from tests.support.nfs_server import GaneshaServer

CALLS = 4


class TaskSteps(trio.abc.Instrument):
    """How many times each task ran."""

    def __init__(self) -> None:
        self.steps: Counter[trio.lowlevel.Task] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task] += 1


class Calls:
    """GETATTR3s of the export's root on one loop connection, and who made them."""

    def __init__(self, rpc_loop: LoopRpc, root: bytes) -> None:
        self.rpc_loop, self.root = rpc_loop, root
        self.tasks: list[trio.lowlevel.Task] = []
        self.done: list[NfsStat64] = []

    async def getattr(self) -> None:
        self.tasks.append(trio.lowlevel.current_task())
        self.done.append(await self.rpc_loop.getattr(self.root))

    async def cancellable(self, scope: trio.CancelScope) -> None:
        with scope:
            await self.rpc_loop.getattr(self.root)


@pytest.fixture
async def calls(nfs_url: str) -> AsyncIterator[Calls]:
    """Calls on a loop connection already mounted (the server may be paused after)."""
    rpc_loop = LoopRpc(nfs_url.encode(), 10_000)
    context = await rpc_loop._connect(time.monotonic() + 10)
    yield Calls(rpc_loop, root_filehandle(context))
    rpc_loop.close()


@contextlib.contextmanager
def paused(server: GaneshaServer) -> Iterator[None]:
    """``server`` answers nothing inside (SIGSTOP), and again after."""
    server.pause()
    try:
        yield
    finally:
        server.resume()


async def test_sleepers_wake_only_for_their_reply(
    calls: Calls, nfs_server: GaneshaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = TaskSteps()
    services: Counter[trio.lowlevel.Task] = Counter()
    service = LoopRpc._service

    def counted(rpc: int, revents: int) -> None:
        services[trio.lowlevel.current_task()] += 1
        service(rpc, revents)

    monkeypatch.setattr(calls.rpc_loop, "_service", counted)
    with trio.fail_after(20), paused(nfs_server):
        async with trio.open_nursery() as nursery:
            for _ in range(CALLS):
                nursery.start_soon(calls.getattr)
            await trio.testing.wait_all_tasks_blocked()
            trio.lowlevel.add_instrument(counting)
            await trio.sleep(3.5 * POLL_MS / 1000)  # three pump timeouts and a half
            trio.lowlevel.remove_instrument(counting)
            nfs_server.resume()  # the calls can finish
    assert len(calls.done) == CALLS
    steps = sorted(counting.steps[task] for task in calls.tasks)
    pumping = max(calls.tasks, key=lambda task: counting.steps[task])
    # The pumping task read the socket at each timeout (in trio's epoll or in its
    # place, loop.py _poll); the sleepers never woke.
    assert services[pumping] >= 3
    assert steps[:-1] == [0] * (CALLS - 1)


async def test_a_sleeper_takes_over_from_a_cancelled_pump(
    calls: Calls, nfs_server: GaneshaServer
) -> None:
    first = trio.CancelScope()
    with trio.fail_after(20), paused(nfs_server):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(calls.cancellable, first)
            await trio.testing.wait_all_tasks_blocked()
            for _ in range(CALLS - 1):
                nursery.start_soon(calls.getattr)
            await trio.testing.wait_all_tasks_blocked()
            first.cancel()  # the pumping task leaves before any reply
            await trio.testing.wait_all_tasks_blocked()
            nfs_server.resume()  # the calls can finish
    assert len(calls.done) == CALLS - 1  # the sleepers pumped for themselves
