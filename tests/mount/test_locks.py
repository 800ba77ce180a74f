"""GETLK/SETLK/SETLKW (POSIX record locks) and flock, between two processes.

The second process is a forked child with its own open file: a different lock
owner, as FUSE sees it.  With pyfuse3 (no lock handlers) the host kernel keeps
the locks itself; they must still be correct between two local processes, so
every engine gets the same assertions.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from collections.abc import Callable

from tests.mount.compare import same, write_file
from tests.mount.processes import in_other_process

j = os.path.join

FLOCK = struct.Struct("hhqqi4x")
"""struct flock on x86-64/aarch64: l_type, l_whence, l_start, l_len, l_pid."""

BLOCKED_FOR = 0.3
"""How long a waiter must stay blocked to count as blocked."""


def getlk(fd: int, lock_type: int, start: int, length: int) -> tuple[int, int, int, int]:
    """F_GETLK: (type, start, len, pid) of a conflicting lock, or F_UNLCK."""
    request = FLOCK.pack(lock_type, os.SEEK_SET, start, length, 0)
    l_type, _, l_start, l_len, l_pid = FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, request))
    return l_type, l_start, l_len, l_pid


def shared_file(base: str) -> str:
    path = j(base, "locked")
    write_file(path, b"x" * 100)
    return path


def _without_waiting(lock: Callable[..., None], fd: int, operation: int, *args: int) -> str:
    """ "locked", or the errno name the non-blocking lock call failed with."""
    try:
        lock(fd, operation | fcntl.LOCK_NB, *args)
    except OSError as error:
        return errno.errorcode[error.errno]
    return "locked"


def try_lock(fd: int, operation: int, length: int = 0, start: int = 0) -> str:
    return _without_waiting(fcntl.lockf, fd, operation, length, start)


def record_locks_seen_by_another_process(base: str) -> dict:
    path = shared_file(base)
    holder = os.getpid()
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, 10, 20)  # bytes 20..29

        def probe(other_fd):
            found = getlk(other_fd, fcntl.F_WRLCK, 0, 0)
            return {
                "conflict": (*found[:3], found[3] == holder),
                "before": getlk(other_fd, fcntl.F_WRLCK, 0, 20)[0],
                "overlap": try_lock(other_fd, fcntl.LOCK_EX, 1, 25),
                "shared-overlap": try_lock(other_fd, fcntl.LOCK_SH, 10, 20),
                "beside": try_lock(other_fd, fcntl.LOCK_EX, 10, 30),
            }

        seen = in_other_process(probe, path, fd).result()
        fcntl.lockf(fd, fcntl.LOCK_UN, 10, 20)
        seen["after-unlock"] = in_other_process(
            lambda other_fd: try_lock(other_fd, fcntl.LOCK_EX, 10, 20), path, fd
        ).result()
    finally:
        os.close(fd)
    return seen


def test_record_locks_between_processes(twin):
    seen = same(twin, record_locks_seen_by_another_process)
    assert seen == {
        "conflict": (fcntl.F_WRLCK, 20, 10, True),
        "before": fcntl.F_UNLCK,
        "overlap": "EAGAIN",
        "shared-overlap": "EAGAIN",
        "beside": "locked",
        "after-unlock": "locked",
    }


def test_shared_record_locks_coexist(twin):
    def run(base):
        path = shared_file(base)
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH)
            reader = in_other_process(lambda other: try_lock(other, fcntl.LOCK_SH), path, fd)
            writer = in_other_process(lambda other: try_lock(other, fcntl.LOCK_EX), path, fd)
            return reader.result(), writer.result()
        finally:
            os.close(fd)

    assert same(twin, run) == ("locked", "EAGAIN")


def wait_for_lock(fd: int) -> float:
    fcntl.lockf(fd, fcntl.LOCK_EX)  # F_SETLKW
    return time.monotonic()


def test_setlkw_blocks_until_release(twin):
    path = shared_file(twin.mnt)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        waiter = in_other_process(wait_for_lock, path, fd)
        assert not waiter.finished(BLOCKED_FOR), "F_SETLKW did not wait for the holder"
        released = time.monotonic()
        fcntl.lockf(fd, fcntl.LOCK_UN)
        assert waiter.result(timeout=5) >= released
    finally:
        os.close(fd)


def test_closing_any_descriptor_drops_record_locks(twin):
    """POSIX: a process's locks on a file go when it closes any descriptor of it (FLUSH)."""

    def run(base):
        path = shared_file(base)
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            while_held = in_other_process(lambda o: try_lock(o, fcntl.LOCK_EX), path, fd).result()
            os.close(os.open(path, os.O_RDONLY))
            after_close = in_other_process(lambda o: try_lock(o, fcntl.LOCK_EX), path, fd).result()
            return while_held, after_close
        finally:
            os.close(fd)

    assert same(twin, run) == ("EAGAIN", "locked")


def try_flock(fd: int, operation: int) -> str:
    return _without_waiting(fcntl.flock, fd, operation)


def test_flock_between_processes(twin):
    def run(base):
        path = shared_file(base)
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            exclusive = in_other_process(lambda o: try_flock(o, fcntl.LOCK_EX), path, fd).result()
            shared = in_other_process(lambda o: try_flock(o, fcntl.LOCK_SH), path, fd).result()
            # flock and record locks are independent of each other on Linux.
            record = in_other_process(lambda o: try_lock(o, fcntl.LOCK_EX), path, fd).result()
            fcntl.flock(fd, fcntl.LOCK_SH)  # downgrade
            reader = in_other_process(lambda o: try_flock(o, fcntl.LOCK_SH), path, fd).result()
        finally:
            os.close(fd)
        after_close = in_other_process(lambda o: try_flock(o, fcntl.LOCK_EX), path, None).result()
        return exclusive, shared, record, reader, after_close

    busy = errno.errorcode[errno.EWOULDBLOCK]  # the same number as EAGAIN on Linux
    assert same(twin, run) == (busy, busy, "locked", "locked", "locked")


def test_flock_waits_until_release(twin):
    path = shared_file(twin.mnt)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)

        def wait_for_flock(other_fd):
            fcntl.flock(other_fd, fcntl.LOCK_EX)
            return time.monotonic()

        waiter = in_other_process(wait_for_flock, path, fd)
        assert not waiter.finished(BLOCKED_FOR), "flock did not wait for the holder"
        released = time.monotonic()
    finally:
        os.close(fd)  # the last close of the open file releases its flock
    assert waiter.result(timeout=5) >= released
