"""GETATTR and SETATTR: mode, owner, size and times, by path and through an open handle."""

from __future__ import annotations

import errno
import os
import stat
import time

import pytest

from tests.mount.compare import in_both, lstat_summary, read_file, same, same_error, write_file
from tests.mount.processes import as_user
from tests.mount.syscalls import UTIME_NOW, UTIME_OMIT, utimensat

j = os.path.join

ATIME_NS = 1_500_000_000_123_456_789
MTIME_NS = 1_600_000_000_987_654_321


def file_with_content(base: str) -> None:
    write_file(j(base, "f"), b"0123456789")


def with_handle(path: str, change) -> None:
    """Apply ``change(fd)`` through an open read-write handle (fchmod, ftruncate...)."""
    fd = os.open(path, os.O_RDWR)
    try:
        change(fd)
    finally:
        os.close(fd)


def times_ns(path: str) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_atime_ns, st.st_mtime_ns


def as_stored(twin, *times: int) -> tuple[int, ...]:
    """Times as the backend can store them.

    libnfs 4.0's path API sets times through ``struct timeval``: an nfs
    backend keeps microseconds, the nanoseconds below them are lost.
    """
    if twin.mount.backend == "nfs":
        return tuple(t - t % 1000 for t in times)
    return times


def test_getattr_follows_writes(twin):
    def run(base):
        path = j(base, "f")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"x" * 10000)
            during = os.fstat(fd).st_size, os.stat(path).st_size
        finally:
            os.close(fd)
        os.mkdir(j(base, "d"))
        os.mkdir(j(base, "d", "sub"))
        return during, lstat_summary(path), lstat_summary(j(base, "d"))

    assert same(twin, run)[0] == (10000, 10000)
    assert os.stat(j(twin.mnt, "f")).st_blocks > 0


@pytest.mark.parametrize("through", ["path", "handle"])
def test_chmod(twin, through):
    in_both(twin, file_with_content)

    def run(base):
        path = j(base, "f")
        for mode in (0o600, 0o4755, 0o2711, 0o1777, 0o000):
            if through == "path":
                os.chmod(path, mode)
            else:
                with_handle(path, lambda fd, mode=mode: os.fchmod(fd, mode))
            seen_mode = os.stat(path).st_mode
            assert stat.S_IMODE(seen_mode) == mode, oct(seen_mode)
        return lstat_summary(path)

    same(twin, run)
    assert stat.S_IMODE(os.stat(j(twin.host, "f")).st_mode) == 0


@pytest.mark.parametrize("through", ["path", "handle"])
def test_chown(twin, through):
    in_both(twin, file_with_content)

    def run(base):
        path = j(base, "f")
        seen = []
        for uid, gid in ((1000, -1), (-1, 1234), (65534, 65534), (0, 0)):
            if through == "path":
                os.chown(path, uid, gid)
            else:
                with_handle(path, lambda fd, u=uid, g=gid: os.fchown(fd, u, g))
            st = os.stat(path)
            seen.append((st.st_uid, st.st_gid))
        return seen

    assert same(twin, run)[2] == (65534, 65534)
    os.chown(j(twin.mnt, "f"), 4321, 8765)
    host = os.stat(j(twin.host, "f"))
    assert (host.st_uid, host.st_gid) == (4321, 8765)


def test_chown_symlink_itself(twin):
    def run(base):
        os.symlink("f", j(base, "link"))
        os.lchown(j(base, "link"), 1000, 1000)
        return lstat_summary(j(base, "link"))

    assert same(twin, run)["st_uid"] == 1000


@pytest.mark.parametrize("through", ["path", "handle"])
def test_truncate(twin, through):
    in_both(twin, file_with_content)

    def run(base):
        path = j(base, "f")
        seen = []
        for size in (4, 100_000, 0, 7):
            if through == "path":
                os.truncate(path, size)
            else:
                with_handle(path, lambda fd, size=size: os.ftruncate(fd, size))
            seen.append((os.stat(path).st_size, read_file(path)[:8]))
        return seen

    assert same(twin, run)[:2] == [(4, b"0123"), (100_000, b"0123\0\0\0\0")]
    assert os.stat(j(twin.host, "f")).st_size == 7


@pytest.mark.parametrize("through", ["path", "handle"])
def test_utime_explicit(twin, through):
    in_both(twin, file_with_content)

    def run(base):
        path = j(base, "f")
        if through == "path":
            os.utime(path, ns=(ATIME_NS, MTIME_NS))
        else:
            with_handle(path, lambda fd: os.utime(fd, ns=(ATIME_NS, MTIME_NS)))
        return times_ns(path)

    assert run(twin.native) == (ATIME_NS, MTIME_NS)
    assert run(twin.mnt) == as_stored(twin, ATIME_NS, MTIME_NS)
    assert times_ns(j(twin.host, "f")) == as_stored(twin, ATIME_NS, MTIME_NS)


