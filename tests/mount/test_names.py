"""LOOKUP, MKDIR, RMDIR, UNLINK, RENAME/RENAME2, LINK, SYMLINK/READLINK, MKNOD: names
and what they point to, each compared with the same calls on a native directory."""

from __future__ import annotations

import errno
import os
import socket
import stat

import pytest

from tests.mount.compare import (
    fails_in_mount,
    in_both,
    lstat_summary,
    read_file,
    same,
    same_error,
    write_file,
)
from tests.mount.syscalls import RENAME_EXCHANGE, RENAME_NOREPLACE, renameat2
from tests.support.mounts import mount_words

j = os.path.join


def tree(base: str) -> None:
    """file "f" (5 bytes), file "g", empty dir "empty", dir "full" holding "x"."""
    write_file(j(base, "f"), b"hello")
    write_file(j(base, "g"), b"other")
    os.mkdir(j(base, "empty"))
    os.mkdir(j(base, "full"))
    write_file(j(base, "full", "x"), b"x")


def listing(base: str) -> dict[str, dict[str, int]]:
    """Every name under ``base`` (recursively) with its stat summary."""
    found = {}
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            path = j(directory, name)
            found[os.path.relpath(path, base)] = lstat_summary(path)
    return found


def test_create_write_read(twin):
    def run(base):
        path = j(base, "file")
        write_file(path, b"hello" * 1000)
        return read_file(path), lstat_summary(path)

    assert same(twin, run)[0] == b"hello" * 1000
    assert read_file(j(twin.host, "file")) == b"hello" * 1000


def test_lookup_sees_names_made_on_the_host(twin):
    """The backend is the truth: a name created behind the mount's back is found."""
    write_file(j(twin.host, "behind"), b"12345")
    os.mkdir(j(twin.host, "dir"))
    assert os.stat(j(twin.mnt, "behind")).st_size == 5
    assert stat.S_ISDIR(os.stat(j(twin.mnt, "dir")).st_mode)
    assert read_file(j(twin.mnt, "behind")) == b"12345"


def test_mkdir_nested_with_modes(twin):
    def run(base):
        os.mkdir(j(base, "a"), 0o750)
        os.mkdir(j(base, "a", "b"), 0o700)
        os.mkdir(j(base, "a", "c"))
        return listing(base), lstat_summary(j(base, "a"))["st_nlink"]

    assert same(twin, run)[1] == 4  # ".", the entry in base, and two subdirectories


def test_unlink_and_rmdir(twin):
    in_both(twin, tree)

    def run(base):
        os.unlink(j(base, "f"))
        os.rmdir(j(base, "empty"))
        os.unlink(j(base, "full", "x"))
        os.rmdir(j(base, "full"))
        return sorted(os.listdir(base))

    assert same(twin, run) == ["g"]
    assert os.listdir(twin.host) == ["g"]


def test_unlinked_file_stays_readable_through_an_open_handle(twin):
    in_both(twin, tree)

    def run(base):
        with open(j(base, "f"), "rb") as f:
            os.unlink(j(base, "f"))
            return f.read(), os.path.exists(j(base, "f"))

    # An NFSv3 server forgets an unlinked file at once: the nfs backend renames an
    # open one to a hidden .nfs* name until its last close, as the kernel's NFS
    # client does (hostfs/backends/nfs/silly.py).
    assert same(twin, run) == (b"hello", False)


def test_rename_file_and_directory(twin):
    in_both(twin, tree)

    def run(base):
        os.rename(j(base, "f"), j(base, "full", "moved"))
        os.rename(j(base, "g"), j(base, "full", "x"))  # replaces x
        os.rename(j(base, "full"), j(base, "empty"))  # replaces the empty dir
        return listing(base), read_file(j(base, "empty", "x"))

    assert same(twin, run)[1] == b"other"


def test_rename_keeps_the_inode(twin):
    in_both(twin, tree)
    before = os.stat(j(twin.mnt, "f")).st_ino
    os.rename(j(twin.mnt, "f"), j(twin.mnt, "full", "f2"))
    assert os.stat(j(twin.mnt, "full", "f2")).st_ino == before


def test_rename_noreplace(twin):
    in_both(twin, tree)

    def run(base):
        renameat2(j(base, "f"), j(base, "new"), RENAME_NOREPLACE)
        return sorted(os.listdir(base))

    if twin.mount.backend == "nfs":
        # NFSv3 RENAME has no flags: the backend refuses them as EINVAL, like
        # a local file system without renameat2 support.
        fails_in_mount(twin, run, errno.EINVAL)
        return
    same_error(twin, lambda b: renameat2(j(b, "f"), j(b, "g"), RENAME_NOREPLACE), errno.EEXIST)
    assert "new" in same(twin, run)


