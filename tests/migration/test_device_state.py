"""SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE between two real devices on one share.

Device A serves a simulated guest that opens a file, locks it and opens a
directory; the rings stop, A saves its state through a pipe as QEMU's
``vhost_save_backend_state`` does, device B (another daemon, same directory)
loads it, and the guest carries on against B with the same nodeids and handles,
without a second INIT.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from hostfs.backends.local.backend import LocalBackend
from hostfs.cli.serve import make_device
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.options import FsOptions
from hostfs.fuse import abi
from hostfs.fuse.abi import Opcode
from hostfs.migration import state
from hostfs.migration.snapshot import OnError
from hostfs.testing.frontend import Frontend, FrontendError
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.vhost.device import VhostUserFsDevice
from hostfs.vhost.messages import DeviceStateTransfer, MigrationPhase, Request, TransferDirection
from hostfs.vhost.server import VhostUserServer, listen_on_path
from tests.support.host_locks import host_try
from tests.vhost.test_lock_waiters import KINDS, lock_args

NUM_QUEUES = 2
OWNER = 0x1234


@dataclass
class Daemon:
    socket_path: str
    fs: FileSystem
    device: VhostUserFsDevice


@pytest.fixture
def share(tmp_path: Path) -> Path:
    directory = tmp_path / "share"
    directory.mkdir()
    return directory


@pytest.fixture(params=["host", "local"])
def locks(request: pytest.FixtureRequest) -> str:
    return request.param


async def _daemon(
    tmp_path: Path,
    share: Path,
    name: str,
    locks: str,
    nursery: trio.Nursery,
    policy: OnError = OnError.ABORT,
):
    fs = FileSystem(LocalBackend.from_path(str(share)), FsOptions(host_locks=locks == "host"))
    await fs.start()
    device = make_device(fs, migration=policy)
    server = VhostUserServer(device, reconnect=True)
    path = str(tmp_path / f"{name}.sock")
    listener = await listen_on_path(path)
    nursery.start_soon(server.serve_listener, listener)
    return Daemon(path, fs, device), server, listener


@pytest.fixture
async def daemons(tmp_path, share, locks, nursery) -> AsyncIterator[tuple[Daemon, Daemon]]:
    a, server_a, listener_a = await _daemon(tmp_path, share, "a", locks, nursery)
    b, server_b, listener_b = await _daemon(tmp_path, share, "b", locks, nursery)
    yield a, b
    for server, listener, daemon in ((server_a, listener_a, a), (server_b, listener_b, b)):
        server.shutdown()
        listener.close()
        await daemon.fs.close()


async def _started(socket_path: str):
    frontend_context = Frontend.connect(socket_path)
    frontend = await frontend_context.__aenter__()
    assert await frontend.realize() == NUM_QUEUES
    await frontend.start(NUM_QUEUES)
    return frontend_context, frontend


async def _stop(frontend: Frontend) -> None:
    for index in range(NUM_QUEUES):
        await frontend.stop_queue(index)


@pytest.mark.parametrize("kind", KINDS)
async def test_open_file_lock_and_directory_carry_over(daemons, share, locks, kind) -> None:
    a, b = daemons
    context_a, front_a = await _started(a.socket_path)
    guest = GuestFuseClient(front_a)
    await guest.init()
    work = await guest.mkdir(ROOT_NODEID, b"work")
    nodeid, fh = await guest.create(work, b"log")
    assert await guest.write(nodeid, fh, 0, b"before\n") == 7
    await guest.ok(Opcode.SETLK, nodeid, lock_args(fh, OWNER, fcntl.F_WRLCK, kind))
    dh = await guest.opendir(work)
    (share / "work" / "listed").write_text("")
    held_on_a = host_try(share / "work" / "log", kind)

    await _stop(front_a)
    data = await front_a.save_state()
    saved = state.decode(data)
    assert {n.path for n in saved.nodes} == {b"work", b"work/log"}
    carried = saved.posix_locks if kind == "posix" else saved.flocks
    assert [(lock.nodeid, lock.owner, lock.type) for lock in carried] == [
        (nodeid, OWNER, fcntl.F_WRLCK)
    ]
    after_save = host_try(share / "work" / "log", kind)

    context_b, front_b = await _started(b.socket_path)
    for index in range(NUM_QUEUES):
        await front_b.stop_queue(index)
    assert await front_b.load_state(data) == 0
    held_on_b = host_try(share / "work" / "log", kind)
    await context_a.__aexit__(None, None, None)  # the source QEMU quits: A lets go of all
    await front_b.start(NUM_QUEUES)
    resumed = GuestFuseClient(front_b)  # no INIT: the session goes on
    assert await resumed.write(nodeid, fh, 7, b"after\n") == 6
    assert b"listed" in await resumed.readdir(work, dh)
    other = lock_args(fh, OWNER + 1, fcntl.F_WRLCK, kind)
    conflict = await resumed.call(Opcode.SETLK, nodeid, other)
    await resumed.ok(Opcode.SETLK, nodeid, lock_args(fh, OWNER, fcntl.F_UNLCK, kind))
    released = host_try(share / "work" / "log", kind)
    fresh = await resumed.lookup(work, b"listed")
    await resumed.release(nodeid, fh)
    await context_b.__aexit__(None, None, None)

    assert (share / "work" / "log").read_bytes() == b"before\nafter\n"
    assert conflict.error == 11  # EAGAIN: the owner's lock is B's now
    assert fresh > max(n.nodeid for n in saved.nodes)  # nodeids are never reused
    if locks == "host":
        assert (held_on_a, after_save, held_on_b, released) == ("EAGAIN", "free", "EAGAIN", "free")
    else:
        assert released == "free"


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-3],  # truncated
        lambda data: b"garbage" * 10,
        lambda data: data[:8] + (2).to_bytes(4, "little") + data[12:],  # a newer version
        lambda data: b"",
    ],
    ids=["truncated", "garbage", "version", "empty"],
)
async def test_a_bad_stream_is_refused_and_the_device_lives_on(daemons, damage) -> None:
    a, b = daemons
    context_a, front_a = await _started(a.socket_path)
    guest = GuestFuseClient(front_a)
    await guest.init()
    await guest.create(ROOT_NODEID, b"file")
    await _stop(front_a)
    data = await front_a.save_state()
    await context_a.__aexit__(None, None, None)

    async with Frontend.connect(b.socket_path) as front_b:
        assert await front_b.realize() == NUM_QUEUES
        assert await front_b.load_state(damage(data)) != 0
        assert len(b.fs.nodes) == 1  # nothing half-restored
        await front_b.start(NUM_QUEUES)
        fresh = GuestFuseClient(front_b)
        await fresh.init()  # a new session still starts
        assert await fresh.lookup(ROOT_NODEID, b"file") > ROOT_NODEID
        front_b.close_queues()


async def test_a_stream_beyond_the_bound_is_cut_off(daemons, monkeypatch) -> None:
    _, b = daemons
    monkeypatch.setattr(state, "MAX_STATE_SIZE", 1 << 16)
    async with Frontend.connect(b.socket_path) as front_b:
        await front_b.realize()
        assert await front_b.load_state(bytes(1 << 20)) != 0


async def test_state_transfer_refused_while_queues_run(daemons) -> None:
    a, _ = daemons
    context_a, front_a = await _started(a.socket_path)
    read_fd, write_fd = os.pipe()
    try:
        save = DeviceStateTransfer(TransferDirection.SAVE, MigrationPhase.STOPPED)
        reply = await front_a.call(Request.SET_DEVICE_STATE_FD, save.encode(), [write_fd])
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert reply is not None and int.from_bytes(reply, "little") & 0xFF != 0
    await context_a.__aexit__(None, None, None)


@pytest.mark.parametrize("policy", list(OnError))
async def test_a_file_removed_while_open(tmp_path, share, nursery, policy) -> None:
    """It has no path: ``abort`` refuses the save; ``guest-error`` drops it, and the
    guest gets ESTALE for its node and EBADF for its handle, the rest carries on."""
    a, server_a, listener_a = await _daemon(tmp_path, share, "a", "host", nursery, policy)
    b, server_b, listener_b = await _daemon(tmp_path, share, "b", "host", nursery, policy)
    context_a, front_a = await _started(a.socket_path)
    guest = GuestFuseClient(front_a)
    await guest.init()
    kept, kept_fh = await guest.create(ROOT_NODEID, b"kept")
    gone, gone_fh = await guest.create(ROOT_NODEID, b"gone")
    await guest.unlink(ROOT_NODEID, b"gone")
    await _stop(front_a)
    if policy is OnError.ABORT:
        with pytest.raises(FrontendError):
            await front_a.save_state()
        await front_a.start(NUM_QUEUES)  # the migration failed: the guest runs on at A
        assert await GuestFuseClient(front_a).write(gone, gone_fh, 0, b"still") == 5
    else:
        data = await front_a.save_state()
        async with Frontend.connect(b.socket_path) as front_b:
            await front_b.realize()
            assert await front_b.load_state(data) == 0
            await front_b.start(NUM_QUEUES)
            resumed = GuestFuseClient(front_b)
            assert await resumed.write(kept, kept_fh, 0, b"on") == 2
            lost_handle = await resumed.call(Opcode.WRITE, gone, _write_args(gone_fh))
            lost_node = await resumed.call(Opcode.GETATTR, gone, bytes(16))
            front_b.close_queues()
        assert (lost_handle.error, lost_node.error) == (errno.EBADF, errno.ESTALE)
        assert (share / "kept").read_bytes() == b"on"
    await context_a.__aexit__(None, None, None)
    for server, listener, daemon in ((server_a, listener_a, a), (server_b, listener_b, b)):
        server.shutdown()
        listener.close()
        await daemon.fs.close()


def _write_args(fh: int) -> bytes:
    return abi.WRITE_IN.pack(fh, 0, 1, 0, 0, os.O_RDWR, 0) + b"x"


async def test_a_failed_migration_gives_the_source_its_host_locks_back(daemons, share, locks):
    a, _ = daemons
    context_a, front_a = await _started(a.socket_path)
    guest = GuestFuseClient(front_a)
    await guest.init()
    nodeid, fh = await guest.create(ROOT_NODEID, b"locked")
    await guest.ok(Opcode.SETLK, nodeid, lock_args(fh, OWNER, fcntl.F_WRLCK))
    await _stop(front_a)
    await front_a.save_state()
    after_save = host_try(share / "locked")
    await front_a.start(NUM_QUEUES)  # the destination failed: QEMU runs the VM at A again
    resumed = host_try(share / "locked")
    other = await GuestFuseClient(front_a).call(
        Opcode.SETLK, nodeid, lock_args(fh, OWNER + 1, fcntl.F_WRLCK)
    )
    await context_a.__aexit__(None, None, None)
    if locks == "host":
        assert (after_save, resumed) == ("free", "EAGAIN")
    assert other.error == errno.EAGAIN  # the guest's owner holds it still


async def test_nodes_proc_cannot_name_are_found_by_a_walk(daemons, share, monkeypatch) -> None:
    """As for an fd from a file handle whose dentry left the cache (find_paths.py)."""

    async def no_path(self, obj):
        return None

    monkeypatch.setattr(LocalBackend, "path_of", no_path)
    a, b = daemons
    context_a, front_a = await _started(a.socket_path)
    guest = GuestFuseClient(front_a)
    await guest.init()
    sub = await guest.mkdir(ROOT_NODEID, b"sub")
    nodeid, fh = await guest.create(sub, b"file")
    await _stop(front_a)
    saved = state.decode(await front_a.save_state())
    await context_a.__aexit__(None, None, None)
    assert sorted(n.path for n in saved.nodes) == [b"sub", b"sub/file"]
    async with Frontend.connect(b.socket_path) as front_b:
        await front_b.realize()
        assert await front_b.load_state(state.encode(saved)) == 0
        await front_b.start(NUM_QUEUES)
        assert await GuestFuseClient(front_b).write(nodeid, fh, 0, b"found") == 5
        front_b.close_queues()
    assert (share / "sub" / "file").read_bytes() == b"found"
