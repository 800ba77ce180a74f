"""Several request queues (virtio 1.2 §5.11.2: queues 1..num_request_queues) served at once.

Linux >= 6.11 spreads a guest's requests over every request queue by CPU,
so each queue QEMU configures must be served, concurrently, and a request
waiting on one queue must not hold up another.
"""

from __future__ import annotations

import fcntl
import logging
import re
import subprocess
from pathlib import Path

import trio

from hostfs.fuse.abi import ROOT_ID, Opcode
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.vhost.device import VIRTIO_FS_CONFIG
from hostfs.vhost.messages import ConfigSpace, Request
from tests.support.serve import serve_command, wait_for_socket
from tests.vhost.conftest import NUM_QUEUES, REQUEST_QUEUES, Served
from tests.vhost.test_device_protocol import client_write_request
from tests.vhost.test_lock_waiters import (
    PROMPTLY,
    ack,
    contend,
    hold_and_wait,
    lock_args,
    until_parked,
)
from tests.vhost.test_stress import run_guest


def second_client(guest: Frontend) -> GuestFuseClient:
    """A client on queue 2 in the same FUSE session: odd uniques, the first client's even."""
    client = GuestFuseClient(guest, queue=2)
    client._unique = 1
    return client


async def test_every_queue_carries_requests_at_once(served: Served) -> None:
    """A guest in another process keeps 8 requests in flight on each queue; every reply
    comes back, right, on its own queue."""
    report = await run_guest(served, 20_000, request_queues=REQUEST_QUEUES)
    assert report["requests"] == 20_000
    per_queue = {int(queue): count for queue, count in report["per_queue"].items()}
    assert set(per_queue) == set(range(1, NUM_QUEUES))
    assert all(count > 0 for count in per_queue.values())


async def test_parked_lock_wait_holds_up_no_other_queue(
    client: GuestFuseClient, guest: Frontend, served: Served
) -> None:
    other = second_client(guest)
    nodeid, fh = await hold_and_wait(client, "posix", b"locked")
    with trio.fail_after(PROMPTLY):
        async with trio.open_nursery() as nursery:
            replies = []

            async def waiter() -> None:
                replies.append(await contend(other, nodeid, fh, "posix"))

            nursery.start_soon(waiter)
            await until_parked(served, queue=2)
            for i in range(20):  # queue 1 keeps answering while queue 2 waits
                await client.write(nodeid, fh, i, b"w")
            assert replies == []
            await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 1, fcntl.F_UNLCK))
    assert [reply.error for reply in replies] == [0]


async def test_reset_with_traffic_on_every_queue(
    client: GuestFuseClient, guest: Frontend, served: Served
) -> None:
    nodeid, fh = await client.create(ROOT_ID, b"busy")
    for index in range(1, NUM_QUEUES):
        queue = guest.queues[index]
        for i in range(10):
            client._unique += 2
            queue.submit([client_write_request(client._unique, nodeid, fh, i)], [16, 8])
        queue.kick()
    assert await ack(guest, Request.RESET_DEVICE) == 0
    assert not any(ring.running for ring in served.device.rings)
    assert len(served.fs.files) == 0
    await guest.start(NUM_QUEUES)
    await GuestFuseClient(guest).init()
    for index in range(1, NUM_QUEUES):
        fresh = GuestFuseClient(guest, queue=index)
        fresh._unique = 100 + index
        assert await fresh.lookup(ROOT_ID, b"busy") > ROOT_ID


async def test_queue_count_is_the_flag(tmp_path: Path) -> None:
    """``hostfs serve --num-request-queues 3``: GET_QUEUE_NUM says 4 (with hiprio), the config
    space 3, and the last queue serves requests."""
    sock = tmp_path / "vhost.sock"
    command = serve_command(
        tmp_path, "--socket-path", str(sock), "--num-request-queues", "3", "--tag", "t"
    )
    process = subprocess.Popen(command)
    try:
        await wait_for_socket(sock)
        async with Frontend.connect(str(sock)) as frontend:
            assert await frontend.realize() == 4
            reply = await frontend.call(
                Request.GET_CONFIG, ConfigSpace(0, 40, 0, bytes(40)).encode()
            )
            assert VIRTIO_FS_CONFIG.unpack(ConfigSpace.decode(reply).data)[1] == 3
            await frontend.start(4)
            await GuestFuseClient(frontend, queue=3).init()
            frontend.close_queues()
        assert await trio.to_thread.run_sync(process.wait, 10) == 0
    finally:
        process.kill()


def test_queue_count_outside_the_range_is_a_usage_error(tmp_path: Path) -> None:
    for count in ("0", "1024"):
        command = serve_command(tmp_path, "--socket-path", "x", "--num-request-queues", count)
        result = subprocess.run(command, capture_output=True, check=False)
        assert result.returncode == 2, result.stderr  # argparse's usage error


async def test_each_queue_logs_the_requests_it_answered(served: Served, caplog) -> None:
    """The log tells which queues a guest used: at each stop, a queue's answered chains."""
    caplog.set_level(logging.INFO, logger="hostfs.vhost.ring")
    report = await run_guest(served, 2_000, request_queues=REQUEST_QUEUES)
    with trio.fail_after(PROMPTLY):
        while len(stopped_counts(caplog)) < NUM_QUEUES:  # the disconnect stops every ring
            await trio.sleep(0.01)
    expected = {int(queue): count for queue, count in report["per_queue"].items()}
    expected[1] += 1  # the guest's FUSE_INIT, before the stress
    assert stopped_counts(caplog) == {0: 0, **expected}
    started = {record.getMessage() for record in caplog.records}
    assert {f"queue {index} started" for index in range(NUM_QUEUES)} <= started


def stopped_counts(caplog) -> dict[int, int]:
    pattern = re.compile(r"queue (\d+) stopped: (\d+) requests so far")
    found = (pattern.fullmatch(record.getMessage()) for record in caplog.records)
    return {int(match[1]): int(match[2]) for match in found if match}
