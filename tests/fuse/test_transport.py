"""Every transport runs its requests through the one seam (hostfs.fuse.transport).

The unit tests pin the seam's own rules; the transport tests drive each real
transport (/dev/fuse and io_uring against the host kernel, a virtqueue against a
simulated guest) through the same story and look at the same two facts, which
only the shared plumbing keeps: the transport's request count is the dispatcher's
per-opcode total, and a SETLKW parks in the transport's own :class:`ParkedWaits`
and lends its place, so the unlock is still served.  A transport that went back
to calling the dispatcher itself, or to a slot of its own, fails them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from hostfs.core.filesystem import ROOT_NODEID
from hostfs.core.options import FsOptions
from hostfs.devfuse import session as devfuse_engine
from hostfs.fuse import abi
from hostfs.fuse.abi import Opcode
from hostfs.fuse.init import SessionConfig
from hostfs.fuse.parking import parked
from hostfs.fuse.ratelimit import RateLimitedLog
from hostfs.fuse.stats import OpStats
from hostfs.fuse.transport import Relay, Token, Transport
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.uring import session as uring_engine
from tests.devfuse.mounting import devfuse_mount, in_thread
from tests.vhost.conftest import NUM_QUEUES, serving

PROMPTLY = 10.0
WHOLE_FILE = (0, 0x7FFFFFFFFFFFFFFF)


class Answers:
    """A handler that writes ``length`` bytes' worth of reply, or raises."""

    def __init__(self, length: int | None) -> None:
        self.length = length

    async def handle(self, readable: Sequence[memoryview], writable: Sequence[memoryview]) -> int:
        if self.length is None:
            raise ValueError("a bug of ours")
        return self.length


@pytest.mark.parametrize(
    ("length", "served"), [(16, 16), (None, 0), (-1, 0), (4096 + 64, 4096 + 32)]
)
async def test_serve_counts_and_keeps_the_reply_inside_its_buffers(length, served, caplog):
    transport = Transport("test", Answers(length), RateLimitedLog(logging.getLogger("t")))
    writable = [memoryview(bytearray(4096)), memoryview(bytearray(32))]
    with caplog.at_level(logging.ERROR, "t"):
        assert await transport.serve([memoryview(b"x")], writable) == served
    assert transport.requests == 1
    assert bool(caplog.records) == (served != length)


async def test_a_relay_starts_its_successor_and_a_token_goes_back() -> None:
    started: list[int] = []
    relay = Relay(lambda: started.append(1))
    limiter = trio.CapacityLimiter(1)
    token = Token(limiter, "request")
    await limiter.acquire_on_behalf_of("request")
    transport = Transport("test")
    for slot in (relay, token):
        transport.enter(slot)
        async with parked():
            assert len(transport.waits) == 1
            if slot is token:
                assert limiter.available_tokens == 1  # lent while parked
        assert len(transport.waits) == 0
    assert relay.lent and started == [1]
    assert limiter.borrowed_tokens == 1  # taken back after the wait
    transport.end_waits()
    transport.enter(None)
    with pytest.raises(OSError, match="stopping"):
        async with parked():
            await trio.sleep_forever()  # a transport that stopped ends every wait at once


# -- each real transport ---------------------------------------------------------


@dataclass
class Story:
    """One transport as the test sees it."""

    transports: Callable[[], list[Transport]]
    """Every transport the requests may come over (io_uring also serves /dev/fuse)."""
    parker: Callable[[], Transport]
    """The one a SETLKW comes over."""
    stats: OpStats
    hold: Callable[[], object]
    """Take the lock, then make another owner wait for it; returns when it waits."""
    release: Callable[[], object]
    """Free the lock; returns once the waiter got it."""


def lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    return fd


WAITER = (
    "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX)"
)


@asynccontextmanager
async def kernel_story(tmp_path: Path, engine: str) -> AsyncIterator[Story]:
    """One worker serves /dev/fuse (``concurrency`` 1): were the waiter to keep it,
    the unlock could never be read."""
    config = SessionConfig(passthrough=False, concurrency=1)
    module = uring_engine if engine == "uring" else devfuse_engine
    async with devfuse_mount(tmp_path, config, module) as mount, trio.open_nursery() as nursery:
        session = mount.session
        device = session.device if engine == "uring" else session
        path = mount.path / "contended"
        holder = await in_thread(lambda: lock(path))
        waiter: list[trio.Process] = []
        parker = session.transport

        async def hold() -> None:
            waiter.append(
                await nursery.start(
                    lambda task_status: trio.run_process(
                        [sys.executable, "-c", WAITER, str(path)], task_status=task_status
                    )
                )
            )
            with trio.fail_after(PROMPTLY):
                while not len(parker.waits):
                    await trio.sleep(0.01)

        async def release() -> None:
            await in_thread(lambda: os.close(holder))  # close drops the lock
            with trio.fail_after(PROMPTLY):
                assert await waiter[0].wait() == 0

        transports = [device.transport] + ([session.transport] if engine == "uring" else [])
        yield Story(lambda: transports, lambda: parker, device.dispatcher.stats, hold, release)


@asynccontextmanager
async def guest_story(tmp_path: Path) -> AsyncIterator[Story]:
    async with (
        trio.open_nursery() as nursery,
        serving(tmp_path, nursery, FsOptions()) as served,
        Frontend.connect(served.socket_path) as frontend,
    ):
        assert await frontend.realize() == NUM_QUEUES
        await frontend.start(NUM_QUEUES)
        client = GuestFuseClient(frontend)
        await client.init()
        nodeid, fh = await client.create(ROOT_NODEID, b"contended")
        rings = served.device.rings

        def lk(owner: int, kind: int) -> bytes:
            return abi.LK_IN.pack(fh, owner, *WHOLE_FILE, kind, 1, 0, 0)

        async def hold() -> None:
            await client.ok(Opcode.SETLK, nodeid, lk(1, fcntl.F_WRLCK))
            nursery.start_soon(client.ok, Opcode.SETLKW, nodeid, lk(2, fcntl.F_WRLCK))
            with trio.fail_after(PROMPTLY):
                while not len(rings[1].transport.waits):
                    await trio.sleep(0.01)

        async def release() -> None:
            await client.ok(Opcode.SETLK, nodeid, lk(1, fcntl.F_UNLCK))
            with trio.fail_after(PROMPTLY):
                while len(rings[1].transport.waits):
                    await trio.sleep(0.01)
            await client.ok(Opcode.SETLK, nodeid, lk(2, fcntl.F_UNLCK))

        stats = served.device.handler.stats  # type: ignore[attr-defined]
        yield Story(
            lambda: [ring.transport for ring in rings],
            lambda: rings[1].transport,
            stats,
            hold,
            release,
        )
        frontend.close_queues()


@pytest.mark.parametrize("transport", ["devfuse", "uring", "vhost"])
async def test_every_transport_counts_and_parks_through_the_seam(
    tmp_path: Path, transport: str
) -> None:
    story = guest_story(tmp_path) if transport == "vhost" else kernel_story(tmp_path, transport)
    with trio.fail_after(3 * PROMPTLY):
        async with story as s:
            await s.hold()
            assert len(s.parker().waits) == 1
            await s.release()
            assert len(s.parker().waits) == 0
            with trio.fail_after(PROMPTLY):
                # Equal once the last replies are out; a request the dispatcher served
                # but the seam did not count keeps them apart.
                while sum(t.requests for t in s.transports()) != sum(s.stats.calls):
                    await trio.sleep(0.01)
            assert s.stats.calls[Opcode.SETLKW] >= 1
            assert all(isinstance(t, Transport) for t in s.transports())
