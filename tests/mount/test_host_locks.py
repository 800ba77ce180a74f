"""Locks that hold across hostfs instances and host processes (``--locks host``).

Two ``hostfs mount`` daemons share one directory, as two VMs with a hostfs
each do under libvirt; a lock taken through one must block the other, a host
process's fcntl/flock lock on the real file must block the mount and the
reverse, and each lock must be gone after a close, and after its daemon
exits.  ``--locks local`` keeps today's per-daemon tables: the same lock is
then invisible to the other daemon, which is what lets two writers corrupt a
shared SQLite database.  The devfuse engine only: pyfuse3 cannot express lock
requests, so the host kernel keeps a pyfuse3 mount's locks to itself
(README, "Engines").
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.mount.processes import Child, in_other_process
from tests.mount.test_locks import BLOCKED_FOR, getlk, try_flock, try_lock
from tests.support.mounts import Mount, hostfs_mount

j = os.path.join


@contextlib.contextmanager
def two_mounts(tmp_path, *extra: str) -> Iterator[tuple[str, Mount, Mount]]:
    share = str(tmp_path / "share")
    os.mkdir(share)
    mounts = []
    with contextlib.ExitStack() as stack:
        for name in ("a", "b"):
            mountpoint = str(tmp_path / name)
            os.mkdir(mountpoint)
            mounts.append(
                stack.enter_context(
                    hostfs_mount("devfuse", share, mountpoint, share, "local", extra)
                )
            )
        yield share, mounts[0], mounts[1]


@pytest.fixture
def host_pair(tmp_path) -> Iterator[tuple[str, Mount, Mount]]:
    with two_mounts(tmp_path) as pair:
        yield pair


def new_file(directory: str) -> str:
    path = j(directory, "locked")
    with open(path, "wb") as f:
        f.write(b"x" * 100)
    return os.path.basename(path)


def test_a_record_lock_through_one_daemon_blocks_the_other(host_pair):
    share, a, b = host_pair
    name = new_file(share)
    fd = os.open(j(a.path, name), os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, 10, 20)  # bytes 20..29
        seen = in_other_process(
            lambda other: (
                try_lock(other, fcntl.LOCK_EX, 1, 25),
                try_lock(other, fcntl.LOCK_SH, 10, 20),
                try_lock(other, fcntl.LOCK_EX, 10, 30),
                getlk(other, fcntl.F_WRLCK, 0, 0)[:3],
            ),
            j(b.path, name),
        ).result()
        assert seen == ("EAGAIN", "EAGAIN", "locked", (fcntl.F_WRLCK, 20, 10))

        def wait(other):
            fcntl.lockf(other, fcntl.LOCK_EX, 10, 20)  # F_SETLKW through the other daemon
            return "granted"

        waiter = in_other_process(wait, j(b.path, name))
        assert not waiter.finished(BLOCKED_FOR), "F_SETLKW through b did not wait for a's lock"
        fcntl.lockf(fd, fcntl.LOCK_UN, 10, 20)
        assert waiter.result() == "granted"
    finally:
        os.close(fd)


def test_a_flock_through_one_daemon_blocks_the_other(host_pair):
    share, a, b = host_pair
    name = new_file(share)
    fd = os.open(j(a.path, name), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        seen = in_other_process(
            lambda o: (try_flock(o, fcntl.LOCK_SH), try_flock(o, fcntl.LOCK_EX)), j(b.path, name)
        ).result()
        busy = errno.errorcode[errno.EWOULDBLOCK]
        assert seen == ("locked", busy)

        def wait(other):
            fcntl.flock(other, fcntl.LOCK_EX)
            return "granted"

        waiter = in_other_process(wait, j(b.path, name), fd)
        assert not waiter.finished(BLOCKED_FOR), "flock through b did not wait for a's flock"
    finally:
        os.close(fd)  # the last close of a's open file: RELEASE drops its flock
    assert waiter.result() == "granted"


@pytest.mark.parametrize("kind", ["fcntl", "flock"])
def test_a_host_process_and_the_mount_block_each_other(host_pair, kind):
    share, a, _ = host_pair
    name = new_file(share)
    probe = try_lock if kind == "fcntl" else try_flock
    exclusive = fcntl.LOCK_EX
    host = os.open(j(share, name), os.O_RDWR)
    try:
        # The host process holds: the mount is refused.
        (fcntl.lockf if kind == "fcntl" else fcntl.flock)(host, exclusive)
        blocked = in_other_process(lambda fd: probe(fd, exclusive), j(a.path, name)).result()
        (fcntl.lockf if kind == "fcntl" else fcntl.flock)(host, fcntl.LOCK_UN)
        free = in_other_process(lambda fd: probe(fd, exclusive), j(a.path, name)).result()
    finally:
        os.close(host)
    assert (blocked, free) == (errno.errorcode[errno.EAGAIN], "locked")

    # The mount holds: the host process is refused until the mount's file is closed.
    def probe_host(h: int) -> str:
        return probe(h, exclusive)

    fd = os.open(j(a.path, name), os.O_RDWR)
    try:
        (fcntl.lockf if kind == "fcntl" else fcntl.flock)(fd, exclusive)
        while_held = in_other_process(probe_host, j(share, name)).result()
    finally:
        os.close(fd)
    after_close = eventually_locked(lambda: in_other_process(probe_host, j(share, name)).result())
    assert (while_held, after_close) == (errno.errorcode[errno.EAGAIN], "locked")


def eventually_locked(probe, timeout: float = 10.0) -> str:
    """The probe's answer once it is "locked", or its last one after ``timeout``.

    A flock taken through the mount goes with the RELEASE of its file, and the kernel
    sends RELEASE after close(2) has returned (fs/fuse/file.c, fuse_file_release:
    "Always use the asynchronous file put"); POSIX locks go with FLUSH, inside close.
    CI once probed the host before the daemon had read the RELEASE."""
    deadline = time.monotonic() + timeout
    while (seen := probe()) != "locked" and time.monotonic() < deadline:
        time.sleep(0.01)
    return seen


def test_a_host_process_sees_the_guest_lock_as_an_ofd_lock(host_pair):
    """F_GETLK on the host reports l_pid -1 for an open-file-description lock (fcntl(2))."""
    share, a, _ = host_pair
    name = new_file(share)
    fd = os.open(j(a.path, name), os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH, 5, 7)  # bytes 7..11
        host = os.open(j(share, name), os.O_RDWR)
        try:
            found = getlk(host, fcntl.F_WRLCK, 0, 0)
        finally:
            os.close(host)
    finally:
        os.close(fd)
    assert found == (fcntl.F_RDLCK, 7, 5, -1)


def test_a_read_only_open_cannot_take_a_write_lock(host_pair):
    """fcntl(2): EBADF; the daemon checks the guest's open mode, whatever mode its own
    host description has."""
    share, a, _ = host_pair
    name = new_file(share)
    fd = os.open(j(a.path, name), os.O_RDONLY)
    try:
        with pytest.raises(OSError) as refused:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    assert refused.value.errno == errno.EBADF


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_locks_go_with_the_daemon(tmp_path, how):
    """Closing a description releases its locks: a daemon that exits, even killed,
    leaves none behind on the host file."""
    share = str(tmp_path / "share")
    mountpoint = str(tmp_path / "m")
    os.mkdir(share)
    os.mkdir(mountpoint)
    name = new_file(share)
    with hostfs_mount("devfuse", share, mountpoint, share, "local", ()) as mount:
        ready_read, ready_write = os.pipe()
        done_read, done_write = os.pipe()

        def hold():
            fd = os.open(j(mountpoint, name), os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(ready_write, b"x")
            os.read(done_read, 1)  # held until the daemon is gone
            return "held"

        holder = Child(hold)
        assert os.read(ready_read, 1) == b"x"
        host = os.open(j(share, name), os.O_RDWR)
        try:
            held = (try_lock(host, fcntl.LOCK_EX), try_flock(host, fcntl.LOCK_EX))
            os.kill(mount.process.pid, how)
            mount.process.wait(20)
            after = (try_lock(host, fcntl.LOCK_EX), try_flock(host, fcntl.LOCK_EX))
        finally:
            os.close(host)
            os.write(done_write, b"x")
            with contextlib.suppress(AssertionError, OSError):
                holder.result(timeout=5)
    busy = errno.errorcode[errno.EAGAIN]
    assert held == (busy, busy)
    assert after == ("locked", "locked")


def test_per_daemon_locks_do_not_reach_the_other_daemon(tmp_path):
    """``--locks local``: each daemon's table is its own, so the other daemon and the
    host grant what this one holds.  This is why host locks are the default."""
    with two_mounts(tmp_path, "--locks", "local") as (share, a, b):
        name = new_file(share)
        fd = os.open(j(a.path, name), os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            through_b = in_other_process(
                lambda o: try_lock(o, fcntl.LOCK_EX), j(b.path, name)
            ).result()
            on_host = in_other_process(
                lambda o: try_lock(o, fcntl.LOCK_EX), j(share, name)
            ).result()
        finally:
            os.close(fd)
    assert (through_b, on_host) == ("locked", "locked")


def test_a_pyfuse3_mount_keeps_its_locks_to_itself(tmp_path):
    """Known limitation: pyfuse3 cannot express lock requests, so the host kernel
    keeps a pyfuse3 mount's locks in that mount and a host process never sees them."""
    share = str(tmp_path / "share")
    mountpoint = str(tmp_path / "m")
    os.mkdir(share)
    os.mkdir(mountpoint)
    name = new_file(share)
    with hostfs_mount("pyfuse3", share, mountpoint, share, "local", ()):
        fd = os.open(j(mountpoint, name), os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            through_mount = in_other_process(
                lambda o: try_lock(o, fcntl.LOCK_EX), j(mountpoint, name)
            )
            on_host = in_other_process(lambda o: try_lock(o, fcntl.LOCK_EX), j(share, name))
            seen = (through_mount.result(), on_host.result())
        finally:
            os.close(fd)
    assert seen == ("EAGAIN", "locked")


class Interrupted(Exception):
    """Raised by the child's signal handler, so Python does not retry the syscall."""


def test_a_signal_interrupts_a_wait_for_a_host_lock(host_pair):
    """A signal to a process blocked in F_SETLKW: the kernel sends FUSE_INTERRUPT, the
    daemon stops retrying and answers EINTR, and it holds nothing afterwards."""
    share, a, _ = host_pair
    name = new_file(share)
    host = os.open(j(share, name), os.O_RDWR)
    try:
        fcntl.lockf(host, fcntl.LOCK_EX)

        def wait(fd):
            def interrupt(signum, frame):
                raise Interrupted

            signal.signal(signal.SIGUSR1, interrupt)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
            except Interrupted:
                return "interrupted"
            return "granted"

        waiter = in_other_process(wait, j(a.path, name), host)
        assert not waiter.finished(BLOCKED_FOR), "F_SETLKW did not wait for the host's lock"
        os.kill(waiter.pid, signal.SIGUSR1)
        outcome = waiter.result()
        fcntl.lockf(host, fcntl.LOCK_UN)
        after = in_other_process(lambda fd: try_lock(fd, fcntl.LOCK_EX), j(share, name)).result()
    finally:
        os.close(host)
    assert (outcome, after) == ("interrupted", "locked")
