"""A front-end that repeats a refused message cannot flood the log (hostfs.fuse.ratelimit)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
import trio

from hostfs.fuse.ratelimit import BURST
from hostfs.testing.driver_queue import DriverQueue
from hostfs.testing.frontend import Frontend
from hostfs.vhost.memory import GuestMemory
from hostfs.vhost.messages import Request, VringState
from hostfs.vhost.ring import Ring
from tests.support.rings import device_queue

FLOOD = 200


async def test_refused_messages_log_a_bounded_number_of_lines(guest: Frontend, caplog) -> None:
    with caplog.at_level(logging.INFO, "hostfs.vhost"):
        for _ in range(FLOOD // 2):
            # No such queue: refused with an error ...
            ack = await guest.call(
                Request.SET_VRING_NUM, VringState(99, 64).encode(), need_reply=True
            )
            assert ack is not None
            # ... and no such message: refused with a warning; both the same kind.
            await guest.call(12345, need_reply=True)
    lines = [r for r in caplog.records if r.name == "hostfs.vhost.device"]
    assert len(lines) == BURST
    assert "refused" in lines[0].getMessage() and "refusing" in lines[1].getMessage()


class FailingHandler:
    async def handle(self, readable: Sequence[memoryview], writable: Sequence[memoryview]) -> int:
        raise ValueError("a bug the guest can trigger")


async def fail_requests(memory: GuestMemory, driver: DriverQueue, count: int) -> None:
    """``count`` chains through a ring whose handler raises; each returns empty."""
    ring = Ring(1)
    ring.lifecycle.kick(protocol_features=False)  # SET_VRING_KICK
    ring.kick_fd = driver.kick_fd
    async with trio.open_nursery() as nursery:
        await nursery.start(ring.serve, device_queue(memory, driver), FailingHandler(), 0)
        for _ in range(count):
            submitted = driver.submit([b"x"], [4])
            driver.kick()
            with trio.fail_after(5):
                while submitted.reply is None:
                    driver.collect()
                    await trio.sleep(0.001)
            driver.ram.reset_allocations()
        await ring.stop()


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_failing_handler_logs_bounded_lines_traceback_at_debug(rings, caplog, level) -> None:
    memory, driver = rings
    with caplog.at_level(level, "hostfs.vhost"):
        await fail_requests(memory, driver, 3 * BURST)
    lines = [
        r for r in caplog.records if r.name == "hostfs.vhost.ring" and r.levelno >= logging.ERROR
    ]
    assert len(lines) == BURST
    assert all(bool(r.exc_info) == (level == logging.DEBUG) for r in lines)
