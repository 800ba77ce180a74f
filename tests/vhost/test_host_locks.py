"""A guest's locks through the device are the host's, and go with their owner's close
and with the session (``--locks host``, the default for a local share).

The simulated guest takes a lock over the virtqueue; a plain fd of this test
process on the shared file (classic POSIX locks and flock conflict with the
daemon's OFD and flock locks) says whether the host sees it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from hostfs.core.filesystem import ROOT_NODEID
from hostfs.fuse import abi
from hostfs.fuse.abi import Opcode
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.vhost.messages import Request
from tests.support.host_locks import host_try
from tests.support.serve import serve_command, wait_for_socket
from tests.vhost.conftest import NUM_QUEUES
from tests.vhost.test_lock_waiters import KINDS, PROMPTLY, ack, lock_args


async def lock_a_file(client: GuestFuseClient, name: bytes, kind: str) -> tuple[int, int]:
    nodeid, fh = await client.create(ROOT_NODEID, name)
    await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 5, fcntl.F_WRLCK, kind))
    return nodeid, fh


@pytest.mark.parametrize("kind", KINDS)
async def test_the_owners_close_releases_the_host_lock(client, served, kind) -> None:
    nodeid, fh = await lock_a_file(client, b"closed", kind)
    path = str(served.share / "closed")
    held = host_try(path, kind)
    if kind == "posix":  # close(2) of any fd of the file: FLUSH with the owner
        await client.ok(Opcode.FLUSH, nodeid, abi.FLUSH_IN.pack(fh, 0, 0, 5))
    else:  # the last close of the open file: RELEASE with FUSE_RELEASE_FLOCK_UNLOCK
        flags = abi.RELEASE_FLOCK_UNLOCK
        await client.ok(Opcode.RELEASE, nodeid, abi.RELEASE_IN.pack(fh, os.O_RDWR, flags, 5))
    assert (held, host_try(path, kind)) == ("EAGAIN", "free")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_device_reset_releases_the_host_locks(client, guest, served, kind) -> None:
    await lock_a_file(client, b"reset", kind)
    path = str(served.share / "reset")
    held = host_try(path, kind)
    assert await ack(guest, Request.RESET_DEVICE) == 0
    after_reset = host_try(path, kind)
    await guest.start(NUM_QUEUES)
    fresh = GuestFuseClient(guest)
    await fresh.init()
    assert (held, after_reset) == ("EAGAIN", "free")


async def test_a_host_lock_makes_the_guest_wait(client, served) -> None:
    """GETLK names the host process's lock (with its pid: no sandbox here)."""
    nodeid, fh = await client.create(ROOT_NODEID, b"host-held")
    host = os.open(served.share / "host-held", os.O_RDWR)
    try:
        fcntl.lockf(host, fcntl.LOCK_EX, 10, 0)
        reply = await client.call(Opcode.SETLK, nodeid, lock_args(fh, 5, fcntl.F_WRLCK))
        body = await client.ok(
            Opcode.GETLK, nodeid, lock_args(fh, 5, fcntl.F_WRLCK), reply_size=abi.FILE_LOCK.size
        )
    finally:
        os.close(host)
    start, end, lock_type, pid = abi.FILE_LOCK.unpack_from(body)
    assert reply.error == errno.EAGAIN
    assert (start, end, lock_type, pid) == (0, 9, fcntl.F_WRLCK, os.getpid())
    await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 5, fcntl.F_WRLCK))


async def test_a_sandboxed_daemon_takes_host_locks_and_hides_host_pids(tmp_path: Path) -> None:
    """``hostfs serve`` as it runs (namespaces, pivot_root, seccomp kill): the guest's
    record lock is the host's, a host process's lock is reported with pid 0 (the
    daemon's pid namespace has no host processes), and the daemon's exit frees all."""
    sock = tmp_path / "vhost.sock"
    process = subprocess.Popen(serve_command(tmp_path, "--socket-path", str(sock)))
    path = str(tmp_path / "share" / "locked")
    try:
        await wait_for_socket(sock)
        async with Frontend.connect(str(sock)) as frontend:
            await frontend.realize()
            await frontend.start(2)
            client = GuestFuseClient(frontend)
            await client.init()
            nodeid, fh = await lock_a_file(client, b"locked", "posix")
            held = host_try(path, "posix")
            await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 5, fcntl.F_UNLCK))
            host = os.open(path, os.O_RDWR)
            try:
                fcntl.lockf(host, fcntl.LOCK_SH, 4, 0)
                body = await client.ok(
                    Opcode.GETLK,
                    nodeid,
                    lock_args(fh, 5, fcntl.F_WRLCK),
                    reply_size=abi.FILE_LOCK.size,
                )
            finally:
                os.close(host)
            await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 5, fcntl.F_WRLCK))
            process.send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(process.wait, PROMPTLY) == 0
            frontend.close_queues()
    finally:
        process.kill()
    assert held == "EAGAIN"
    assert abi.FILE_LOCK.unpack_from(body) == (0, 3, fcntl.F_RDLCK, 0)
    assert host_try(path, "posix") == "free"
