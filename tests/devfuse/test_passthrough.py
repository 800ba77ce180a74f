"""FUSE passthrough on a real /dev/fuse mount: the kernel reads and writes the host file.

The dispatcher's counters show whether READ and WRITE still reach hostfs.  Both
engines with hostfs's own INIT reply: devfuse, and uring (the backing ids are
registered on /dev/fuse, the OPEN replies travel over the rings).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from hostfs.devfuse import session as devfuse_engine
from hostfs.fuse.abi import Opcode
from hostfs.fuse.engine import MountEngine
from hostfs.fuse.init import SessionConfig
from hostfs.uring import session as uring_engine
from tests.devfuse.mounting import Mounted, devfuse_mount, in_thread

DATA = os.urandom(3 << 20)


@pytest.fixture(params=["devfuse", "uring"])
def engine(request: pytest.FixtureRequest) -> MountEngine:
    engines: dict[str, MountEngine] = {"devfuse": devfuse_engine, "uring": uring_engine}
    return engines[request.param]


def data_requests(mount: Mounted) -> int:
    calls = mount.session.dispatcher.stats.calls
    return calls[Opcode.READ] + calls[Opcode.WRITE]


def write_and_read_back(mount: Mounted, name: str) -> None:
    (mount.path / name).write_bytes(DATA)
    assert (mount.source / name).read_bytes() == DATA
    with open(mount.source / name, "rb") as host_file:
        os.posix_fadvise(host_file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    assert (mount.path / name).read_bytes() == DATA


async def test_reads_and_writes_bypass_the_daemon(tmp_path: Path, engine: MountEngine) -> None:
    async with devfuse_mount(tmp_path, SessionConfig(passthrough=True), engine) as mount:
        assert mount.session.dispatcher.protocol.passthrough
        await in_thread(lambda: write_and_read_back(mount, "f"))
        assert data_requests(mount) == 0


async def test_without_passthrough_the_daemon_serves_them(
    tmp_path: Path, engine: MountEngine
) -> None:
    async with devfuse_mount(tmp_path, SessionConfig(passthrough=False), engine) as mount:
        assert not mount.session.dispatcher.protocol.passthrough
        await in_thread(lambda: write_and_read_back(mount, "f"))
        assert data_requests(mount) >= 2 * len(DATA) // (1 << 20)


async def test_handles_of_one_file_share_its_backing_file(
    tmp_path: Path, engine: MountEngine
) -> None:
    """The kernel fails an open with EIO if two handles of one inode name
    different backing files; the id is closed with the last handle."""
    async with devfuse_mount(tmp_path, SessionConfig(passthrough=True), engine) as mount:

        def work() -> None:
            path = mount.path / "f"
            with open(path, "wb") as writer, open(path, "rb") as reader:
                writer.write(b"shared")
                writer.flush()
                assert reader.read() == b"shared"
                assert len(mount.session.dispatcher.backing) == 1
            with open(path, "rb") as again:
                assert again.read() == b"shared"

        await in_thread(work)
        assert data_requests(mount) == 0
        # close() does not wait for RELEASE: the kernel sends it in the background
        # (fuse_file_put), and over the rings it may come after close() returned.
        while mount.session.dispatcher.stats.calls[Opcode.RELEASE] < 3:
            await trio.sleep(0.01)
        assert not mount.session.dispatcher.backing


async def test_setuid_files_are_served_by_the_daemon(tmp_path: Path, engine: MountEngine) -> None:
    """Whether a write drops S_ISUID depends on the caller; only the daemon sees it."""
    async with devfuse_mount(tmp_path, SessionConfig(passthrough=True), engine) as mount:
        program = mount.source / "program"
        program.write_bytes(b"#!/bin/sh\n")
        program.chmod(0o4755)
        await in_thread(lambda: (mount.path / "program").write_bytes(b"#!/bin/true\n"))
        assert mount.session.dispatcher.stats.calls[Opcode.WRITE] == 1
        assert program.stat().st_mode & 0o7777 == 0o4755, "root's write keeps the bit"
