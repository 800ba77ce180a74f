"""The guest's memory as the front-end shares it: mmap'd region fds.

vhost-user.rst, "Memory region description": each region has a guest
physical address (what descriptors carry), a front-end virtual address (what
SET_VRING_ADDR carries), a size, and an offset into the fd that backs it.
Every translation checks that the whole range lies inside guest memory; the
guest is untrusted, so no address it writes can reach anything else.
"""

from __future__ import annotations

import logging
import os

from hostfs.fuse.ratelimit import RateLimitedLog
from hostfs.vhost.messages import MemoryRegionDesc
from hostfs.vhost.region_fd import RegionFdError, check_region_fd, map_window

logger = logging.getLogger(__name__)
guest_errors = RateLimitedLog(logger)
"""The front-end chooses its region fds and sends ADD_MEM_REG as often as it likes."""


class GuestMemoryError(Exception):
    """An address range that is not (entirely) guest memory."""


class MappedRegion:
    """One region fd mapped read/write and shared with the front-end."""

    def __init__(self, desc: MemoryRegionDesc, fd: int) -> None:
        if desc.memory_size == 0:
            raise GuestMemoryError("memory region of size 0")
        try:
            self._mmap, page_offset = map_window(fd, desc.mmap_offset, desc.memory_size)
        except (OSError, ValueError, OverflowError) as error:
            raise GuestMemoryError(f"cannot map memory region {desc}: {error}") from error
        self.desc = desc
        self.guest_start = desc.guest_phys_addr
        self.guest_end = desc.guest_phys_addr + desc.memory_size
        self.user_start = desc.userspace_addr
        self.user_end = desc.userspace_addr + desc.memory_size
        self.view = memoryview(self._mmap)[page_offset : page_offset + desc.memory_size]

    def close(self) -> None:
        """Unmap; views still held by in-flight requests keep the pages until they go."""
        self.view.release()
        try:
            self._mmap.close()
        except BufferError:
            logger.debug("region %#x still referenced; unmapped when released", self.guest_start)


class GuestMemory:
    """The current memory table (SET_MEM_TABLE, or ADD_MEM_REG / REM_MEM_REG)."""

    def __init__(self) -> None:
        self._regions: list[MappedRegion] = []
        self.spans: tuple[tuple[int, int, memoryview], ...] = ()
        """``(guest_start, guest_end, view)`` of each region, for the ring's hot loop
        (hostfs.vhost.virtqueue): a tuple unpack there, not three attribute loads per
        descriptor.  Rebuilt whenever the table changes; never changed in place."""

    @property
    def regions(self) -> list[MappedRegion]:
        return self._regions

    @regions.setter
    def regions(self, regions: list[MappedRegion]) -> None:
        self._regions = regions
        self._table_changed()

    def _table_changed(self) -> None:
        self.spans = tuple((r.guest_start, r.guest_end, r.view) for r in self._regions)

    def add(self, desc: MemoryRegionDesc, fd: int) -> None:
        """Map ``fd`` for ``desc``; the caller still owns (and closes) ``fd``."""
        end = desc.guest_phys_addr + desc.memory_size
        for region in self.regions:
            if desc.guest_phys_addr < region.guest_end and region.guest_start < end:
                raise GuestMemoryError(f"region at {desc.guest_phys_addr:#x} overlaps another")
        try:
            sealed = check_region_fd(desc, fd)
        except RegionFdError as error:
            raise GuestMemoryError(str(error)) from error
        if not sealed:
            guest_errors.log(
                "unsealable regions",
                logging.WARNING,
                "memory region %#x: its fd cannot be sealed against shrinking; a front-end "
                "that truncates it can crash the daemon (hostfs.vhost.region_fd)",
                desc.guest_phys_addr,
            )
        self._regions.append(MappedRegion(desc, fd))
        self._regions.sort(key=lambda r: r.guest_start)
        self._table_changed()

    def replace(self, descs: list[MemoryRegionDesc], fds: list[int]) -> None:
        """SET_MEM_TABLE: map the new table completely before dropping the old one.

        The object stays the same, so running queues translate through the new
        table at once; their ring views keep old pages alive until released.
        """
        if len(descs) != len(fds):
            raise GuestMemoryError(f"{len(descs)} memory regions but {len(fds)} fds")
        old, self.regions = self.regions, []
        try:
            for desc, fd in zip(descs, fds, strict=True):
                self.add(desc, fd)
        except GuestMemoryError:
            self.clear()
            self.regions = old
            raise
        for region in old:
            region.close()

    def remove(self, desc: MemoryRegionDesc) -> None:
        """REM_MEM_REG names a region by guest address, size and user address."""
        for region in self.regions:
            if (
                region.guest_start == desc.guest_phys_addr
                and region.desc.memory_size == desc.memory_size
                and region.user_start == desc.userspace_addr
            ):
                self._regions.remove(region)
                self._table_changed()
                region.close()
                return
        raise GuestMemoryError(f"no memory region at {desc.guest_phys_addr:#x} to remove")

    def clear(self) -> None:
        for region in self.regions:
            region.close()
        self.regions = []

    def buffers(self, addr: int, length: int) -> list[memoryview]:
        """Views of ``[addr, addr + length)`` in guest-physical space, one per region crossed.

        A range that ends in a hole or beyond the last region is refused; an
        empty range has no views.
        """
        views: list[memoryview] = []
        if length == 0:
            return views
        for region in self.regions:
            # The common case first: the whole range in the region it starts in.
            start = region.guest_start
            if start <= addr and addr + length <= region.guest_end:
                offset = addr - start
                views.append(region.view[offset : offset + length])
                return views
        for region in self.regions:
            if region.guest_start <= addr < region.guest_end:
                offset = addr - region.guest_start
                chunk = min(length, region.guest_end - addr)
                views.append(region.view[offset : offset + chunk])
                addr += chunk
                length -= chunk
                if length == 0:
                    return views
        raise GuestMemoryError(f"guest range {addr:#x}+{length:#x} is not guest memory")

    def contiguous(self, addr: int, length: int) -> memoryview:
        """A single view of a guest-physical range that must lie in one region."""
        for region in self.regions:
            if region.guest_start <= addr and addr + length <= region.guest_end:
                offset = addr - region.guest_start
                return region.view[offset : offset + length]
        raise GuestMemoryError(f"guest range {addr:#x}+{length:#x} is not in one region")

    def read(self, addr: int, length: int) -> bytes:
        """A copy of a guest-physical range (indirect tables that straddle regions)."""
        return b"".join(bytes(v) for v in self.buffers(addr, length))

    def frontend_view(self, user_addr: int, length: int) -> memoryview:
        """SET_VRING_ADDR carries front-end virtual addresses: ``userspace_addr`` maps them."""
        for region in self.regions:
            if region.user_start <= user_addr and user_addr + length <= region.user_end:
                offset = user_addr - region.user_start
                return region.view[offset : offset + length]
        raise GuestMemoryError(f"front-end range {user_addr:#x}+{length:#x} is not guest memory")


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError as error:
            logger.debug("closing fd %d: %s", fd, error)
