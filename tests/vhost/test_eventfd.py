"""Kick, call and err fds from the front-end: eventfds only, and never a blocking write."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from hostfs.fuse.abi import ROOT_ID
from hostfs.testing.driver_queue import EVENTFD_VALUE
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.vhost.messages import Request, VringFile, decode_u64
from tests.support.serve import serving
from tests.vhost.conftest import Served, open_fds

EVENTFD_MAX = 0xFFFF_FFFF_FFFF_FFFE
"""The largest value an eventfd counter holds; one more write would block (eventfd(2))."""

MESSAGES = {
    "kick": Request.SET_VRING_KICK,
    "call": Request.SET_VRING_CALL,
    "err": Request.SET_VRING_ERR,
}


def o_path_fd(tmp_path: Path) -> int:
    return os.open(tmp_path, os.O_PATH)


def pipe_fd(tmp_path: Path) -> int:
    reader, writer = os.pipe()
    os.close(writer)  # a reader at end of file: readable for ever
    return reader


def file_fd(tmp_path: Path) -> int:
    return os.open(tmp_path / "plain", os.O_RDWR | os.O_CREAT)


@pytest.mark.parametrize("which", MESSAGES)
@pytest.mark.parametrize("make_fd", [o_path_fd, pipe_fd, file_fd])
async def test_non_eventfds_are_refused(
    client: GuestFuseClient,
    guest: Frontend,
    served: Served,
    tmp_path: Path,
    which: str,
    make_fd: Callable[[Path], int],
) -> None:
    nodeid, _fh = await client.create(ROOT_ID, b"before")
    fd = make_fd(tmp_path)
    before = open_fds()
    reply = await guest.call(MESSAGES[which], VringFile(1, False).encode(), [fd], need_reply=True)
    assert reply is not None and decode_u64(reply) != 0
    assert open_fds() == before  # the device closed its copy
    os.close(fd)
    # The connection and the queue live on, with the fds they had.
    assert await client.lookup(ROOT_ID, b"before") == nodeid


async def test_a_saturated_blocking_call_fd_never_blocks_the_device(tmp_path: Path) -> None:
    """A blocking eventfd at its maximum would block the write of the first interrupt,
    and with it the device's only thread: hence ``hostfs serve`` in a process of its own."""
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share)) as daemon:
        frontend, client = daemon.frontend, daemon.fuse
        call = os.eventfd(0, os.EFD_CLOEXEC)  # blocking
        os.write(call, EVENTFD_VALUE.pack(EVENTFD_MAX))
        await frontend.call_ok(Request.SET_VRING_CALL, VringFile(1, False).encode(), [call])
        # The driver's own poll finds the replies; the device's writes get EAGAIN
        # (a blocking write would wait for our read below, and answer nothing more).
        nodeid, _fh = await client.create(ROOT_ID, b"answered")
        assert await client.lookup(ROOT_ID, b"answered") == nodeid
        assert EVENTFD_VALUE.unpack(os.read(call, 8))[0] == EVENTFD_MAX
        assert await client.lookup(ROOT_ID, b"answered") == nodeid
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(call)  # interrupts arrive again
        os.close(call)
