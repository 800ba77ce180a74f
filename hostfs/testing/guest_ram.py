"""A simulated guest's RAM: one shared memfd, as ``memory-backend-memfd,share=on``.

The device maps the same fd, so what the simulated driver writes here is
what the device reads, and the other way round.
"""

from __future__ import annotations

import mmap
import os

from hostfs.vhost.messages import MemoryRegionDesc
from hostfs.vhost.ring_index import u16_fields

GUEST_PHYS_BASE = 0x100000
"""Where guest RAM starts in guest-physical space: not 0, so a zero address is a bug."""
FRONTEND_VIRT_BASE = 0x7F00_0000_0000
"""A made-up front-end virtual address for the same RAM (QEMU's mmap of it)."""


class GuestRam:
    """RAM with a bump allocator; :meth:`reset_allocations` frees everything past the rings."""

    def __init__(self, size: int) -> None:
        self.size = size
        # Sealable, as QEMU's memory-backend-memfd: the device seals it against shrinking.
        self.fd = os.memfd_create("hostfs-guest-ram", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, size)
        self._mmap = mmap.mmap(self.fd, size)
        self.view = memoryview(self._mmap)
        self._u16 = u16_fields(self.view)
        self._next = 0
        self._mark = 0

    def region(self) -> MemoryRegionDesc:
        return MemoryRegionDesc(GUEST_PHYS_BASE, self.size, FRONTEND_VIRT_BASE, 0)

    def alloc(self, size: int, align: int = 16) -> int:
        """A zeroed block: its guest-physical address."""
        start = -(-self._next // align) * align
        if start + size > self.size:
            raise MemoryError("simulated guest RAM exhausted")
        self._next = start + size
        self.view[start : start + size] = bytes(size)
        return GUEST_PHYS_BASE + start

    def keep_allocations(self) -> None:
        """What is allocated now (the rings) survives :meth:`reset_allocations`."""
        self._mark = self._next

    def reset_allocations(self) -> None:
        self._next = self._mark

    def offset(self, addr: int) -> int:
        return addr - GUEST_PHYS_BASE

    def frontend_addr(self, addr: int) -> int:
        return addr - GUEST_PHYS_BASE + FRONTEND_VIRT_BASE

    def write(self, addr: int, data: bytes) -> None:
        start = self.offset(addr)
        self.view[start : start + len(data)] = data

    def read(self, addr: int, size: int) -> bytes:
        start = self.offset(addr)
        return bytes(self.view[start : start + size])

    def read_u16(self, addr: int) -> int:
        """A ring index or event field, in one 16-bit load (hostfs.vhost.ring_index)."""
        return self._u16[self.offset(addr) // 2]

    def write_u16(self, addr: int, value: int) -> None:
        """A ring index or event field, in one 16-bit store: the device reads it meanwhile."""
        self._u16[self.offset(addr) // 2] = value

    def close(self) -> None:
        self._u16.release()
        self.view.release()
        self._mmap.close()
        os.close(self.fd)
