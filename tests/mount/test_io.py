"""OPEN, CREATE, READ, WRITE, FLUSH, RELEASE, FSYNC, FALLOCATE, LSEEK and
COPY_FILE_RANGE: file data through the mount, compared with a native file."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from tests.mount.compare import (
    fails_in_mount,
    in_both,
    lstat_summary,
    read_file,
    same,
    same_error,
    write_file,
)
from tests.mount.syscalls import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, fallocate

j = os.path.join

MIB = 1 << 20
GIB = 1 << 30


def file_with_content(base: str) -> None:
    write_file(j(base, "f"), b"0123456789")


@contextlib.contextmanager
def opened(path: str, flags: int, mode: int = 0o644) -> Iterator[int]:
    """``os.open`` as a context manager: the handle is RELEASEd on exit."""
    fd = os.open(path, flags, mode)
    try:
        yield fd
    finally:
        os.close(fd)


def test_create_sets_mode_and_exclusive(twin):
    def run(base):
        path = j(base, "new")
        with opened(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640) as fd:
            os.write(fd, b"first")
        return lstat_summary(path), read_file(path)

    summary, data = same(twin, run)
    assert stat.S_IMODE(summary["st_mode"]) == 0o640 and data == b"first"
    same_error(twin, lambda b: os.open(j(b, "new"), os.O_CREAT | os.O_EXCL), errno.EEXIST)


def test_open_trunc(twin):
    in_both(twin, file_with_content)

    def run(base):
        with opened(j(base, "f"), os.O_WRONLY | os.O_TRUNC) as fd:
            size_while_open = os.fstat(fd).st_size
            os.write(fd, b"ab")
        return size_while_open, read_file(j(base, "f"))

    assert same(twin, run) == (0, b"ab")


def test_open_append_from_two_handles(twin):
    in_both(twin, file_with_content)

    def run(base):
        path = j(base, "f")
        with (
            opened(path, os.O_WRONLY | os.O_APPEND) as first,
            opened(path, os.O_WRONLY | os.O_APPEND) as second,
        ):
            os.write(first, b"A")
            os.write(second, b"B")
            os.pwrite(first, b"C", 0)  # O_APPEND wins over the offset on Linux
        return read_file(path)

    assert same(twin, run) == b"0123456789ABC"


def test_open_access_modes_are_enforced(twin):
    in_both(twin, file_with_content)

    def write_read_only(base):
        with opened(j(base, "f"), os.O_RDONLY) as fd:
            return os.write(fd, b"no")

    def read_write_only(base):
        with opened(j(base, "f"), os.O_WRONLY) as fd:
            return os.read(fd, 1)

    same_error(twin, write_read_only, errno.EBADF)
    same_error(twin, read_write_only, errno.EBADF)
    same_error(twin, lambda b: os.open(j(b, "f"), os.O_RDONLY | os.O_DIRECTORY), errno.ENOTDIR)


def test_read_write_at_offsets(twin):
    chunk = bytes(range(256)) * 4096  # 1 MiB: several WRITE requests

    def run(base):
        path = j(base, "f")
        with opened(path, os.O_RDWR | os.O_CREAT) as fd:
            os.write(fd, chunk * 3)
            os.pwrite(fd, b"middle", 3 * MIB // 2)
            return (
                os.pread(fd, 16, MIB - 8),
                os.pread(fd, 6, 3 * MIB // 2),
                os.pread(fd, 10, 3 * MIB - 4),
                os.pread(fd, 10, 5 * MIB),  # past the end: nothing
                os.fstat(fd).st_size,
            )

    assert same(twin, run)[3:] == (b"", 3 * MIB)
    host = read_file(j(twin.host, "f"))
    assert host[3 * MIB // 2 :][:6] == b"middle" and len(host) == 3 * MIB


def test_close_flushes_to_the_host(twin):
    """FLUSH and RELEASE: once close() returns, the host file holds the data."""
    with opened(j(twin.mnt, "f"), os.O_WRONLY | os.O_CREAT) as fd:
        os.write(fd, b"flushed")
        duplicate = os.dup(fd)
        os.close(duplicate)  # a FLUSH without RELEASE: the handle stays usable
        os.write(fd, b"!")
    assert read_file(j(twin.host, "f")) == b"flushed!"


def test_fsync_and_fdatasync(twin):
    in_both(twin, file_with_content)

    def run(base):
        with opened(j(base, "f"), os.O_RDWR) as fd:
            os.write(fd, b"synced")
            os.fsync(fd)
            os.fdatasync(fd)
        with opened(j(base, "f"), os.O_RDONLY) as fd:
            os.fsync(fd)  # allowed on a read-only handle too
        return read_file(j(base, "f"))

    assert same(twin, run) == b"synced6789"
    assert read_file(j(twin.host, "f")) == b"synced6789"


def test_sparse_file_past_4_gib(twin):
    """Offsets and sizes are 64-bit all the way; the hole stays a hole on the host."""
    offset = 5 * GIB

    def run(base):
        path = j(base, "sparse")
        with opened(path, os.O_RDWR | os.O_CREAT) as fd:
            os.pwrite(fd, b"Z", offset)
            ends = os.pread(fd, 4, 0), os.pread(fd, 4, offset - 2)
        return ends, os.stat(path).st_size

    assert same(twin, run) == ((b"\0" * 4, b"\0\0Z"), offset + 1)
    for path in (j(twin.mnt, "sparse"), j(twin.host, "sparse")):
        assert os.stat(path).st_blocks < 1024, "the 5 GiB hole was filled"


def test_posix_fallocate_extends(twin):
    """glibc falls back to writing zeros where fallocate(2) is EOPNOTSUPP, so the
    visible outcome is the same for every engine."""

    def run(base):
        with opened(j(base, "f"), os.O_RDWR | os.O_CREAT) as fd:
            os.posix_fallocate(fd, 0, MIB)
            return os.fstat(fd).st_size, os.pread(fd, 8, MIB - 8)

    assert same(twin, run) == (MIB, b"\0" * 8)


def punch_hole(base: str) -> tuple[int, bytes]:
    path = j(base, "f")
    write_file(path, b"x" * (256 * 1024))
    with opened(path, os.O_RDWR) as fd:
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * 1024, 64 * 1024)
    data = read_file(path)
    return len(data), data[64 * 1024 - 1 : 128 * 1024 + 1]


def test_fallocate_punch_hole(twin):
    if twin.mount.engine == "pyfuse3" or twin.mount.backend == "nfs":
        # pyfuse3 has no fallocate handler: the kernel answers EOPNOTSUPP itself;
        # NFSv3 has no ALLOCATE/DEALLOCATE: the nfs backend answers EOPNOTSUPP.
        fails_in_mount(twin, punch_hole, errno.EOPNOTSUPP)
    else:
        assert same(twin, punch_hole) == (256 * 1024, b"x" + b"\0" * 64 * 1024 + b"x")


def sparse_layout(base: str) -> tuple[int, int, int]:
    """2 MiB file with data only in [1 MiB, 1 MiB + 64 KiB): SEEK_DATA/SEEK_HOLE answers."""
    path = j(base, "sparse")
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        os.ftruncate(fd, 2 * MIB)
        os.pwrite(fd, b"d" * 65536, MIB)
        os.fsync(fd)
        return (
            os.lseek(fd, 0, os.SEEK_DATA),
            os.lseek(fd, MIB, os.SEEK_HOLE),
            os.lseek(fd, 0, os.SEEK_HOLE),
        )


def test_lseek_data_and_hole(twin):
    native = sparse_layout(twin.native)
    assert native == (MIB, MIB + 65536, 0)
    if twin.mount.engine == "pyfuse3" or twin.mount.backend == "nfs":
        # pyfuse3 has no lseek handler, NFSv3 no SEEK operation: the kernel's
        # generic llseek sees one data extent, data starts where asked and the
        # only hole is at EOF.
        assert sparse_layout(twin.mnt) == (0, 2 * MIB, 2 * MIB)
    else:
        assert sparse_layout(twin.mnt) == native

    def seek_past_end(base):
        with opened(j(base, "sparse"), os.O_RDONLY) as fd:
            return os.lseek(fd, 3 * MIB, os.SEEK_DATA)

    same_error(twin, seek_past_end, errno.ENXIO)


def test_copy_file_range(twin):
    """Without COPY_FILE_RANGE (pyfuse3) the kernel copies by splice: same outcome."""

    def run(base):
        write_file(j(base, "src"), bytes(range(256)) * 1024)
        with (
            opened(j(base, "src"), os.O_RDONLY) as src,
            opened(j(base, "dst"), os.O_RDWR | os.O_CREAT) as dst,
        ):
            os.write(dst, b"head")
            copied = os.copy_file_range(src, dst, 100_000, 1000, 4)
        return copied, read_file(j(base, "dst"))

    copied, data = same(twin, run)
    assert copied == 100_000 and data == b"head" + (bytes(range(256)) * 1024)[1000:101_000]
