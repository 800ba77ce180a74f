"""The device against a misbehaving or resetting front-end: it refuses, recovers, survives."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import trio

from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID, Opcode
from hostfs.testing.driver_queue import DriverQueue
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.testing.fuse_wire import in_header, write_in
from hostfs.testing.guest_ram import GUEST_PHYS_BASE
from hostfs.vhost.channel import send_message
from hostfs.vhost.device import DEVICE_FEATURES, VIRTIO_FS_CONFIG, VhostUserFsDevice
from hostfs.vhost.messages import (
    FLAG_NEED_REPLY,
    HEADER,
    ConfigSpace,
    Request,
    VringFile,
    VringState,
    decode_u64,
    encode_memory_table,
    encode_single_region,
    encode_u64,
)
from hostfs.vhost.server import VhostUserServer, listen_on_path
from hostfs.vhost.virtqueue import VRING_DESC_F_NEXT, VRING_DESC_F_WRITE
from tests.vhost.conftest import NUM_QUEUES, Served, open_fds


async def ack(frontend: Frontend, request: int, payload: bytes = b"", fds=None) -> int:
    reply = await frontend.call(request, payload, fds, need_reply=True)
    assert reply is not None
    return decode_u64(reply)


async def test_features_and_config(served: Served) -> None:
    async with Frontend.connect(served.socket_path) as frontend:
        assert await frontend.get_u64(Request.GET_FEATURES) == DEVICE_FEATURES
        served.device.tag = "myfs"
        reply = await frontend.call(Request.GET_CONFIG, ConfigSpace(0, 40, 0, bytes(40)).encode())
        tag, queues = VIRTIO_FS_CONFIG.unpack(ConfigSpace.decode(reply).data)
        assert (tag.rstrip(b"\0"), queues) == (b"myfs", NUM_QUEUES - 1)
        beyond = await frontend.call(Request.GET_CONFIG, ConfigSpace(36, 8, 0, bytes(8)).encode())
        assert ConfigSpace.decode(beyond).size == 0
        assert await frontend.get_u64(Request.GET_MAX_MEM_SLOTS) > 0


@pytest.mark.parametrize(
    ("request_", "payload"),
    [
        (999, b""),  # unknown
        (Request.SET_LOG_BASE, encode_u64(0)),  # LOG_SHMFD was never offered
        (Request.SET_FEATURES, encode_u64(1 << 40)),  # not offered
        (Request.SET_VRING_NUM, VringState(NUM_QUEUES, 64).encode()),  # no such queue
        (Request.SET_VRING_NUM, VringState(1, 0).encode()),  # size 0
        (Request.SET_VRING_NUM, VringState(1, 100).encode()),  # not a power of 2
        (Request.SET_VRING_NUM, VringState(1, 65536).encode()),  # beyond 32768
        (Request.SET_VRING_NUM, b"\x01"),  # short
        (Request.SET_VRING_KICK, encode_u64(1)),  # neither an fd nor NOFD
        (Request.SET_MEM_TABLE, encode_memory_table([])[:4]),
    ],
)
async def test_bad_messages_are_refused(served: Served, request_: int, payload: bytes) -> None:
    async with Frontend.connect(served.socket_path) as frontend:
        assert await ack(frontend, request_, payload) != 0
        assert await ack(frontend, Request.SET_OWNER) == 0  # the connection lives on


async def test_mem_table_fd_count_mismatch(served: Served, guest: Frontend) -> None:
    table = encode_memory_table([guest.ram.region(), guest.ram.region()])
    assert await ack(guest, Request.SET_MEM_TABLE, table, [guest.ram.fd]) != 0
    await GuestFuseClient(guest).init()  # the old table is still in place


async def test_broken_stream_drops_only_the_connection(served: Served) -> None:
    async with Frontend.connect(served.socket_path) as frontend:
        await send_message(frontend.sock, HEADER.pack(Request.GET_FEATURES, 0x2, 0))
        with trio.fail_after(5):
            assert await frontend.sock.recv(1) == b""
    async with Frontend.connect(served.socket_path) as frontend:
        assert await frontend.get_u64(Request.GET_FEATURES) == DEVICE_FEATURES


async def test_fds_with_refused_messages_are_closed(served: Served) -> None:
    async with Frontend.connect(served.socket_path) as frontend:
        await ack(frontend, Request.SET_OWNER)
        before = open_fds()
        for _ in range(5):
            pipe = trio.socket.socket()
            await ack(frontend, 999, b"", [pipe.fileno()])
            pipe.close()
        assert open_fds() == before


async def test_broken_queue_others_keep_working(client: GuestFuseClient, guest: Frontend) -> None:
    bad: DriverQueue = guest.queues[2]
    bad.write_desc(0, GUEST_PHYS_BASE, 40, VRING_DESC_F_NEXT, 1)
    bad.write_desc(1, GUEST_PHYS_BASE, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0)  # loop
    bad.publish(0)
    bad.kick()
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(bad.err_fd)
    assert DriverQueue.consume(bad.err_fd) == 1
    nodeid, fh = await client.create(ROOT_ID, b"still-alive")  # queue 1 answers
    assert await client.write(nodeid, fh, 0, b"yes") == 3
    # Restarting the broken queue (as after a guest reset) makes it usable again.
    await guest.stop_queue(2)
    guest.queues[2] = fresh = DriverQueue(guest.ram, 2, guest.queue_size)
    await guest.start_queue(fresh)
    second = GuestFuseClient(guest, queue=2)
    second._unique = 1001
    assert await second.lookup(ROOT_ID, b"still-alive") == nodeid


async def test_configuring_a_served_ring_is_refused_and_it_keeps_serving(
    client: GuestFuseClient, guest: Frontend
) -> None:
    """vhost-user.rst: a ring's size, addresses and base are set while it is stopped;
    the ring state table (hostfs.vhost.ring_state) refuses them while it is served."""
    for request, payload in (
        (Request.SET_VRING_NUM, VringState(1, 64).encode()),
        (Request.SET_VRING_BASE, VringState(1, 0).encode()),
    ):
        assert await ack(guest, request, payload) == 1
    nodeid, fh = await client.create(ROOT_ID, b"served")
    assert await client.write(nodeid, fh, 0, b"on") == 2


@pytest.mark.parametrize("address", [0, GUEST_PHYS_BASE + (64 << 20)])
async def test_descriptor_outside_memory(
    client: GuestFuseClient, guest: Frontend, address: int
) -> None:
    bad = guest.queues[2]
    bad.write_desc(0, address, 64, 0, 0)
    bad.publish(0)
    bad.kick()
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(bad.err_fd)
    nodeid, _fh = await client.create(ROOT_ID, b"after-bad-address")  # queue 1 answers
    assert nodeid > ROOT_ID


async def test_reset_device_mid_traffic_then_fresh_init(
    client: GuestFuseClient, guest: Frontend, served: Served
) -> None:
    nodeid, fh = await client.create(ROOT_ID, b"busy")
    queue = guest.queues[1]
    for i in range(10):
        client._unique += 2
        queue.submit([client_write_request(client._unique, nodeid, fh, i)], [16, 8])
    queue.kick()
    assert await ack(guest, Request.RESET_DEVICE) == 0
    assert len(served.fs.files) == 0  # destroyed: every handle closed
    await guest.start(NUM_QUEUES)
    fresh = GuestFuseClient(guest)
    await fresh.init()
    assert await fresh.lookup(ROOT_ID, b"busy") > ROOT_ID


def client_write_request(unique: int, nodeid: int, fh: int, i: int) -> bytes:
    args = write_in(fh, i * 4, 4, flags=os.O_RDWR) + b"data"
    return in_header(abi.IN_HEADER.size + len(args), Opcode.WRITE, unique, nodeid) + args


async def test_fd_count_stable_over_reboots(client: GuestFuseClient, guest: Frontend) -> None:
    counts = []
    for boot in range(6):
        await guest.reboot(NUM_QUEUES)
        fuse = GuestFuseClient(guest)
        await fuse.init()
        counts.append(open_fds())
        for i in range(5):
            nodeid, fh = await fuse.create(ROOT_ID, f"boot{boot}-{i}".encode())
            await fuse.write(nodeid, fh, 0, b"left open")
    assert len(set(counts[1:])) == 1, counts


class GatedHandler:
    """Holds every request until released; counts what it finished."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.started = 0
        self.finished = 0

    async def handle(self, readable: Sequence[memoryview], writable: Sequence[memoryview]) -> int:
        self.started += 1
        await self.release.wait()
        self.finished += 1
        writable[0][:4] = b"done"
        return 4