@pytest.mark.parametrize("through", ["path", "handle"])
def test_utime_now(twin, through):
    in_both(twin, file_with_content)
    path = j(twin.mnt, "f")
    os.utime(path, ns=(ATIME_NS, MTIME_NS))
    before = time.time_ns()
    if through == "path":
        os.utime(path)
    else:
        with_handle(path, os.utime)
    after = time.time_ns()
    slack = 10_000_000  # the host clock ticks coarsely
    for value in times_ns(path) + times_ns(j(twin.host, "f")):
        assert before - slack <= value <= after + slack


def test_utime_omit_keeps_one_side(twin):
    in_both(twin, file_with_content)

    def run(base):
        path = j(base, "f")
        os.utime(path, ns=(ATIME_NS, MTIME_NS))
        utimensat(path, (0, UTIME_OMIT), (1_700_000_000, 5))
        only_mtime = times_ns(path)
        utimensat(path, (1_650_000_000, 7), (0, UTIME_OMIT))
        only_atime = times_ns(path)
        return only_mtime, only_atime

    only_mtime = (ATIME_NS, 1_700_000_000_000_000_005)
    only_atime = (1_650_000_000_000_000_007, 1_700_000_000_000_000_005)
    assert run(twin.native) == (only_mtime, only_atime)
    assert run(twin.mnt) == (as_stored(twin, *only_mtime), as_stored(twin, *only_atime))

    now = time.time_ns()
    utimensat(j(twin.mnt, "f"), (0, UTIME_OMIT), (0, UTIME_NOW))
    atime, mtime = times_ns(j(twin.host, "f"))
    assert atime == as_stored(twin, only_atime[0])[0] and mtime >= now - 10_000_000


def test_setattr_refused_to_non_owner(twin):
    """Ownership rules are the kernel's (default_permissions): EPERM as natively."""
    in_both(twin, file_with_content)

    def chmod_as_nobody(base):
        return as_user(65534, 65534, lambda here: os.chmod(j(here, "f"), 0o777), base)

    def chown_as_nobody(base):
        return as_user(65534, 65534, lambda here: os.chown(j(here, "f"), 65534, -1), base)

    def utime_as_nobody(base):
        return as_user(65534, 65534, lambda here: os.utime(j(here, "f"), (1, 1)), base)

    same_error(twin, chmod_as_nobody, errno.EPERM)
    same_error(twin, chown_as_nobody, errno.EPERM)
    same_error(twin, utime_as_nobody, errno.EPERM)


def test_write_by_owner_drops_setuid(twin):
    """A write by an unprivileged caller clears S_ISUID, as on a local file system."""

    def run(base):
        path = j(base, "f")
        write_file(path, b"program")
        os.chown(path, 1000, 1000)
        os.chmod(path, 0o4755)

        def append(here):
            with open(j(here, "f"), "ab") as f:
                f.write(b"!")

        as_user(1000, 1000, append, base)
        return lstat_summary(path)

    assert stat.S_IMODE(same(twin, run)["st_mode"]) == 0o755


def test_write_through_a_handle_opened_before_setuid_drops_it(twin):
    """The bit set while the file is open is still dropped by the owner's next write
    (with FUSE passthrough the kernel writes the host file itself, for this caller)."""

    def run(base):
        path = j(base, "f")
        write_file(path, b"program")
        os.chown(path, 1000, 1000)

        def set_then_write(here):
            fd = os.open(j(here, "f"), os.O_WRONLY | os.O_APPEND)
            try:
                os.fchmod(fd, 0o4755)
                os.write(fd, b"!")
            finally:
                os.close(fd)

        as_user(1000, 1000, set_then_write, base)
        return lstat_summary(path)

    assert stat.S_IMODE(same(twin, run)["st_mode"]) == 0o755


def test_chown_and_truncate_drop_setuid_and_setgid(twin):
    """The kernel's privilege-dropping rules hold through the mount, including an
    unprivileged open(O_TRUNC), which ATOMIC_O_TRUNC leaves to the daemon."""

    def run(base):
        path = j(base, "f")
        write_file(path, b"program")
        seen = []
        os.chmod(path, 0o6755)
        os.chown(path, 1000, 1000)  # chown clears both (group-executable) bits
        seen.append(lstat_summary(path)["st_mode"])
        os.chmod(path, 0o6775)

        def truncate_as_group_member(here):
            fd = os.open(j(here, "f"), os.O_WRONLY | os.O_TRUNC)
            os.close(fd)

        as_user(2000, 1000, truncate_as_group_member, base)
        seen.append(lstat_summary(path)["st_mode"])
        os.chmod(path, 0o2765)  # setgid without group-execute marks locking: it stays
        as_user(2000, 1000, truncate_as_group_member, base)
        seen.append(lstat_summary(path)["st_mode"])
        return seen

    assert [stat.S_IMODE(mode) for mode in same(twin, run)] == [0o755, 0o775, 0o2765]
