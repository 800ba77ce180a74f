"""Guest memory translation: every range inside the guest's regions, or refused."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import pytest

from hostfs.vhost.memory import GuestMemory, GuestMemoryError
from hostfs.vhost.messages import MemoryRegionDesc

PAGE = mmap.PAGESIZE


def memfd(size: int, fill: int) -> int:
    fd = os.memfd_create("test", os.MFD_CLOEXEC)
    os.write(fd, bytes([fill]) * size)
    return fd


@pytest.fixture
def memory() -> Iterator[GuestMemory]:
    """Two adjacent regions (0x10000, 2 pages of 0xAA; 0x12000, 1 page of 0xBB), then a hole,
    then a region at 0x20000 mapped from page 1 of its fd."""
    memory = GuestMemory()
    fds = [memfd(2 * PAGE, 0xAA), memfd(PAGE, 0xBB), memfd(2 * PAGE, 0xCC)]
    os.pwrite(fds[2], b"\xdd" * PAGE, PAGE)
    memory.add(MemoryRegionDesc(0x10000, 2 * PAGE, 0x7000_0000, 0), fds[0])
    memory.add(MemoryRegionDesc(0x12000, PAGE, 0x9000_0000, 0), fds[1])
    memory.add(MemoryRegionDesc(0x20000, PAGE, 0xA000_0000, PAGE), fds[2])
    for fd in fds:
        os.close(fd)
    yield memory
    memory.clear()


def test_translation_inside_one_region(memory: GuestMemory) -> None:
    (view,) = memory.buffers(0x10010, 16)
    assert bytes(view) == b"\xaa" * 16
    view[0] = 1
    assert memory.read(0x10010, 1) == b"\x01"


def test_mmap_offset_is_honoured(memory: GuestMemory) -> None:
    assert memory.read(0x20000, 4) == b"\xdd" * 4


def test_range_split_across_adjacent_regions(memory: GuestMemory) -> None:
    views = memory.buffers(0x12000 - 8, 16)
    assert [bytes(v) for v in views] == [b"\xaa" * 8, b"\xbb" * 8]


@pytest.mark.parametrize(
    ("addr", "length"),
    [
        (0x0, 1),  # below guest memory
        (0x13000 - 4, 8),  # runs into the hole after the second region
        (0x20000 + PAGE - 1, 2),  # past the end of the last region
        (0x15000, 1),  # inside the hole
        (2**64 - 1, 2),  # wraps around
    ],
)
def test_ranges_outside_memory_are_refused(memory: GuestMemory, addr: int, length: int) -> None:
    with pytest.raises(GuestMemoryError):
        memory.buffers(addr, length)


def test_contiguous_refuses_region_boundaries(memory: GuestMemory) -> None:
    with pytest.raises(GuestMemoryError):
        memory.contiguous(0x12000 - 8, 16)
    assert len(memory.contiguous(0x12000, 16)) == 16


def test_frontend_addresses(memory: GuestMemory) -> None:
    assert bytes(memory.frontend_view(0x9000_0000 + 4, 4)) == b"\xbb" * 4
    with pytest.raises(GuestMemoryError):
        memory.frontend_view(0x9000_0000 + PAGE - 2, 4)
    with pytest.raises(GuestMemoryError):
        memory.frontend_view(0x12000, 4)  # a guest-physical address is not a user address


def test_overlapping_region_is_refused(memory: GuestMemory) -> None:
    fd = memfd(PAGE, 0)
    try:
        with pytest.raises(GuestMemoryError, match="overlaps"):
            memory.add(MemoryRegionDesc(0x11000, 2 * PAGE, 0, 0), fd)
    finally:
        os.close(fd)


def test_remove_region(memory: GuestMemory) -> None:
    memory.remove(MemoryRegionDesc(0x12000, PAGE, 0x9000_0000, 0))
    with pytest.raises(GuestMemoryError):
        memory.buffers(0x12000, 1)
    with pytest.raises(GuestMemoryError):
        memory.remove(MemoryRegionDesc(0x12000, PAGE, 0x9000_0000, 0))


def test_unmap_is_deferred_while_a_view_is_held(memory: GuestMemory) -> None:
    (view,) = memory.buffers(0x10000, 4)
    memory.clear()
    assert bytes(view) == b"\xaa" * 4  # still mapped for the request holding it
    view.release()


def test_bad_fd_is_an_error() -> None:
    memory = GuestMemory()
    with pytest.raises(GuestMemoryError):
        memory.add(MemoryRegionDesc(0, PAGE, 0, 0), 9999)