class NullFileSystem:
    destroyed = 0

    async def destroy(self) -> None:
        self.destroyed += 1


@pytest.fixture
async def gated(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[tuple[str, GatedHandler]]:
    handler = GatedHandler()
    device = VhostUserFsDevice(NullFileSystem(), lambda: handler, concurrency=4)  # type: ignore[arg-type]
    server = VhostUserServer(device, reconnect=True)
    path = str(tmp_path / "gated.sock")
    listener = await listen_on_path(path)
    nursery.start_soon(server.serve_listener, listener)
    yield path, handler
    handler.release.set()
    server.shutdown()
    listener.close()


async def test_get_vring_base_waits_for_in_flight(gated: tuple[str, GatedHandler]) -> None:
    path, handler = gated
    async with Frontend.connect(path) as frontend:
        await frontend.realize()
        await frontend.start(2)
        queue = frontend.queues[1]
        submitted = [queue.submit([b"request"], [16]) for _ in range(3)]
        queue.kick()
        with trio.fail_after(5):
            while handler.started < 3:
                await trio.sleep(0.001)
        async with trio.open_nursery() as nursery:
            base: list[int] = []

            async def stop() -> None:
                base.append(await frontend.stop_queue(1))

            nursery.start_soon(stop)
            await trio.sleep(0.05)
            assert not base  # still waiting for the three requests
            handler.release.set()
        assert base == [3]
        assert handler.finished == 3
        queue.collect()
        assert [s.reply for s in submitted] == [b"done"] * 3
        frontend.close_queues()


async def test_disabled_ring_is_not_served(gated: tuple[str, GatedHandler]) -> None:
    path, handler = gated
    handler.release.set()
    async with Frontend.connect(path) as frontend:
        await frontend.realize()
        await frontend.start(2)
        assert await ack(frontend, Request.SET_VRING_ENABLE, VringState(1, 0).encode()) == 0
        queue = frontend.queues[1]
        submitted = queue.submit([b"request"], [16])
        queue.kick()
        await trio.sleep(0.05)
        assert handler.started == 0
        assert await ack(frontend, Request.SET_VRING_ENABLE, VringState(1, 1).encode()) == 0
        assert await frontend.wait_for(queue, submitted, 5) == b"done"
        frontend.close_queues()


async def test_polling_ring_without_kick_fd(gated: tuple[str, GatedHandler]) -> None:
    path, handler = gated
    handler.release.set()
    async with Frontend.connect(path) as frontend:
        await frontend.realize()
        await frontend.start(2)
        assert await ack(frontend, Request.SET_VRING_KICK, VringFile(1, True).encode()) == 0
        queue = frontend.queues[1]
        submitted = queue.submit([b"request"], [16])  # no kick
        assert await frontend.wait_for(queue, submitted, 5) == b"done"
        frontend.close_queues()


async def test_need_reply_is_acked(served: Served) -> None:
    async with Frontend.connect(served.socket_path) as frontend:
        await frontend.send(Request.SET_OWNER, flags=FLAG_NEED_REPLY)
        reply = await frontend.receive()
        assert (reply.header.request, decode_u64(reply.payload)) == (Request.SET_OWNER, 0)


async def test_memory_slots(served: Served) -> None:
    """CONFIGURE_MEM_SLOTS: memory arrives region by region (ADD_MEM_REG / REM_MEM_REG)."""
    async with Frontend.connect(served.socket_path) as frontend:
        await frontend.realize()
        region = encode_single_region(frontend.ram.region())
        assert await ack(frontend, Request.ADD_MEM_REG, region, [frontend.ram.fd]) == 0
        assert await ack(frontend, Request.ADD_MEM_REG, region, [frontend.ram.fd]) != 0  # overlap
        assert len(served.device.memory.regions) == 1
        assert await ack(frontend, Request.REM_MEM_REG, region) == 0
        assert served.device.memory.regions == []
        assert await ack(frontend, Request.REM_MEM_REG, region) != 0


async def test_shutdown_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    """SIGTERM (``server.shutdown()``) stops taking messages but does not cancel requests."""
    handler = GatedHandler()
    device = VhostUserFsDevice(NullFileSystem(), lambda: handler, concurrency=4)  # type: ignore[arg-type]
    server = VhostUserServer(device, reconnect=True)
    path = str(tmp_path / "gated.sock")
    listener = await listen_on_path(path)
    async with Frontend.connect(path) as frontend:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve_listener, listener)
            await frontend.realize()
            await frontend.start(2)
            queue = frontend.queues[1]
            submitted = queue.submit([b"request"], [16])
            queue.kick()
            with trio.fail_after(5):
                while handler.started < 1:
                    await trio.sleep(0.001)
            server.shutdown()
            await trio.sleep(0.01)
            handler.release.set()
        listener.close()
        queue.collect()
        assert submitted.reply == b"done"
        frontend.close_queues()


async def test_power_of_two_queue_sizes_are_taken(served: Served) -> None:
    async with Frontend.connect(served.socket_path) as frontend:
        for size in (1, 2, 256, 32768):
            assert await ack(frontend, Request.SET_VRING_NUM, VringState(1, size).encode()) == 0
