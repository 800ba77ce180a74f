"""A ring looks for requests before it sleeps (hostfs.vhost.polling), and stops looking
when the driver is slow: the window rule, and a ring served with no kick at all."""

from __future__ import annotations

import os

import trio

from hostfs.vhost.polling import POLL_START_NS, AdaptivePoll
from hostfs.vhost.ring import Ring
from tests.support.rings import EchoHandler, device_queue


def test_the_window_grows_while_requests_come_within_the_maximum() -> None:
    poll = AdaptivePoll(max_ns=20_000)
    assert poll.window_ns == 0
    windows = []
    for _ in range(5):
        poll.observe(19_000)  # later than the window, sooner than the maximum
        windows.append(poll.window_ns)
    assert windows == [POLL_START_NS, 2 * POLL_START_NS, 4 * POLL_START_NS, 20_000, 20_000]


def test_a_request_the_window_caught_keeps_it() -> None:
    poll = AdaptivePoll(max_ns=20_000)
    poll.window_ns = 8000
    poll.observe(7000)
    assert poll.window_ns == 8000


def test_one_wait_longer_than_the_maximum_stops_the_polling() -> None:
    """A guest that thinks long between requests (emulated, idle) costs no CPU to poll."""
    poll = AdaptivePoll(max_ns=20_000)
    poll.window_ns = 16_000
    poll.observe(20_001)
    assert poll.window_ns == 0


def test_a_maximum_of_zero_never_polls() -> None:
    poll = AdaptivePoll(max_ns=0)
    for waited in (1, 100, 10_000):
        poll.observe(waited)
    assert poll.window_ns == 0


async def test_a_polling_ring_serves_a_chain_nobody_kicked_and_stops_at_once(rings) -> None:
    """The driver publishes without a kick while the ring polls: the reply comes, so the
    ring looked at the avail index; the test's own task ran meanwhile, so polling gives
    the other tasks turns; and a stop ends a long window at once."""
    memory, driver = rings
    window = 60_000_000_000  # a minute: the chain can only be found by polling
    ring = Ring(1, poll_max_ns=window)
    ring.poll.window_ns = window
    ring.lifecycle.kick(protocol_features=False)  # SET_VRING_KICK
    ring.kick_fd, ring.call_fd = os.dup(driver.kick_fd), os.dup(driver.call_fd)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(ring.serve, device_queue(memory, driver), EchoHandler(), 4)
            await trio.lowlevel.checkpoint()
            submitted = driver.submit([b"request"], [16])  # and no kick
            while not (done := driver.collect()):
                await trio.lowlevel.checkpoint()
            assert [d.head for d in done] == [submitted.head]
            await ring.stop()  # within the minute's window
    assert ring.requests == 1
    ring.close_fds()
