"""One ring's task (hostfs.vhost.ring) over a simulated driver, without a socket."""

from __future__ import annotations

import os
from collections.abc import Sequence

import trio

from hostfs.testing.driver_queue import DriverQueue
from hostfs.testing.guest_ram import GuestRam
from hostfs.vhost.memory import GuestMemory
from hostfs.vhost.ring import INLINE_BATCH, Ring
from hostfs.vhost.ring_state import RingState
from tests.support.rings import EchoHandler, device_queue


async def test_kick_fd_at_end_of_file_breaks_the_queue(rings) -> None:
    """A kick fd that reads as end of file is readable for ever: the ring must not spin.

    The device refuses such fds (test_eventfd); this is the ring's own guard.
    """
    memory, driver = rings
    reader, writer = os.pipe()
    os.close(writer)
    ring = Ring(1)
    ring.lifecycle.kick(protocol_features=False)  # SET_VRING_KICK
    ring.kick_fd = reader
    with trio.fail_after(5):
        await ring.serve(device_queue(memory, driver), EchoHandler(), 0)
    assert ring.lifecycle.state is RingState.BROKEN
    ring.close_fds()


class TaskRecorder:
    """Records the task each request is served in; ``may_yield`` as the dispatcher's."""

    def __init__(self, waits: bool) -> None:
        self.waits = waits
        self.tasks: list[trio.lowlevel.Task] = []

    def may_yield(self, readable: Sequence[memoryview]) -> bool:
        return self.waits

    async def handle(self, readable: Sequence[memoryview], writable: Sequence[memoryview]) -> int:
        self.tasks.append(trio.lowlevel.current_task())
        return 0


async def serve_until_returned(
    memory: GuestMemory, driver: DriverQueue, handler: object, chains: int
) -> list[str]:
    """Serve ``chains`` requests the driver made available; note what another task saw."""
    for _ in range(chains):
        driver.submit([b"request"], [16])
    ring = Ring(1)
    ring.lifecycle.kick(protocol_features=False)  # SET_VRING_KICK
    ring.kick_fd, ring.call_fd = os.dup(driver.kick_fd), os.dup(driver.call_fd)
    seen: list[str] = []

    async def bystander() -> None:
        while True:
            seen.append(f"{len(getattr(handler, 'tasks', []))}")
            await trio.lowlevel.checkpoint()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bystander)
            await nursery.start(ring.serve, device_queue(memory, driver), handler, 4)
            returned = 0
            while returned < chains:
                returned += len(driver.collect())
                await trio.sleep(0.001)
            await ring.stop()
            nursery.cancel_scope.cancel()
    ring.close_fds()
    return seen


async def test_requests_that_cannot_wait_are_served_in_the_rings_own_task(rings) -> None:
    memory, driver = rings
    handler = TaskRecorder(waits=False)

    await serve_until_returned(memory, driver, handler, 5)

    assert len(handler.tasks) == 5 and len(set(handler.tasks)) == 1


async def test_requests_that_may_yield_get_a_task_each(rings) -> None:
    memory, driver = rings
    handler = TaskRecorder(waits=True)

    await serve_until_returned(memory, driver, handler, 5)

    assert len(set(handler.tasks)) == 5


async def test_a_full_ring_served_inline_still_lets_other_tasks_run() -> None:
    """Four batches' worth of chains at once: other tasks (rings, the socket) get turns."""
    ram = GuestRam(1 << 20)
    memory = GuestMemory()
    memory.add(ram.region(), ram.fd)
    driver = DriverQueue(ram, 1, 8 * INLINE_BATCH)  # two descriptors a chain
    handler = TaskRecorder(waits=False)
    try:
        seen = await serve_until_returned(memory, driver, handler, 4 * INLINE_BATCH)
    finally:
        driver.close()
        memory.clear()
        ram.close()

    served_meanwhile = {int(count) for count in seen} - {0, 4 * INLINE_BATCH}
    assert served_meanwhile, "no other task ran while the ring worked through its chains"
