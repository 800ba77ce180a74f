"""A memory region's fd from the front-end: big enough, and kept from shrinking.

The device mmaps guest RAM from the front-end's fd (SET_MEM_TABLE,
ADD_MEM_REG).  A page of the mapping beyond the file's end raises SIGBUS on
access, which kills the daemon, so:

- a region that ends beyond the file is refused, as rust-vmm's vm-memory
  (virtiofsd's guest memory) refuses it (``MappingPastEof``);
- a file that could shrink later is sealed against it (``F_SEAL_SHRINK``,
  memfd_create(2) "File sealing"), so the front-end's ftruncate fails with
  EPERM.  QEMU's ``memory-backend-memfd`` seals its memfd already
  (``seal=on`` by default: GROW, SHRINK and SEAL), which is accepted as is.

Some fds cannot be sealed: plain files, memfds made without
MFD_ALLOW_SEALING, and tmpfs and hugetlbfs files opened by name, whose seals
start as ``F_SEAL_SEAL`` (mm/shmem.c, fs/hugetlbfs).  QEMU's
``memory-backend-file`` on /dev/shm or /dev/hugepages sends those, so they are
accepted with a warning: a front-end that shrinks one can still kill the
daemon, exactly as it can kill virtiofsd or any libvhost-user back-end.
Surviving that would take a SIGBUS handler that skips the faulting access,
which Python cannot run (its handlers run between bytecodes, after the fault
has already been retried forever), or reading guest memory with pread()
instead of a mapping.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import stat

from hostfs.vhost.messages import MemoryRegionDesc

logger = logging.getLogger(__name__)


class RegionFdError(Exception):
    """The fd cannot back the region."""


def check_region_fd(desc: MemoryRegionDesc, fd: int) -> bool:
    """Refuse an fd too small for ``desc``; seal it against shrinking.

    Returns whether the fd can no longer shrink.
    """
    return check_window(
        fd, desc.mmap_offset, desc.memory_size, f"memory region {desc.guest_phys_addr:#x}"
    )


def check_window(fd: int, offset: int, size: int, what: str) -> bool:
    """Refuse an fd whose file ends before ``offset + size``; seal it against shrinking.

    Every mapping of a front-end's fd goes through here (guest RAM, the dirty log):
    a page beyond the file's end would be a SIGBUS.  Returns whether the fd can no
    longer shrink.
    """
    try:
        info = os.fstat(fd)
    except OSError as error:
        raise RegionFdError(f"{what} fd {fd}: {error}") from error
    end = offset + size
    if stat.S_ISREG(info.st_mode) and info.st_size < end:
        raise RegionFdError(
            f"{what} ends at offset {end:#x}, beyond its file ({info.st_size:#x} bytes)"
        )
    return seal_against_shrinking(fd)


def map_window(fd: int, offset: int, size: int) -> tuple[mmap.mmap, int]:
    """``[offset, offset + size)`` of ``fd`` mapped shared and writable.

    mmap wants a page-aligned offset, so the mapping starts at the page below
    ``offset``; returned with where the window starts in it.  OSError, ValueError or
    OverflowError for what the kernel or mmap refuses.
    """
    page_offset = offset % mmap.ALLOCATIONGRANULARITY
    mapping = mmap.mmap(
        fd,
        size + page_offset,
        flags=mmap.MAP_SHARED,
        prot=mmap.PROT_READ | mmap.PROT_WRITE,
        offset=offset - page_offset,
    )
    return mapping, page_offset


def seal_against_shrinking(fd: int) -> bool:
    """Add ``F_SEAL_SHRINK`` where the fd allows it; True if it is sealed now."""
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError as error:
        if error.errno != errno.EINVAL:  # EINVAL: the file system has no seals
            logger.debug("F_GET_SEALS on fd %d: %s", fd, error)
        return False
    if seals & fcntl.F_SEAL_SHRINK:
        return True
    if seals & fcntl.F_SEAL_SEAL:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    except OSError as error:
        logger.debug("F_ADD_SEALS on fd %d: %s", fd, error)
        return False
    return True
