"""The dirty-page log: which guest pages the back-end wrote while a migration runs.

vhost-user.rst, "Migration": with VHOST_F_LOG_ALL negotiated the back-end sets, for
every guest page it writes, bit ``gpa / 4096`` of the log the front-end shared with
SET_LOG_BASE (LOG_SHMFD: an fd, ``mmap_size`` and ``mmap_offset``); bit ``n`` of the
log is bit ``n % 8`` of byte ``n / 8`` (QEMU reads it as little-endian u64 words,
``vhost_log_chunk_t``).  The front-end clears words with an atomic exchange and
re-sends the pages whose bits it found, so the guest's RAM on the destination holds
what the back-end wrote.  Setting a bit here is a byte read-modify-write: racing the
front-end's exchange can only set a bit again (a page sent twice), never lose one.
Used-ring writes are logged at the ring's ``log_guest_addr`` when SET_VRING_ADDR
carried VHOST_VRING_F_LOG.
"""

from __future__ import annotations

import logging

from hostfs.vhost.messages import LogArea
from hostfs.vhost.region_fd import RegionFdError, check_window, map_window

logger = logging.getLogger(__name__)

LOG_PAGE = 0x1000
"""``VHOST_LOG_PAGE`` (QEMU's hw/virtio/vhost.c): one bit per 4 KiB of guest physical memory."""

VHOST_F_LOG_ALL = 1 << 26
"""The virtio feature bit that turns logging on (linux/vhost_types.h)."""

VHOST_VRING_F_LOG = 1 << 0
"""``vhost_vring_addr.flags``: log the used ring at ``log_guest_addr``."""


class DirtyLogError(Exception):
    """A log area that cannot be mapped."""


class DirtyLog:
    """The log bitmap, mapped from the fd of SET_LOG_BASE."""

    def __init__(self, fd: int, area: LogArea) -> None:
        if area.size == 0:
            raise DirtyLogError("log area of size 0")
        try:
            check_window(fd, area.offset, area.size, "dirty log")
            self._mmap, page_offset = map_window(fd, area.offset, area.size)
        except RegionFdError as error:
            raise DirtyLogError(str(error)) from error
        except (OSError, ValueError, OverflowError) as error:
            raise DirtyLogError(f"cannot map the log ({area}): {error}") from error
        self.bits = memoryview(self._mmap)[page_offset : page_offset + area.size]
        self._warned = False

    def mark(self, gpa: int, length: int) -> None:
        """Pages ``[gpa, gpa + length)`` were written."""
        if length <= 0:
            return
        bits = self.bits
        last = (gpa + length - 1) // LOG_PAGE
        if last // 8 >= len(bits):
            if not self._warned:
                logger.warning("guest address %#x beyond the dirty log", gpa + length - 1)
                self._warned = True
            last = len(bits) * 8 - 1
        for page in range(gpa // LOG_PAGE, last + 1):
            bits[page >> 3] |= 1 << (page & 7)

    def close(self) -> None:
        self.bits.release()
        try:
            self._mmap.close()
        except BufferError:
            logger.debug("dirty log still referenced; unmapped when released")
