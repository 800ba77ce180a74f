"""A real ``hostfs serve`` device in-process, and simulated guests to drive it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from hostfs.backends.local.backend import LocalBackend
from hostfs.cli.serve import make_device
from hostfs.core.filesystem import FileSystem
from hostfs.core.options import FsOptions
from hostfs.fuse.ratelimit import RateLimitedLog
from hostfs.testing.driver_queue import DriverQueue
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.testing.guest_ram import GuestRam
from hostfs.vhost import device, eventfd, memory, ring, server
from hostfs.vhost.device import VhostUserFsDevice
from hostfs.vhost.memory import GuestMemory
from hostfs.vhost.server import VhostUserServer, listen_on_path

REQUEST_QUEUES = 2
"""Two request queues, so a broken one can be told apart from a working one."""
NUM_QUEUES = 1 + REQUEST_QUEUES
RING_SIZE = 16


@pytest.fixture(autouse=True)
def fresh_log_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with the whole rate-limit budget: tests that look for a warning
    must not find it spent by the tests before them."""
    for module in (device, eventfd, memory, ring, server):
        monkeypatch.setattr(module, "guest_errors", RateLimitedLog(module.logger))


@pytest.fixture
def rings() -> Iterator[tuple[GuestMemory, DriverQueue]]:
    """Guest RAM the device has mapped, and a driver's 16-entry queue in it: a ring
    without a socket."""
    ram = GuestRam(1 << 20)
    memory = GuestMemory()
    memory.add(ram.region(), ram.fd)
    driver = DriverQueue(ram, 1, RING_SIZE)
    yield memory, driver
    driver.close()
    memory.clear()
    ram.close()


@dataclass
class Served:
    socket_path: str
    share: Path
    fs: FileSystem
    device: VhostUserFsDevice
    server: VhostUserServer


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, nursery: trio.Nursery, options: FsOptions
) -> AsyncIterator[Served]:
    """A device over a new share in ``tmp_path``, listening until the block ends."""
    share = tmp_path / "share"
    share.mkdir()
    fs = FileSystem(LocalBackend.from_path(str(share)), options)
    await fs.start()
    device = make_device(fs, num_request_queues=REQUEST_QUEUES)
    server = VhostUserServer(device, reconnect=True)
    socket_path = str(tmp_path / "vhost.sock")
    listener = await listen_on_path(socket_path)
    nursery.start_soon(server.serve_listener, listener)
    yield Served(socket_path, share, fs, device, server)
    server.shutdown()
    listener.close()
    await fs.close()


@pytest.fixture
async def served(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Served]:
    async with serving(tmp_path, nursery, FsOptions()) as live:
        yield live


@pytest.fixture
async def guest(served: Served) -> AsyncIterator[Frontend]:
    """A front-end that did what QEMU does up to a started device."""
    async with Frontend.connect(served.socket_path) as frontend:
        assert await frontend.realize() == NUM_QUEUES
        await frontend.start(NUM_QUEUES)
        yield frontend
        frontend.close_queues()


@pytest.fixture
async def client(guest: Frontend) -> GuestFuseClient:
    fuse = GuestFuseClient(guest)
    await fuse.init()
    return fuse
