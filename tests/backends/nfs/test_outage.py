"""A server that goes away: bounded errors, no hang, service and fsynced data back after."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from hostfs.backends.nfs import NfsBackend, open_nfs_backend
from hostfs.core.types import Caller
from tests.support.nfs_server import GaneshaServer

TIMEOUT = 2
"""The backend's RPC timeout here; libnfs fires within TIMEOUT..TIMEOUT+1 s."""

BOUND = TIMEOUT + 3
"""The longest any request may take while the server is away."""

OUTAGE_ERRNOS = {errno.EIO, errno.ETIMEDOUT}

ME = Caller(os.getuid(), os.getgid(), os.getpid())


async def write_files(nfs: NfsBackend, start: int, count: int, acked: dict[bytes, bytes]) -> None:
    """Create, write and fsync files; only fsynced ones count as acknowledged."""
    root = nfs.tree.root
    for index in range(start, start + count):
        name = b"f%d" % index
        data = name * 1000
        _, _, handle = await nfs.create(root, name, os.O_RDWR, 0o644, ME)
        await nfs.write(handle, 0, [memoryview(bytearray(data))])
        await nfs.fsync(handle, datasync=False)
        acked[name] = data
        await nfs.release(handle)


async def expect_outage(nfs: NfsBackend, acked: dict[bytes, bytes], start: int) -> None:
    """Every request fails with EIO/ETIMEDOUT within BOUND seconds."""
    for attempt in range(3):
        began = time.monotonic()
        with trio.fail_after(BOUND):
            try:
                await write_files(nfs, start + attempt, 1, acked)
            except OSError as error:
                assert error.errno in OUTAGE_ERRNOS, error
            else:
                raise AssertionError("a request succeeded while the server was away")
        assert time.monotonic() - began < BOUND
    with trio.fail_after(BOUND):
        try:
            await nfs.listdir(nfs.tree.root)
        except OSError as error:
            assert error.errno in OUTAGE_ERRNOS, error


async def expect_service(nfs: NfsBackend, acked: dict[bytes, bytes], start: int) -> None:
    with trio.fail_after(BOUND * 2):
        while True:
            try:
                await write_files(nfs, start, 5, acked)
                return
            except OSError as error:
                assert error.errno in OUTAGE_ERRNOS, error
                await trio.sleep(0.2)


def check_acked(directory: Path, acked: dict[bytes, bytes]) -> None:
    for name, data in acked.items():
        assert (directory / os.fsdecode(name)).read_bytes() == data, name


async def run_outage(
    nfs_url: str, nfs_dir: Path, away: Callable[[], None], back: Callable[[], None]
) -> None:
    """10 fsynced files, the server away (3 bounded failures), back: 5 more, all 15 intact."""
    nfs = await open_nfs_backend(f"{nfs_url}&timeout={TIMEOUT}&contexts=2")
    acked: dict[bytes, bytes] = {}
    try:
        await write_files(nfs, 0, 10, acked)
        away()
        try:
            await expect_outage(nfs, acked, 100)
        finally:
            back()
        await expect_service(nfs, acked, 200)
        check_acked(nfs_dir, acked)
        assert len(acked) == 15
    finally:
        await nfs.close()


async def test_server_crash_and_restart(
    nfs_server: GaneshaServer, nfs_url: str, nfs_dir: Path
) -> None:
    await run_outage(nfs_url, nfs_dir, lambda: nfs_server.stop(crash=True), nfs_server.start)


async def test_hung_server_times_out_then_recovers(
    nfs_server: GaneshaServer, nfs_url: str, nfs_dir: Path
) -> None:
    await run_outage(nfs_url, nfs_dir, nfs_server.pause, nfs_server.resume)


CROWD = 16
"""Requests at once against a hung server: 8 per context, so with one timeout per
RPC from its own start the last would have waited for 8 timeouts."""


async def test_every_waiting_request_fails_within_its_own_timeout(
    nfs_server: GaneshaServer, nfs_url: str, nfs_dir: Path
) -> None:
    """The deadline counts from the request's start: time spent waiting for a busy
    context or another request's remount is part of it."""
    nfs = await open_nfs_backend(f"{nfs_url}&timeout={TIMEOUT}&contexts=2")
    # Every call must reach the paused server: no GETATTR answered from the
    # attributes the last creates' replies carried (backend.POST_OP_REUSE_NS).
    nfs.reuse_ns = 0
    root = nfs.tree.root
    acked: dict[bytes, bytes] = {}
    await write_files(nfs, 0, 2, acked)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: nfs.listdir(root),  # the contexts' threads
        lambda: nfs.statfs(root),
        lambda: nfs.getattr(root),  # the event loop's connection
        lambda: write_files(nfs, 100, 1, acked),  # both, several RPCs
    ]
    errors: list[int] = []

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        began = time.monotonic()
        try:
            await call()
        except OSError as error:
            errors.append(error.errno or 0)
        took = time.monotonic() - began
        assert took < BOUND, f"a request took {took:.1f} s, timeout {TIMEOUT} s"

    nfs_server.pause()
    try:
        with trio.fail_after(BOUND * CROWD):
            async with trio.open_nursery() as nursery:
                for index in range(CROWD):
                    nursery.start_soon(one, calls[index % len(calls)])
    finally:
        nfs_server.resume()
    try:
        assert len(errors) == CROWD and set(errors) <= OUTAGE_ERRNOS, errors
        await expect_service(nfs, acked, 200)
        check_acked(nfs_dir, acked)
    finally:
        await nfs.close()
