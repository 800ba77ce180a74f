"""A real ``hostfs serve`` process for tests, and a simulated guest talking to it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import trio

from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import GuestFuseClient

SERVE = [sys.executable, "-c", "import sys; from hostfs.cli.serve import main; sys.exit(main())"]


def serve_command(tmp_path: Path, *extra: str) -> list[str]:
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    return [*SERVE, "--shared-dir", str(share), *extra]


SO_ACCEPTCON = 0x10000
"""``__SO_ACCEPTCON`` in the Flags column of /proc/net/unix: the socket listens."""


def listening(path: Path) -> bool:
    """The file appears at bind(), before listen(): a connect() then is refused."""
    with open("/proc/net/unix") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if len(fields) == 8 and fields[7] == str(path) and int(fields[3], 16) & SO_ACCEPTCON:
                return True
    return False


async def wait_for_socket(path: Path) -> None:
    with trio.fail_after(10):
        while not listening(path):
            await trio.sleep(0.02)


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    pid: int
    """The process that serves: the supervisor's child when sandboxed, else the process."""
    fuse: GuestFuseClient
    frontend: Frontend
    init_flags: int
    """The flags the daemon agreed to in INIT (flags | flags2 << 32)."""

    def status(self, field: str) -> str:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == field:
                return value.strip()
        raise KeyError(field)

    def namespace(self, kind: str) -> str:
        return os.readlink(f"/proc/{self.pid}/ns/{kind}")


def _serving_pid(process: subprocess.Popen[bytes]) -> int:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return int(children[0]) if children else process.pid


@asynccontextmanager
async def serving(
    tmp_path: Path,
    shared_dir: str,
    *flags: str,
    stderr: IO[bytes] | None = None,
    serve: Sequence[str] = SERVE,
    init_flags: int = 0,
) -> AsyncIterator[Daemon]:
    """``hostfs serve`` up to an answered FUSE INIT, so its set-up is over; at the end
    the front-end leaves, and the daemon must exit 0 and remove its socket.  ``serve``
    is the command before the flags (``hostfs.testing.unprivileged.serve_as``: as an
    ordinary user); ``init_flags`` are offered in INIT besides the usual ones."""
    sock = tmp_path / "vhost.sock"
    command = [*serve, "--shared-dir", shared_dir, "--socket-path", str(sock), *flags]
    process = subprocess.Popen(command, stderr=stderr)
    try:
        await wait_for_socket(sock)
        async with Frontend.connect(str(sock)) as frontend:
            await frontend.realize()
            await frontend.start(2)
            fuse = GuestFuseClient(frontend)
            reply = abi.INIT_OUT.unpack(await fuse.init(init_flags))
            agreed = reply[3] | reply[10] << 32
            yield Daemon(process, _serving_pid(process), fuse, frontend, agreed)
            frontend.close_queues()
        assert await trio.to_thread.run_sync(process.wait, 10) == 0
        assert not sock.exists()
    finally:
        process.kill()
        process.wait()


async def round_trip(fuse: GuestFuseClient, name: bytes, data: bytes) -> None:
    """Create, write, read back through the daemon."""
    nodeid, fh = await fuse.create(ROOT_ID, name)
    assert await fuse.write(nodeid, fh, 0, data) == len(data)
    assert await fuse.read(nodeid, fh, 0, 4096) == data
    await fuse.release(nodeid, fh)
