"""Lock waiters on a virtqueue: they never deadlock the queue, nor the device's lifecycle.

Each queue serves ``SessionConfig.concurrency`` requests at a time; a waiting
SETLKW lends its place (hostfs.fuse.parking), so the unlock that wakes every
waiter is still read and answered.  A parked wait may last forever, so every
way of stopping a ring (GET_VRING_BASE, SET_VRING_ENABLE 0, RESET_DEVICE, a
disconnect, SIGTERM) ends it with EINTR instead of waiting for it.
"""

from __future__ import annotations

import errno
import fcntl
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from hostfs.core.filesystem import ROOT_NODEID
from hostfs.core.options import FsOptions
from hostfs.fuse import abi
from hostfs.fuse.abi import Opcode
from hostfs.fuse.init import SessionConfig
from hostfs.testing.driver_queue import DriverQueue, Submitted
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import FuseReply, GuestFuseClient
from hostfs.testing.fuse_wire import in_header, split_reply
from hostfs.vhost.messages import Request, VringState
from tests.support.serve import serve_command, wait_for_socket
from tests.vhost.conftest import NUM_QUEUES, Served, serving

WAITERS = SessionConfig().concurrency + 8
WHOLE_FILE = (0, 0x7FFFFFFFFFFFFFFF)
PROMPTLY = 5.0
"""A stop that waits for a parked lock never completes; anything that completes passes."""

KINDS = ["posix", "flock"]


@pytest.fixture(params=["host", "local"])
async def served(
    request: pytest.FixtureRequest, tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[Served]:
    """Both lock homes keep the guarantees: the host's locks (the default) and the
    core's own tables (``--locks local``)."""
    options = FsOptions(host_locks=request.param == "host")
    async with serving(tmp_path, nursery, options) as live:
        yield live


def lock_args(fh: int, owner: int, lock_type: int, kind: str = "posix") -> bytes:
    flags = abi.LK_FLOCK if kind == "flock" else 0
    return abi.LK_IN.pack(fh, owner, *WHOLE_FILE, lock_type, 1, flags, 0)


async def test_waiters_beyond_the_queue_limit_all_get_the_lock(client):
    nodeid, fh = await client.create(ROOT_NODEID, b"contended")
    client.indirect = True  # one ring descriptor per request, as the driver does under load
    await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 1, fcntl.F_WRLCK))
    granted = []

    async def waiter(owner: int) -> None:
        await client.ok(Opcode.SETLKW, nodeid, lock_args(fh, owner, fcntl.F_WRLCK))
        granted.append(owner)
        await client.ok(Opcode.SETLK, nodeid, lock_args(fh, owner, fcntl.F_UNLCK))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for owner in range(100, 100 + WAITERS):
                nursery.start_soon(waiter, owner)
            await trio.sleep(0.5)  # every waiter is parked in the lock table
            assert granted == []
            await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 1, fcntl.F_UNLCK))
    assert sorted(granted) == list(range(100, 100 + WAITERS))


async def hold_and_wait(client: GuestFuseClient, kind: str, name: bytes) -> tuple[int, int]:
    """Owner 1 holds a write lock on a new file; returns (nodeid, fh)."""
    nodeid, fh = await client.create(ROOT_NODEID, name)
    await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 1, fcntl.F_WRLCK, kind))
    return nodeid, fh


async def contend(client: GuestFuseClient, nodeid: int, fh: int, kind: str) -> FuseReply:
    """Owner 2's SETLKW, which parks until the lock is free (or the wait is ended)."""
    return await client.call(
        Opcode.SETLKW, nodeid, lock_args(fh, 2, fcntl.F_WRLCK, kind), reply_size=0
    )


async def until_parked(served: Served, queue: int = 1) -> None:
    with trio.fail_after(PROMPTLY):
        while served.device.rings[queue].parked_waits == 0:
            await trio.sleep(0.001)


async def ack(frontend: Frontend, request: int, payload: bytes = b"") -> int:
    reply = await frontend.call(request, payload, need_reply=True)
    assert reply is not None
    return int.from_bytes(reply, "little")


async def stop_with_a_parked_waiter(client, served, kind, stop) -> None:
    """Park owner 2's SETLKW, run ``stop``: it completes and the waiter is answered EINTR."""
    nodeid, fh = await hold_and_wait(client, kind, b"held-" + kind.encode())
    replies: list[FuseReply] = []
    with trio.fail_after(PROMPTLY):
        async with trio.open_nursery() as nursery:

            async def waiter() -> None:
                replies.append(await contend(client, nodeid, fh, kind))

            nursery.start_soon(waiter)
            await until_parked(served)
            await stop()
            queue = client.frontend.queues[1]
            assert queue.used_idx() == queue.avail_idx  # answered before the stop completed
    assert [reply.error for reply in replies] == [errno.EINTR]


