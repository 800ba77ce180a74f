"""OPENDIR, READDIR/READDIRPLUS, RELEASEDIR and FSYNCDIR: listings equal the native
ones, survive many READDIR rounds, and stay consistent while the directory changes."""

from __future__ import annotations

import errno
import os
import time

import pytest

from tests.mount.compare import fails_in_mount, in_both, same, write_file

j = os.path.join

LARGE = 3000
"""Names long enough that one listing takes dozens of READDIR requests (4 KiB each)."""


def mixed_tree(base: str) -> None:
    write_file(j(base, "file"), b"data")
    os.mkdir(j(base, "dir"))
    os.symlink("file", j(base, "link"))
    os.mkfifo(j(base, "fifo"))


def entries(base: str) -> list[tuple[str, bool, bool, bool]]:
    """(name, is_dir, is_file, is_symlink) from readdir's d_type, without following links."""
    with os.scandir(base) as scan:
        return sorted(
            (e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False),
             e.is_symlink())
            for e in scan
        )  # fmt: skip


def test_listing_equals_native(twin):
    in_both(twin, mixed_tree)
    assert [name for name, *_ in same(twin, entries)] == ["dir", "fifo", "file", "link"]
    assert same(twin, lambda b: os.listdir(j(b, "dir"))) == []


def test_readdir_inode_numbers_match_stat(twin):
    """d_ino and st_ino agree in the mount (whatever numbering the engine uses)."""
    in_both(twin, mixed_tree)
    with os.scandir(twin.mnt) as scan:
        for entry in scan:
            assert entry.inode() == os.lstat(entry.path).st_ino, entry.name


def name_for(index: int) -> str:
    return f"entry-with-a-longish-name-{index:05d}"


def test_large_directory_lists_every_name_once(twin):
    names = {name_for(i) for i in range(LARGE)}
    for base in (twin.host, twin.native):  # the host side is faster to fill
        for name in names:
            os.close(os.open(j(base, name), os.O_CREAT | os.O_WRONLY, 0o644))
    listed = os.listdir(twin.mnt)
    assert len(listed) == len(set(listed)) == LARGE
    assert set(listed) == names == set(os.listdir(twin.native))


def list_while_changing(base: str) -> list[str]:
    """Read a listing in small steps while names come and go between the steps."""
    for i in range(400):
        write_file(j(base, name_for(i)))
    listed = []
    with os.scandir(base) as scan:
        for step, entry in enumerate(scan):
            listed.append(entry.name)
            if step < 200:
                write_file(j(base, f"new-{step}"))
                os.unlink(j(base, name_for(399 - step)))  # only names 200..399 go
    return listed


def test_names_present_throughout_a_changing_listing_appear_once(twin):
    stable = {name_for(i) for i in range(200)}
    for base in (twin.mnt, twin.native):
        listed = list_while_changing(base)
        seen = [name for name in listed if name in stable]
        assert sorted(seen) == sorted(stable), f"{base}: a stable name was skipped or repeated"
        assert len(listed) == len(set(listed)), f"{base}: a name was listed twice"


def test_rewind_lists_again(twin):
    in_both(twin, mixed_tree)

    def run(base):
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        try:
            first = sorted(os.listdir(fd))
            write_file(j(base, "later"))
            os.lseek(fd, 0, os.SEEK_SET)  # rewinddir: a fresh listing, "later" included
            return first, sorted(os.listdir(fd))
        finally:
            os.close(fd)

    first, second = same(twin, run)
    assert set(second) - set(first) == {"later"}


def test_fsyncdir_and_many_opendirs(twin):
    in_both(twin, mixed_tree)

    def run(base):
        for _ in range(200):  # every OPENDIR gets its RELEASEDIR
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
            os.close(fd)
        fd = os.open(j(base, "dir"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return sorted(os.listdir(base))

    same(twin, run)


def test_removed_directory_lists_empty_through_its_open_handle(twin):
    def run(base):
        os.mkdir(j(base, "doomed"))
        fd = os.open(j(base, "doomed"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.rmdir(j(base, "doomed"))
            return os.listdir(fd)
        finally:
            os.close(fd)

    if twin.mount.backend == "nfs":
        # The NFS server drops a removed directory's file handle at once:
        # READDIR through the still-open handle is ESTALE.
        fails_in_mount(twin, run, errno.ESTALE)
    else:
        assert same(twin, run) == []


def daemon_rss(mount) -> int:
    with open(f"/proc/{mount.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_many_open_listings_of_a_large_directory_cost_the_daemon_no_memory(twin):
    """Each handle is a host directory stream, not a copy of the listing: 100 handles
    part-way through 2000 names held ~35 MiB of listings before."""
    for i in range(2000):
        os.close(os.open(j(twin.host, name_for(i)), os.O_CREAT | os.O_WRONLY, 0o644))
    before = daemon_rss(twin.mount)
    scans = []
    try:
        for _ in range(100):
            scan = os.scandir(twin.mnt)
            scans.append(scan)
            next(scan)  # the first READDIR of this handle
        grown = daemon_rss(twin.mount) - before
    finally:
        for scan in scans:
            scan.close()
    assert grown < 8 << 20, f"the daemon grew by {grown >> 20} MiB"


CHANGE_SHOWS_WITHIN = 10.0
"""A bound on the wait, not a measurement: under --cache auto a cached listing is
rechecked against the directory's mtime once the 1 s attribute timeout has passed."""


def wait_for_listing(directory: str, names: list[str]) -> None:
    """Until ``directory`` lists exactly ``names``, within :data:`CHANGE_SHOWS_WITHIN`."""
    deadline = time.monotonic() + CHANGE_SHOWS_WITHIN
    while (listed := sorted(os.listdir(directory))) != names:
        assert time.monotonic() < deadline, f"still {listed} after {CHANGE_SHOWS_WITHIN} s"
        time.sleep(0.1)


def test_listing_shows_changes_made_through_and_behind_the_mount(twin):
    """Directory listings are cached (FOPEN_CACHE_DIR with FUSE_AUTO_INVAL_DATA):
    a name added through the mount shows in the very next listing, one added
    on the host behind the mount once the directory's attributes are rechecked."""
    os.mkdir(os.path.join(twin.mnt, "d"))
    write_file(os.path.join(twin.mnt, "d", "a"))
    assert sorted(os.listdir(os.path.join(twin.mnt, "d"))) == ["a"]
    assert sorted(os.listdir(os.path.join(twin.mnt, "d"))) == ["a"], "listed again (cached)"
    write_file(os.path.join(twin.mnt, "d", "b"))
    assert sorted(os.listdir(os.path.join(twin.mnt, "d"))) == ["a", "b"]
    if twin.mount.backend != "local":
        # A file created in the NFS export's directory behind the server's back does
        # not show within the bound on any engine, pyfuse3's uncached listings too
        # (ganesha's own caches): the NFS backend's limit, not this cache's.
        return
    write_file(os.path.join(twin.host, "d", "c"))
    wait_for_listing(os.path.join(twin.mnt, "d"), ["a", "b", "c"])
    os.unlink(os.path.join(twin.host, "d", "a"))
    wait_for_listing(os.path.join(twin.mnt, "d"), ["b", "c"])
