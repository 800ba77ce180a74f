"""The io_uring engine against the real kernel: requests come over the rings, and the
rings go away with the mount.  In-process, so the session's counters are visible
(syscalls on the mount run in worker threads, tests.devfuse.mounting)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import trio

from hostfs.devfuse.mount import unmount
from hostfs.fuse.abi import Opcode
from hostfs.fuse.init import SessionConfig
from hostfs.uring import abi
from hostfs.uring import session as uring_engine
from hostfs.uring.session import ENTRIES_PER_QUEUE, UringSession, possible_cpus, queue_count
from tests.devfuse.mounting import devfuse_mount, in_thread, is_mounted

DEVICE_ONLY = (Opcode.INIT, Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT)
"""What /dev/fuse carries even once the rings are up (fs/fuse/dev_uring.c,
fuse_io_uring_ops: forgets and interrupts keep the /dev/fuse queue)."""

FILES = 50


def work(path: Path) -> None:
    for index in range(FILES):
        (path / f"f{index}").write_bytes(b"x" * index)
    assert sorted(os.listdir(path)) == sorted(f"f{index}" for index in range(FILES))
    for index in range(FILES):
        assert (path / f"f{index}").read_bytes() == b"x" * index
        os.unlink(path / f"f{index}")


def test_queues_follow_the_possible_cpus() -> None:
    assert possible_cpus("0-3\n") == 4
    assert possible_cpus("0,2-5") == 5
    assert possible_cpus("0") == 1
    assert queue_count() >= os.cpu_count()  # type: ignore[operator]


async def test_every_request_but_forgets_comes_over_the_rings(tmp_path: Path) -> None:
    config = SessionConfig(passthrough=False)
    async with devfuse_mount(tmp_path, config, uring_engine) as mount:
        session: UringSession = mount.session
        assert not session.fell_back
        assert len(session.entries) == queue_count() * ENTRIES_PER_QUEUE
        await in_thread(lambda: work(mount.path))
        calls = session.dispatcher.stats.calls
        while session.transport.requests + session.device.transport.requests > sum(calls):
            await trio.sleep(0.01)  # until every request read so far has been answered
        device_only = sum(calls[opcode] for opcode in DEVICE_ONLY)
        assert calls[Opcode.CREATE] == FILES and calls[Opcode.UNLINK] == FILES
        assert session.transport.requests == sum(calls) - device_only
        assert session.device.transport.requests == device_only


async def test_an_unmount_from_outside_ends_the_session_and_closes_its_fds(
    tmp_path: Path,
) -> None:
    fds_before = set(os.listdir("/proc/self/fd"))
    mnt = tmp_path / "mnt"
    async with devfuse_mount(tmp_path, None, uring_engine) as mount:
        session: UringSession = mount.session
        await in_thread(lambda: (mount.path / "f").write_bytes(b"data"))
        ring_fd = session.ring.fd
        assert os.readlink(f"/proc/self/fd/{ring_fd}") == "anon_inode:[io_uring]"
        with trio.fail_after(10):
            await in_thread(lambda: unmount(str(mnt)))
            while session.ring.fd != -1:  # serve_mount returns by itself and closes the ring
                await trio.sleep(0.01)
        assert session.device.ended
    assert not is_mounted(mnt)
    assert set(os.listdir("/proc/self/fd")) <= fds_before


class _WorkerSteps(trio.abc.Instrument):
    """Counts how often the rings' worker tasks run."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("UringSession._worker"):
            self.steps += 1


async def test_a_wake_up_runs_a_few_workers_not_the_whole_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request after a pause finds the pool asleep (no polling here); waking it
    must not run each of its workers (16) once per request."""
    monkeypatch.setattr(uring_engine, "POLL_NS", 0)
    mkdirs = 20

    def pauses_between_requests(path: Path) -> None:
        for index in range(mkdirs):
            time.sleep(0.002)
            os.mkdir(path / f"d{index}")  # a LOOKUP and a MKDIR, never cached

    async with devfuse_mount(tmp_path, SessionConfig(concurrency=16), uring_engine) as mount:
        counter = _WorkerSteps()
        trio.lowlevel.add_instrument(counter)
        try:
            await in_thread(lambda: pauses_between_requests(mount.path))
        finally:
            trio.lowlevel.remove_instrument(counter)
    # Two requests per mkdir; each wakes the sleeper and its successor, not 15 more.
    assert counter.steps <= 3 * 2 * mkdirs


def test_an_entrys_commit_is_its_prebuilt_sqe_with_the_commit_id() -> None:
    entry = uring_engine._Entry(3, 1, 8192, device_fd=9)
    try:
        sqe = bytearray(entry.commit_sqe)
        abi.COMMIT_ID.pack_into(sqe, abi.COMMIT_ID_OFFSET, 77)
        packed = memoryview(bytearray(abi.SQE_SIZE))
        abi.encode_uring_cmd(packed, 9, abi.CMD_COMMIT_AND_FETCH, 3, abi.encode_cmd_req(1, 77))
        assert sqe == packed
    finally:
        entry.close()
