"""One ring's task (hostfs.vhost.ring) over a simulated driver, without a socket."""

from __future__ import annotations

import os

import trio

from hostfs.vhost.ring import Ring
from tests.support.rings import EchoHandler, device_queue


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
