"""Many calls in flight on the event loop's connection (loop.py): one task pumps the
socket, the others sleep until their own reply has come, and when the pumping task
leaves (answered, cancelled) one sleeper takes its place.

The server is paused (SIGSTOP) while the calls wait, so no reply can come and the
pumping task wakes only for its 100 ms timeouts (``POLL_MS``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator

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


@pytest.fixture
async def connected(nfs_url: str) -> AsyncIterator[tuple[LoopRpc, bytes]]:
    """A loop connection, mounted, and the export root's filehandle."""
    rpc_loop = LoopRpc(nfs_url.encode(), 10_000)
    context = await rpc_loop._connect(time.monotonic() + 10)
    yield rpc_loop, root_filehandle(context)
    rpc_loop.close()


async def _getattr(
    rpc_loop: LoopRpc, root: bytes, tasks: list[trio.lowlevel.Task], done: list[NfsStat64]
) -> None:
    tasks.append(trio.lowlevel.current_task())
    done.append(await rpc_loop.getattr(root))


async def test_sleepers_wake_only_for_their_reply(
    connected: tuple[LoopRpc, bytes], nfs_server: GaneshaServer
) -> None:
    rpc_loop, root = connected
    tasks: list[trio.lowlevel.Task] = []
    done: list[NfsStat64] = []
    counting = TaskSteps()
    with trio.fail_after(20):
        nfs_server.pause()
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(CALLS):
                    nursery.start_soon(_getattr, rpc_loop, root, tasks, done)
                await trio.testing.wait_all_tasks_blocked()
                trio.lowlevel.add_instrument(counting)
                await trio.sleep(3.5 * POLL_MS / 1000)  # three pump timeouts and a half
                trio.lowlevel.remove_instrument(counting)
                nfs_server.resume()
        finally:
            nfs_server.resume()
    assert len(done) == CALLS
    steps = sorted(counting.steps[task] for task in tasks)
    # The pumping task woke for each timeout; the sleepers, never.
    assert steps[-1] >= 3
    assert steps[:-1] == [0] * (CALLS - 1)


async def test_a_sleeper_takes_over_from_a_cancelled_pump(
    connected: tuple[LoopRpc, bytes], nfs_server: GaneshaServer
) -> None:
    rpc_loop, root = connected
    tasks: list[trio.lowlevel.Task] = []
    done: list[NfsStat64] = []
    with trio.fail_after(20):
        nfs_server.pause()
        try:
            async with trio.open_nursery() as nursery:
                first = trio.CancelScope()
                nursery.start_soon(_pumping, rpc_loop, root, first)
                await trio.testing.wait_all_tasks_blocked()
                for _ in range(CALLS - 1):
                    nursery.start_soon(_getattr, rpc_loop, root, tasks, done)
                await trio.testing.wait_all_tasks_blocked()
                first.cancel()  # the pumping task leaves before any reply
                await trio.testing.wait_all_tasks_blocked()
                nfs_server.resume()
        finally:
            nfs_server.resume()
    assert len(done) == CALLS - 1  # the sleepers pumped for themselves


async def _pumping(rpc_loop: LoopRpc, root: bytes, scope: trio.CancelScope) -> None:
    with scope:
        await rpc_loop.getattr(root)
