"""One ring's task (hostfs.vhost.ring) over a simulated driver, without a socket."""

from __future__ import annotations

import os
from collections.abc import Sequence

import trio

from hostfs.testing.driver_queue import DriverQueue
from hostfs.vhost.memory import GuestMemory
from hostfs.vhost.ring import Ring
from hostfs.vhost.virtqueue import SplitQueue, avail_ring_size, desc_table_size, used_ring_size
from tests.vhost.conftest import RING_SIZE as SIZE  # the rings fixture's


class EchoHandler:
    async def handle(self, readable: Sequence[memoryview], writable: Sequence[memoryview]) -> int:
        return 0


def device_queue(memory: GuestMemory, driver: DriverQueue) -> SplitQueue:
    return SplitQueue(
        memory,
        SIZE,
        memory.contiguous(driver.desc_addr, desc_table_size(SIZE)),
        memory.contiguous(driver.avail_addr, avail_ring_size(SIZE)),
        memory.contiguous(driver.used_addr, used_ring_size(SIZE)),
    )


async def test_kick_fd_at_end_of_file_breaks_the_queue(rings) -> None:
    """A kick fd that reads as end of file is readable for ever: the ring must not spin.

    The device refuses such fds (test_eventfd); this is the ring's own guard.
    """
    memory, driver = rings
    reader, writer = os.pipe()
    os.close(writer)
    ring = Ring(1)
    ring.kick_fd = reader
    with trio.fail_after(5):
        await ring.serve(device_queue(memory, driver), EchoHandler(), 0)
    assert ring.broken
    ring.close_fds()