def test_rename_exchange(twin):
    in_both(twin, tree)

    def run(base):
        renameat2(j(base, "f"), j(base, "full"), RENAME_EXCHANGE)
        return listing(base)

    if twin.mount.backend == "nfs":
        fails_in_mount(twin, run, errno.EINVAL)  # NFSv3 RENAME has no flags
        return
    result = same(twin, run)
    assert stat.S_ISDIR(result["f"]["st_mode"]) and stat.S_ISREG(result["full"]["st_mode"])
    assert read_file(j(twin.host, "f", "x")) == b"x"
    same_error(twin, lambda b: renameat2(j(b, "g"), j(b, "missing"), RENAME_EXCHANGE), errno.ENOENT)


def test_hard_links_share_inode_and_count(twin):
    in_both(twin, tree)

    def run(base):
        os.link(j(base, "f"), j(base, "full", "f2"))
        linked = lstat_summary(j(base, "f")), lstat_summary(j(base, "full", "f2"))
        write_file(j(base, "full", "f2"), b"changed")
        changed = read_file(j(base, "f"))
        os.unlink(j(base, "f"))
        return linked, changed, lstat_summary(j(base, "full", "f2"))["st_nlink"]

    (first, second), changed, remaining = same(twin, run)
    assert first["st_nlink"] == second["st_nlink"] == 2
    assert (changed, remaining) == (b"changed", 1)
    os.link(j(twin.mnt, "g"), j(twin.mnt, "g2"))
    assert os.stat(j(twin.mnt, "g")).st_ino == os.stat(j(twin.mnt, "g2")).st_ino
    host = os.stat(j(twin.host, "g"))
    assert (host.st_ino, host.st_nlink) == (os.stat(j(twin.host, "g2")).st_ino, 2)


def test_symlink_and_readlink(twin):
    def run(base):
        os.symlink("target/../f", j(base, "link"))
        os.symlink("nowhere", j(base, "dangling"))
        write_file(j(base, "f"), b"through")
        return (
            os.readlink(j(base, "link")),
            stat.S_ISLNK(os.lstat(j(base, "link")).st_mode),
            os.lstat(j(base, "dangling")).st_size,
            os.path.exists(j(base, "dangling")),
        )

    assert same(twin, run) == ("target/../f", True, 7, False)
    assert os.readlink(j(twin.host, "dangling")) == "nowhere"

    def follow(base):
        os.symlink("f", j(base, "direct"))
        return read_file(j(base, "direct"))

    assert same(twin, follow) == b"through"
    same_error(twin, lambda b: os.readlink(j(b, "f")), errno.EINVAL)
    same_error(twin, lambda b: os.symlink("x", j(b, "f")), errno.EEXIST)
    same_error(twin, lambda b: os.open(j(b, "direct"), os.O_RDONLY | os.O_NOFOLLOW), errno.ELOOP)


def test_mknod_regular_and_fifo(twin):
    def run(base):
        os.mknod(j(base, "regular"), stat.S_IFREG | 0o640)
        os.mkfifo(j(base, "fifo"), 0o600)
        # A FIFO's data never reaches the file system: the kernel keeps the pipe.
        fd = os.open(j(base, "fifo"), os.O_RDWR | os.O_NONBLOCK)
        try:
            os.write(fd, b"piped")
            piped = os.read(fd, 10)
        finally:
            os.close(fd)
        return listing(base), piped

    assert same(twin, run)[1] == b"piped"
    assert stat.S_ISFIFO(os.lstat(j(twin.host, "fifo")).st_mode)


def test_mknod_socket_by_bind(twin):
    def run(base):
        path = j(base, "sock")
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path)
            server.listen()
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(path)
                client.sendall(b"ping")
                connection, _ = server.accept()
                with connection:
                    received = connection.recv(4)
        return lstat_summary(path)["st_mode"], received

    mode, received = same(twin, run)
    assert stat.S_ISSOCK(mode) and received == b"ping"


