"""The device's side of a simulated driver's split ring, for tests below the socket."""

from __future__ import annotations

from collections.abc import Sequence

from hostfs.testing.driver_queue import DriverQueue
from hostfs.vhost.memory import GuestMemory
from hostfs.vhost.virtqueue import SplitQueue, avail_ring_size, desc_table_size, used_ring_size


def device_queue(
    memory: GuestMemory,
    driver: DriverQueue,
    *,
    last_avail_idx: int = 0,
    event_idx: bool = False,
    indirect: bool = False,
) -> SplitQueue:
    """A :class:`SplitQueue` over the rings ``driver`` laid out in ``memory``."""
    size = driver.size
    return SplitQueue(
        memory,
        size,
        memory.contiguous(driver.desc_addr, desc_table_size(size)),
        memory.contiguous(driver.avail_addr, avail_ring_size(size)),
        memory.contiguous(driver.used_addr, used_ring_size(size)),
        last_avail_idx=last_avail_idx,
        event_idx=event_idx,
        indirect=indirect,
    )


class EchoHandler:
    """A request handler that answers every chain with nothing written."""

    async def handle(self, readable: Sequence[memoryview], writable: Sequence[memoryview]) -> int:
        return 0
