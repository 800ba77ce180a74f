"""HostLocks: guest lock owners as host open file descriptions (fcntl(2) OFD locks, flock(2)).

Each test checks what the host kernel itself says about the file: a plain fd
of this test process (classic POSIX locks and flock conflict with the
descriptions' OFD and flock locks, even in one process) tells whether the
guest's lock is really held on the host, and the fd budget tells whether
every description was closed again.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from hostfs.backends.local.fd_budget import FdBudget
from hostfs.backends.local.host_locks import HostLocks
from hostfs.core.locks import OFFSET_MAX
from hostfs.core.types import Lock
from tests.support.host_locks import host_try

KEY = 7
WHOLE = (0, OFFSET_MAX)


def write_lock(pid: int = 0, start: int = 0, end: int = OFFSET_MAX) -> Lock:
    return Lock(start, end, fcntl.F_WRLCK, pid)


@pytest.fixture
def path(tmp_path: Path) -> str:
    target = tmp_path / "locked"
    target.write_bytes(b"x" * 100)
    return str(target)


@pytest.fixture
def handles(path: str) -> Iterator[dict[str, int]]:
    """Guest handles as the local backend has them: host fds in the guest's open mode."""
    opened = {"rw": os.open(path, os.O_RDWR), "ro": os.open(path, os.O_RDONLY)}
    yield opened
    for fd in opened.values():
        os.close(fd)


async def test_owners_conflict_and_the_host_sees_them(path, handles) -> None:
    fds = FdBudget(100)
    locks = HostLocks(fds)
    await locks.setlk(KEY, handles["rw"], 1, write_lock(pid=41, start=10, end=19), wait=False)
    await locks.setlk(KEY, handles["rw"], 1, write_lock(pid=41, start=15, end=29), wait=False)
    with pytest.raises(OSError) as busy:
        await locks.setlk(KEY, handles["rw"], 2, write_lock(start=25, end=25), wait=False)
    assert busy.value.errno == errno.EAGAIN
    assert host_try(path) == "EAGAIN"
    # GETLK of owner 2 names owner 1's range and the guest pid owner 1 locked with.
    assert locks.getlk(KEY, handles["ro"], 2, write_lock()) == Lock(10, 29, fcntl.F_WRLCK, 41)
    assert locks.getlk(KEY, handles["ro"], 1, write_lock()).type == fcntl.F_UNLCK
    assert fds.held == 2  # owner 1's description, owner 2's (opened by its SETLK)
    locks.release_posix(KEY, 1)
    locks.release_posix(KEY, 2)
    assert (host_try(path), fds.held) == ("free", 0)


async def test_getlk_reports_a_host_process_lock_with_its_pid(path, handles) -> None:
    locks = HostLocks(FdBudget(100))
    host = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(host, fcntl.LOCK_SH, 5, 3)  # bytes 3..7, a classic lock of this process
        found = locks.getlk(KEY, handles["ro"], 1, write_lock())
    finally:
        os.close(host)
    assert found == Lock(3, 7, fcntl.F_RDLCK, os.getpid())


async def test_a_read_only_handle_cannot_write_lock(handles) -> None:
    locks = HostLocks(FdBudget(100))
    with pytest.raises(OSError) as refused:
        await locks.setlk(KEY, handles["ro"], 1, write_lock(), wait=False)
    assert refused.value.errno == errno.EBADF
    # ...but a read lock through it, and then a write lock of the same owner through a
    # writable handle, share one read-write description (no conflict with itself).
    await locks.setlk(KEY, handles["ro"], 1, Lock(0, 9, fcntl.F_RDLCK), wait=False)
    await locks.setlk(KEY, handles["rw"], 1, write_lock(start=0, end=9), wait=False)
    locks.release_all()


async def test_a_waiting_lock_is_granted_when_the_host_lets_go(path, handles) -> None:
    locks = HostLocks(FdBudget(100))
    host = os.open(path, os.O_RDWR)
    fcntl.lockf(host, fcntl.LOCK_EX)
    granted = trio.Event()

    async def wait() -> None:
        await locks.setlk(KEY, handles["rw"], 1, write_lock(), wait=True)
        granted.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.sleep(0.05)
        assert (granted.is_set(), locks.waiting) == (False, 1)
        os.close(host)  # the host's lock goes
        with trio.fail_after(5):
            await granted.wait()
    assert (locks.waiting, host_try(path)) == (0, "EAGAIN")
    locks.release_all()


async def test_waits_are_capped_and_cancellable(handles) -> None:
    fds = FdBudget(100)
    locks = HostLocks(fds, max_waiters=1)
    await locks.setlk(KEY, handles["rw"], 1, write_lock(), wait=False)
    with trio.CancelScope() as scope:  # what FUSE INTERRUPT and a ring stop do
        async with trio.open_nursery() as nursery:
            nursery.start_soon(locks.setlk, KEY, handles["rw"], 2, write_lock(), True)
            await trio.sleep(0.01)
            with pytest.raises(OSError) as full:
                await locks.setlk(KEY, handles["rw"], 3, write_lock(), wait=True)
            assert full.value.errno == errno.ENOLCK
            scope.cancel()
    assert locks.waiting == 0
    locks.release_all()
    assert fds.held == 0


@pytest.mark.parametrize("kind", ["posix", "flock"])
async def test_release_ends_a_wait_of_that_owner(path, handles, kind) -> None:
    fds = FdBudget(100)
    locks = HostLocks(fds)
    setlk = locks.flock if kind == "flock" else locks.setlk
    release = locks.release_flock if kind == "flock" else locks.release_posix
    await setlk(KEY, handles["rw"], 1, write_lock(), False)
    errors = []

    async def wait() -> None:
        try:
            await setlk(KEY, handles["rw"], 2, write_lock(), True)
        except OSError as error:
            errors.append(error.errno)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.sleep(0.01)
        release(KEY, 2)  # FLUSH / RELEASE of the waiting owner
    assert errors == [errno.EBADF]
    assert fds.held == 1  # owner 2's description closed once its wait was done
    release(KEY, 1)
    assert (fds.held, host_try(path, kind)) == (0, "free")


async def test_flock_conflicts_with_the_host(path, handles) -> None:
    locks = HostLocks(FdBudget(100))
    await locks.flock(KEY, handles["ro"], 1, Lock(*WHOLE, fcntl.F_RDLCK), wait=False)
    await locks.flock(KEY, handles["ro"], 2, Lock(*WHOLE, fcntl.F_RDLCK), wait=False)
    with pytest.raises(BlockingIOError):
        await locks.flock(KEY, handles["ro"], 3, Lock(*WHOLE, fcntl.F_WRLCK), wait=False)
    assert host_try(path, "flock") == "EAGAIN"
    await locks.flock(KEY, handles["ro"], 1, Lock(*WHOLE, fcntl.F_UNLCK), wait=False)
    locks.release_flock(KEY, 2)
    assert host_try(path, "flock") == "free"
    locks.release_all()


async def test_descriptions_count_against_the_fd_budget(handles) -> None:
    locks = HostLocks(FdBudget(1))
    await locks.setlk(KEY, handles["rw"], 1, write_lock(start=0, end=0), wait=False)
    with pytest.raises(OSError) as refused:
        await locks.setlk(KEY, handles["rw"], 2, write_lock(start=5, end=5), wait=False)
    assert refused.value.errno == errno.ENOLCK
    locks.release_all()