def test_mknod_devices_as_root(twin):
    def run(base):
        os.mknod(j(base, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(j(base, "loop"), stat.S_IFBLK | 0o600, os.makedev(7, 200))
        return listing(base)

    nodes = same(twin, run)
    assert nodes["null"]["st_rdev"] == os.makedev(1, 3)
    assert os.lstat(j(twin.host, "loop")).st_rdev == os.makedev(7, 200)

    def write_to_null(base):
        fd = os.open(j(base, "null"), os.O_WRONLY)
        try:
            return os.write(fd, b"gone")
        finally:
            os.close(fd)

    if "nodev" in mount_words(twin.mount.path):
        # libfuse mounts nodev by default (a host mount with allow_other must not
        # open devices that a guest created): the node exists but cannot be opened.
        assert write_to_null(twin.native) == 4
        with pytest.raises(PermissionError):
            write_to_null(twin.mnt)
    else:
        assert same(twin, write_to_null) == 4


def test_names_the_backend_refuses(twin):
    """What the kernel lets through is answered by the backend like a local fs would."""
    in_both(twin, tree)
    long_name = "n" * 256
    same_error(twin, lambda b: write_file(j(b, long_name)), errno.ENAMETOOLONG)
    same_error(twin, lambda b: os.mkdir(j(b, long_name)), errno.ENAMETOOLONG)
    same_error(twin, lambda b: os.stat(j(b, long_name)), errno.ENAMETOOLONG)
    assert same(twin, lambda b: write_file(j(b, "n" * 255)) or sorted(os.listdir(b))).count(
        "n" * 255
    )


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        pytest.param(lambda b: os.stat(j(b, "missing")), errno.ENOENT, id="stat-missing"),
        pytest.param(lambda b: os.unlink(j(b, "missing")), errno.ENOENT, id="unlink-missing"),
        pytest.param(lambda b: os.rmdir(j(b, "missing")), errno.ENOENT, id="rmdir-missing"),
        pytest.param(lambda b: os.open(j(b, "missing"), os.O_RDONLY), errno.ENOENT, id="open"),
        pytest.param(lambda b: os.rename(j(b, "missing"), j(b, "z")), errno.ENOENT, id="rename"),
        pytest.param(lambda b: os.link(j(b, "missing"), j(b, "z")), errno.ENOENT, id="link"),
        pytest.param(lambda b: os.mkdir(j(b, "full")), errno.EEXIST, id="mkdir-exists"),
        pytest.param(lambda b: os.mkfifo(j(b, "f")), errno.EEXIST, id="mknod-exists"),
        pytest.param(lambda b: os.link(j(b, "f"), j(b, "g")), errno.EEXIST, id="link-exists"),
        pytest.param(lambda b: os.link(j(b, "full"), j(b, "z")), errno.EPERM, id="link-dir"),
        pytest.param(lambda b: os.rmdir(j(b, "full")), errno.ENOTEMPTY, id="rmdir-nonempty"),
        pytest.param(
            lambda b: os.rename(j(b, "empty"), j(b, "full")), errno.ENOTEMPTY, id="rename-nonempty"
        ),
        pytest.param(lambda b: os.unlink(j(b, "full")), errno.EISDIR, id="unlink-dir"),
        pytest.param(lambda b: os.rename(j(b, "f"), j(b, "full")), errno.EISDIR, id="rename-f2d"),
        pytest.param(lambda b: os.open(j(b, "full"), os.O_WRONLY), errno.EISDIR, id="open-dir-w"),
        pytest.param(lambda b: os.rmdir(j(b, "f")), errno.ENOTDIR, id="rmdir-file"),
        pytest.param(lambda b: os.rename(j(b, "full"), j(b, "f")), errno.ENOTDIR, id="rename-d2f"),
        pytest.param(lambda b: os.stat(j(b, "f", "x")), errno.ENOTDIR, id="file-as-dir"),
        pytest.param(lambda b: os.mkdir(j(b, "f", "x")), errno.ENOTDIR, id="mkdir-under-file"),
        pytest.param(
            lambda b: os.rename(j(b, "full"), j(b, "full", "in")), errno.EINVAL, id="into-self"
        ),
    ],
)
def test_errors_match_native(twin, operation, code):
    in_both(twin, tree)
    same_error(twin, operation, code)
    assert listing(twin.mnt) == listing(twin.native)  # a failed call changed nothing


def test_directory_link_counts_follow_moves(twin):
    """A subdirectory's ".." counts in its parent: nlink moves with it."""

    def run(base):
        for name in ("a", "b", "a/x", "a/y"):
            os.mkdir(j(base, name))
        counts = [
            (lstat_summary(j(base, "a"))["st_nlink"], lstat_summary(j(base, "b"))["st_nlink"])
        ]
        os.rename(j(base, "a", "x"), j(base, "b", "x"))
        counts.append(
            (lstat_summary(j(base, "a"))["st_nlink"], lstat_summary(j(base, "b"))["st_nlink"])
        )
        os.rmdir(j(base, "a", "y"))
        counts.append(
            (lstat_summary(j(base, "a"))["st_nlink"], lstat_summary(j(base, "b"))["st_nlink"])
        )
        return counts

    assert same(twin, run) == [(4, 2), (3, 3), (2, 3)]


def test_unlink_right_after_close_on_another_cpu(twin):
    """close() then unlink() of one link from a process that moves between CPUs.

    The kernel sends RELEASE in the background after close() returns, and over
    io_uring a request goes to the ring queue of the CPU it is sent from: so the
    UNLINK, sent from the other CPU, may reach hostfs first.  The file must still
    look unlinked (its other link's st_nlink back to 1), whatever the order; on
    NFS the name may live on hidden until the RELEASE (silly.py), never visibly."""
    cpus = sorted(os.sched_getaffinity(0))
    first, last = cpus[0], cpus[-1]
    in_both(twin, lambda base: write_file(j(base, "keep"), b"x"))

    def run(base):
        counts = []
        try:
            for round_number in range(20):
                name = j(base, f"f{round_number}")
                os.link(j(base, "keep"), name)
                os.sched_setaffinity(0, {first})
                write_file(name, b"y")
                os.sched_setaffinity(0, {last})
                os.unlink(name)
                counts.append(os.lstat(j(base, "keep")).st_nlink)
        finally:
            os.sched_setaffinity(0, cpus)
        return counts, sorted(os.listdir(base))

    counts, names = same(twin, run)
    assert counts == [1] * 20
    assert names == ["keep"]