@pytest.mark.parametrize("kind", KINDS)
async def test_get_vring_base_ends_parked_waits(client, guest, served, kind) -> None:
    async def stop() -> None:
        base = await guest.stop_queue(1)
        assert base == guest.queues[1].avail_idx

    await stop_with_a_parked_waiter(client, served, kind, stop)
    await guest.start_queue(guest.queues[1], base=guest.queues[1].avail_idx)  # a VM resumed
    assert await client.lookup(ROOT_NODEID, b"held-" + kind.encode()) > ROOT_NODEID


@pytest.mark.parametrize("kind", KINDS)
async def test_vring_disable_ends_parked_waits(client, guest, served, kind) -> None:
    async def stop() -> None:
        assert await ack(guest, Request.SET_VRING_ENABLE, VringState(1, 0).encode()) == 0

    await stop_with_a_parked_waiter(client, served, kind, stop)
    assert await ack(guest, Request.SET_VRING_ENABLE, VringState(1, 1).encode()) == 0
    assert await client.lookup(ROOT_NODEID, b"held-" + kind.encode()) > ROOT_NODEID


@pytest.mark.parametrize("kind", KINDS)
async def test_reset_device_ends_parked_waits(client, guest, served, kind) -> None:
    async def stop() -> None:
        assert await ack(guest, Request.RESET_DEVICE) == 0

    await stop_with_a_parked_waiter(client, served, kind, stop)
    await guest.start(NUM_QUEUES)
    fresh = GuestFuseClient(guest)
    await fresh.init()
    assert await fresh.lookup(ROOT_NODEID, b"held-" + kind.encode()) > ROOT_NODEID


@pytest.mark.parametrize("kind", KINDS)
async def test_disconnect_ends_parked_waits(client, guest, served, kind) -> None:
    """With ``--reconnect``, the next front-end is served once this one's waits ended."""

    async def stop() -> None:
        guest.sock.close()  # the guest RAM stays mapped: the EINTR reply can still land
        await until_disconnected(served)

    await stop_with_a_parked_waiter(client, served, kind, stop)
    with trio.fail_after(PROMPTLY):
        async with Frontend.connect(served.socket_path) as frontend:
            await frontend.realize()
            await frontend.start(NUM_QUEUES)
            fuse = GuestFuseClient(frontend)
            await fuse.init()
            assert await fuse.lookup(ROOT_NODEID, b"held-" + kind.encode()) > ROOT_NODEID
            frontend.close_queues()


async def until_disconnected(served: Served) -> None:
    while any(ring.running for ring in served.device.rings):
        await trio.sleep(0.001)


async def park_in_subprocess(frontend: Frontend, kind: str) -> Submitted:
    """A parked SETLKW in a ``hostfs serve`` process; we cannot look inside, so two more
    round trips on the same queue after it make sure the device has read and parked it."""
    await frontend.realize()
    await frontend.start(2)
    client = GuestFuseClient(frontend)
    await client.init()
    nodeid, fh = await hold_and_wait(client, kind, b"held")
    queue = frontend.queues[1]
    header = in_header(abi.IN_HEADER.size + abi.LK_IN.size, Opcode.SETLKW, 999, nodeid)
    parked = queue.submit([header + lock_args(fh, 2, fcntl.F_WRLCK, kind)], [abi.OUT_HEADER.size])
    queue.kick()
    for _ in range(2):
        await client.ok(Opcode.GETATTR, nodeid, abi.GETATTR_IN.pack(0, 0, 0))
    return parked


def fuse_error(queue: DriverQueue, submitted: Submitted) -> int:
    """The errno of a reply the device left on the used ring (it may be gone by now)."""
    queue.collect()
    assert submitted.reply is not None, "no reply on the used ring"
    return -split_reply(submitted.reply).error


@pytest.mark.parametrize("kind", KINDS)
async def test_sigterm_with_parked_waits(tmp_path: Path, kind: str) -> None:
    sock = tmp_path / "vhost.sock"
    process = subprocess.Popen(serve_command(tmp_path, "--socket-path", str(sock), "--reconnect"))
    try:
        await wait_for_socket(sock)
        async with Frontend.connect(str(sock)) as frontend:
            parked = await park_in_subprocess(frontend, kind)
            process.send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(process.wait, PROMPTLY) == 0
            assert fuse_error(frontend.queues[1], parked) == errno.EINTR
            frontend.close_queues()
    finally:
        process.kill()


@pytest.mark.parametrize("kind", KINDS)
async def test_daemon_exits_on_disconnect_with_parked_waits(tmp_path: Path, kind: str) -> None:
    """Without ``--reconnect`` the daemon exits when its front-end goes."""
    sock = tmp_path / "vhost.sock"
    process = subprocess.Popen(serve_command(tmp_path, "--socket-path", str(sock)))
    try:
        await wait_for_socket(sock)
        async with Frontend.connect(str(sock)) as frontend:
            parked = await park_in_subprocess(frontend, kind)
            frontend.sock.close()
            assert await trio.to_thread.run_sync(process.wait, PROMPTLY) == 0
            assert fuse_error(frontend.queues[1], parked) == errno.EINTR
            frontend.close_queues()
    finally:
        process.kill()
