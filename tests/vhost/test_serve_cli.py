"""``hostfs serve`` as a process: exits 0 on disconnect and on SIGTERM, cleans up its socket."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
from pathlib import Path

import trio

from hostfs.fuse.abi import ROOT_ID
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import FuseError, GuestFuseClient
from hostfs.testing.guest_ram import GuestRam
from tests.support.serve import serve_command, serving, wait_for_socket


async def test_exits_when_the_front_end_leaves(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share)) as daemon:  # checks exit status 0, socket gone
        await daemon.fuse.create(ROOT_ID, b"made-by-guest")
    assert (share / "made-by-guest").exists()


async def test_sigterm_mid_session(tmp_path: Path) -> None:
    sock = tmp_path / "vhost.sock"
    process = subprocess.Popen(serve_command(tmp_path, "--socket-path", str(sock), "--reconnect"))
    try:
        await wait_for_socket(sock)
        async with Frontend.connect(str(sock)) as frontend:
            await frontend.realize()
            await frontend.start(2)
            await GuestFuseClient(frontend).init()
            process.send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(process.wait, 10) == 0
            frontend.close_queues()
        assert not sock.exists()
    finally:
        process.kill()


async def test_inherited_connected_fd(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    command = serve_command(tmp_path, "--fd", str(theirs.fileno()))
    process = subprocess.Popen(command, pass_fds=[theirs.fileno()])
    theirs.close()
    try:
        frontend_sock = trio.socket.from_stdlib_socket(ours)
        frontend = Frontend(frontend_sock, GuestRam(4 << 20), 32)
        await frontend.realize()
        await frontend.start(2)
        await GuestFuseClient(frontend).init()
        frontend.close_queues()
        frontend_sock.close()
        frontend.ram.close()
        assert await trio.to_thread.run_sync(process.wait, 10) == 0
    finally:
        process.kill()


async def test_sigusr1_logs_the_request_table(tmp_path: Path) -> None:
    """As `hostfs mount` does: ``kill -USR1`` logs calls, errors and latency per opcode,
    through the sandbox's supervisor, and the daemon carries on."""
    share, log = tmp_path / "share", tmp_path / "serve.log"
    share.mkdir()
    with open(log, "wb") as stderr:
        # --cache never: a missing name is an error reply, not a negative entry.
        async with serving(tmp_path, str(share), "--cache", "never", stderr=stderr) as daemon:
            for _ in range(3):
                with contextlib.suppress(FuseError):
                    await daemon.fuse.lookup(ROOT_ID, b"missing")
            daemon.process.send_signal(signal.SIGUSR1)
            with trio.fail_after(10):
                while b"FUSE requests" not in log.read_bytes():
                    await trio.sleep(0.05)
            await daemon.fuse.create(ROOT_ID, b"still-served")
    table = log.read_bytes().decode().split("FUSE requests:", 1)[1]
    lookup = next(line.split() for line in table.splitlines() if line.startswith("LOOKUP"))
    assert lookup[1:3] == ["3", "3"]  # calls, errors
