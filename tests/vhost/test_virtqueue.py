"""Split virtqueue rules (virtio 1.2 §2.7) on rings in shared memory, no sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hostfs.testing.driver_queue import DriverQueue
from hostfs.testing.guest_ram import GUEST_PHYS_BASE, GuestRam
from hostfs.vhost.memory import GuestMemory
from hostfs.vhost.messages import MemoryRegionDesc
from hostfs.vhost.virtqueue import (
    DESC,
    VRING_AVAIL_F_NO_INTERRUPT,
    VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
    RingError,
    SplitQueue,
    need_event,
)
from tests.support.rings import device_queue

SIZE = 16


@pytest.fixture
def ram() -> Iterator[GuestRam]:
    ram = GuestRam(1 << 20)
    yield ram
    ram.close()


@pytest.fixture
def memory(ram: GuestRam) -> Iterator[GuestMemory]:
    memory = GuestMemory()
    memory.add(ram.region(), ram.fd)
    yield memory
    memory.clear()


@pytest.fixture
def driver(ram: GuestRam) -> Iterator[DriverQueue]:
    queue = DriverQueue(ram, 1, SIZE)
    yield queue
    queue.close()


def serve(queue: SplitQueue, reply: bytes = b"ok") -> int:
    """Answer every available chain by writing ``reply``; return how many."""
    chains = queue.pop_all()
    for chain in chains:
        chain.writable[0][: len(reply)] = reply
        queue.push(chain.head, len(reply))
    return len(chains)


@pytest.mark.parametrize("indirect", [False, True])
def test_chain_buffers(memory: GuestMemory, driver: DriverQueue, indirect: bool) -> None:
    queue = device_queue(memory, driver, indirect=True)
    submitted = driver.submit([b"header", b"args"], [16, 32], indirect=indirect)
    (chain,) = queue.pop_all()
    assert [bytes(v) for v in chain.readable] == [b"header", b"args"]
    assert [len(v) for v in chain.writable] == [16, 32]
    chain.writable[1][:5] = b"reply"
    queue.push(chain.head, 21)
    (done,) = driver.collect()
    assert done is submitted
    assert done.reply == bytes(16) + b"reply"


def test_drains_everything_available(memory: GuestMemory, driver: DriverQueue) -> None:
    queue = device_queue(memory, driver)
    for _ in range(5):
        driver.submit([b"x"], [4])
    assert serve(queue) == 5
    assert len(driver.collect()) == 5
    assert queue.pop_all() == []


def test_index_wraparound(memory: GuestMemory, driver: DriverQueue) -> None:
    start = 0xFFFF - 2
    driver.avail_idx = start
    queue = device_queue(memory, driver, last_avail_idx=start)
    for _ in range(3):
        for _ in range(3):
            driver.submit([b"x"], [4])
        assert serve(queue) == 3
        assert len(driver.collect()) == 3
    assert queue.last_avail_idx == (start + 9) & 0xFFFF


def test_a_batch_that_wraps_the_ring_comes_out_in_order(
    memory: GuestMemory, driver: DriverQueue
) -> None:
    """pop_all takes a batch's heads in two slices when it runs past the ring's end."""
    start = SIZE - 2
    driver.avail_idx = start
    queue = device_queue(memory, driver, last_avail_idx=start)
    submitted = [driver.submit([bytes([i])], [4]) for i in range(5)]  # slots 14, 15, 0, 1, 2

    chains = queue.pop_all()

    assert [chain.head for chain in chains] == [s.head for s in submitted]
    assert [bytes(chain.readable[0]) for chain in chains] == [bytes([i]) for i in range(5)]
    assert queue.last_avail_idx == start + 5


def test_a_removed_region_is_not_guest_memory_any_more(ram: GuestRam) -> None:
    """Descriptors are checked against the table as it is now (GuestMemory.spans is
    rebuilt on REM_MEM_REG): a buffer in a removed region breaks the chain, it is not
    read through the old mapping."""
    memory = GuestMemory()
    memory.add(ram.region(), ram.fd)
    other = GuestRam(1 << 16)
    extra = MemoryRegionDesc(GUEST_PHYS_BASE + (1 << 24), other.size, 0x7E00_0000_0000, 0)
    memory.add(extra, other.fd)
    driver = DriverQueue(ram, 1, SIZE)
    try:
        queue = device_queue(memory, driver)
        raw_chain(driver, [(extra.guest_phys_addr, 64, 0, 0)])
        memory.remove(extra)
        with pytest.raises(RingError, match="not guest memory"):
            queue.pop_all()
    finally:
        driver.close()
        memory.clear()
        other.close()


def test_event_idx_notifications(memory: GuestMemory, driver: DriverQueue) -> None:
    queue = device_queue(memory, driver, event_idx=True)
    driver.set_used_event(1)  # interrupt me once used idx passes 1
    driver.submit([b"x"], [4])
    serve(queue)
    assert not queue.should_notify()  # used idx 1 has not passed used_event 1
    driver.submit([b"x"], [4])
    serve(queue)
    assert queue.should_notify()
    assert not queue.should_notify()  # nothing new since
    queue.request_kick()
    assert driver.avail_event() == 2


def test_need_event_wraps() -> None:
    assert need_event(0xFFFF, 0, 0xFFFE)
    assert not need_event(5, 3, 2)


def test_no_interrupt_flag(memory: GuestMemory, driver: DriverQueue) -> None:
    queue = device_queue(memory, driver)
    driver.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT)
    driver.submit([b"x"], [4])
    serve(queue)
    assert not queue.should_notify()
    driver.set_avail_flags(0)
    driver.submit([b"x"], [4])
    serve(queue)
    assert queue.should_notify()


def test_used_idx_continues_from_the_ring(memory: GuestMemory, driver: DriverQueue) -> None:
    driver.submit([b"x"], [4])
    serve(device_queue(memory, driver))
    assert device_queue(memory, driver, last_avail_idx=1).used_idx == 1


BAD = GUEST_PHYS_BASE + (1 << 20)  # just past the end of guest RAM


def raw_chain(driver: DriverQueue, descriptors: list[tuple[int, int, int, int]]) -> None:
    for index, (addr, length, flags, next_index) in enumerate(descriptors):
        driver.write_desc(index, addr, length, flags, next_index)
    driver.publish(0)


@pytest.mark.parametrize(
    ("descriptors", "message"),
    [
        (
            [
                (GUEST_PHYS_BASE, 8, VRING_DESC_F_NEXT, 1),
                (GUEST_PHYS_BASE, 8, VRING_DESC_F_NEXT, 0),
            ],
            "loop",
        ),
        ([(BAD - 4, 8, 0, 0)], "not guest memory"),
        ([(0, 8, 0, 0)], "not guest memory"),
        ([(GUEST_PHYS_BASE, 8, VRING_DESC_F_NEXT, SIZE)], "outside table"),
        (
            [
                (GUEST_PHYS_BASE, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1),
                (GUEST_PHYS_BASE, 8, 0, 0),
            ],
            "readable descriptor after",
        ),
    ],
)
def test_malformed_chains(
    memory: GuestMemory,
    driver: DriverQueue,
    descriptors: list[tuple[int, int, int, int]],
    message: str,
) -> None:
    queue = device_queue(memory, driver)
    raw_chain(driver, descriptors)
    with pytest.raises(RingError, match=message):
        queue.pop_all()


def test_chain_longer_than_queue(memory: GuestMemory, driver: DriverQueue) -> None:
    queue = device_queue(memory, driver)
    raw_chain(
        driver, [(GUEST_PHYS_BASE, 1, VRING_DESC_F_NEXT, (i + 1) % SIZE) for i in range(SIZE)]
    )
    with pytest.raises(RingError, match="longer than"):
        queue.pop_all()


def write_table(ram: GuestRam, descriptors: list[tuple[int, int, int, int]]) -> int:
    table = ram.alloc(DESC.size * len(descriptors))
    for i, desc in enumerate(descriptors):
        ram.write(table + DESC.size * i, DESC.pack(*desc))
    return table


@pytest.mark.parametrize(
    ("table", "flags", "message", "indirect_feature"),
    [
        (
            [(GUEST_PHYS_BASE, 8, 0, 0)],
            VRING_DESC_F_INDIRECT,
            "without VIRTIO_RING_F_INDIRECT",
            False,
        ),
        ([(GUEST_PHYS_BASE, 16, VRING_DESC_F_INDIRECT, 0)], VRING_DESC_F_INDIRECT, "nested", True),
        ([(GUEST_PHYS_BASE, 8, 0, 0)], VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, "both", True),
        ([(GUEST_PHYS_BASE, 8, VRING_DESC_F_NEXT, 0)], VRING_DESC_F_INDIRECT, "longer than", True),
    ],
)
def test_malformed_indirect(
    ram: GuestRam,
    memory: GuestMemory,
    driver: DriverQueue,
    table: list[tuple[int, int, int, int]],
    flags: int,
    message: str,
    indirect_feature: bool,
) -> None:
    queue = device_queue(memory, driver, indirect=indirect_feature)
    address = write_table(ram, table)
    raw_chain(driver, [(address, DESC.size * len(table), flags, 0)])
    with pytest.raises(RingError, match=message):
        queue.pop_all()


def test_indirect_table_outside_memory(memory: GuestMemory, driver: DriverQueue) -> None:
    queue = device_queue(memory, driver, indirect=True)
    raw_chain(driver, [(BAD - 8, 32, VRING_DESC_F_INDIRECT, 0)])
    with pytest.raises(RingError, match="not guest memory"):
        queue.pop_all()


def test_avail_idx_jumping_too_far(memory: GuestMemory, driver: DriverQueue) -> None:
    queue = device_queue(memory, driver)
    driver.submit([b"x"], [4])
    driver.publish(0, advance=SIZE)
    with pytest.raises(RingError, match="avail idx moved"):
        queue.pop_all()


@pytest.mark.parametrize("good_before", [0, 1])
def test_a_broken_chain_is_not_taken(
    memory: GuestMemory, driver: DriverQueue, good_before: int
) -> None:
    """Alone (pop_all's one-chain path) or after a good one, a chain that fails to read
    leaves ``last_avail_idx`` at it: the queue stops there (the ring marks it broken)."""
    queue = device_queue(memory, driver)
    for _ in range(good_before):
        driver.submit([b"x"], [4])
    driver.write_desc(SIZE - 1, BAD, 8, 0, 0)
    driver.publish(SIZE - 1)
    with pytest.raises(RingError, match="not guest memory"):
        queue.pop_all()
    assert queue.last_avail_idx == good_before
