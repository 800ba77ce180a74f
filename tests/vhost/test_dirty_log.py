"""The dirty log: with VHOST_F_LOG_ALL on, the pages the device wrote have their bits set.

The front-end shares a log (SET_LOG_BASE with LOG_SHMFD, as QEMU's
``vhost_dev_log_resize``), turns logging on for a running device (SET_FEATURES with
LOG_ALL, SET_VRING_ADDR with VHOST_VRING_F_LOG, as ``vhost_dev_set_log``) and the
guest READs: the pages of the reply's data and of the used ring are marked, and
nothing is marked before logging was turned on.
"""

from __future__ import annotations

import mmap
import os

import pytest

from hostfs.core.filesystem import ROOT_NODEID
from hostfs.testing.fuse_client import PAGE, GuestFuseClient
from hostfs.testing.guest_ram import GUEST_PHYS_BASE
from hostfs.vhost.device import DEVICE_FEATURES
from hostfs.vhost.dirty_log import (
    LOG_PAGE,
    VHOST_F_LOG_ALL,
    VHOST_VRING_F_LOG,
    DirtyLog,
    DirtyLogError,
)
from hostfs.vhost.messages import LogArea, Request, VringAddr, decode_u64, encode_u64


def _marked(log: mmap.mmap) -> set[int]:
    """Guest page numbers whose bit is set."""
    return {
        index * 8 + bit
        for index, byte in enumerate(bytes(log))
        for bit in range(8)
        if byte >> bit & 1
    }


async def test_pages_the_device_writes_are_logged(guest, served) -> None:
    client = GuestFuseClient(guest)
    await client.init()
    nodeid, fh = await client.create(ROOT_NODEID, b"data")
    await client.write(nodeid, fh, 0, b"x" * (2 * PAGE))
    size = -(-(GUEST_PHYS_BASE + guest.ram.size) // LOG_PAGE // 8 // 8) * 8
    log_fd = os.memfd_create("dirty-log", os.MFD_CLOEXEC)
    os.ftruncate(log_fd, size)
    log = mmap.mmap(log_fd, size)
    try:
        await guest.call_ok(Request.SET_FEATURES, encode_u64(DEVICE_FEATURES & ~VHOST_F_LOG_ALL))
        reply = await guest.call(Request.SET_LOG_BASE, LogArea(size, 0).encode(), [log_fd])
        assert reply is not None and decode_u64(reply) == 0
        await client.read(nodeid, fh, 0, 2 * PAGE)
        before = _marked(log)

        queue = guest.queues[client.queue]
        await guest.call_ok(Request.SET_FEATURES, encode_u64(DEVICE_FEATURES | VHOST_F_LOG_ALL))
        addr = VringAddr(
            queue.index,
            VHOST_VRING_F_LOG,
            guest.ram.frontend_addr(queue.desc_addr),
            guest.ram.frontend_addr(queue.used_addr),
            guest.ram.frontend_addr(queue.avail_addr),
            queue.used_addr,
        )
        await guest.call_ok(Request.SET_VRING_ADDR, addr.encode())  # on a running ring
        chains = []
        submit = queue.submit

        def spy(*args, **kwargs):
            chains.append(submit(*args, **kwargs))
            return chains[-1]

        queue.submit = spy  # type: ignore[method-assign]
        assert await client.read(nodeid, fh, 0, 2 * PAGE) == b"x" * (2 * PAGE)
        after = _marked(log)
    finally:
        log.close()
        os.close(log_fd)

    (chain,) = chains
    written = {
        page
        for addr, length in chain.writable
        for page in range(addr // LOG_PAGE, (addr + length - 1) // LOG_PAGE + 1)
    }
    used = queue.used_addr // LOG_PAGE
    avail = queue.avail_addr // LOG_PAGE
    assert before == set()  # no LOG_ALL, no log
    assert written | {used} <= after
    assert after - written - {used} <= {avail}  # nothing else (avail shares the rings' page)
    assert max(after) < (GUEST_PHYS_BASE + guest.ram.size) // LOG_PAGE


def test_a_log_fd_shorter_than_its_area_is_refused() -> None:
    """Setting a bit beyond the file's end would be a SIGBUS in the daemon."""
    log_fd = os.memfd_create("short-log", os.MFD_CLOEXEC)
    try:
        os.ftruncate(log_fd, LOG_PAGE)
        with pytest.raises(DirtyLogError, match="beyond its file"):
            DirtyLog(log_fd, LogArea(4 * LOG_PAGE, 0))
        with pytest.raises(DirtyLogError, match="beyond its file"):
            DirtyLog(log_fd, LogArea(LOG_PAGE, 8))
        DirtyLog(log_fd, LogArea(LOG_PAGE, 0)).close()
    finally:
        os.close(log_fd)
