"""``--inode-file-handles prefer`` (the default) through a real mount: a stat walk of
more files than ``--rlimit-nofile`` allows succeeds, and the daemon's fd count stays
flat while the kernel holds every node (with ``never`` the walk gets ENFILE:
tests/mount/test_fd_budget.py).  The first walk may leave up to the hot-fd bound
open (inodes.HOT_FDS, a quarter of the budget at most); after it nothing grows."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostfs.backends.local.inodes import HOT_FDS
from tests.mount.test_forget import SLACK
from tests.mount.walks import share_of_files, stat_walk
from tests.support.mounts import hostfs_mount

LIMIT = 400
FILES = 1000


MODES = [(), ("--inode-file-handles", "prefer")]


@pytest.mark.parametrize("args", MODES, ids=["default", "prefer"])
@pytest.mark.parametrize("engine", ["devfuse", "pyfuse3", "uring"])
def test_a_walk_wider_than_the_fd_limit_succeeds_by_file_handles(engine, args, tmp_path):
    share, mnt, names = share_of_files(tmp_path, FILES)
    args = ("--rlimit-nofile", str(LIMIT), *args)
    with hostfs_mount(engine, str(share), str(mnt), str(share), extra_args=args) as mount:
        start = mount.daemon_fds()
        assert stat_walk(str(mnt), names) == {0: FILES}
        before = mount.daemon_fds()
        assert before <= start + LIMIT // 4 + SLACK  # at most the hot fds
        for _ in range(2):
            assert stat_walk(str(mnt), names) == {0: FILES}
            assert mount.daemon_fds() <= before + SLACK


WIDE_FILES = 100_000
PER_DIRECTORY = 1000
WARM_UP_DIRECTORIES = -(-2 * HOT_FDS // PER_DIRECTORY)
WARM_UP = WARM_UP_DIRECTORIES * PER_DIRECTORY
"""Files the warm-up walk stats first: enough to fill the hot fds (inodes.HOT_FDS)."""


@contextlib.contextmanager
def host_file_system(kind: str, path: Path) -> Iterator[Path]:
    """A fresh ext4 (a loop-mounted image made here, mkfs.ext4 from e2fsprogs) or tmpfs."""
    path.mkdir()
    if kind == "ext4":
        image = path.with_suffix(".img")
        with image.open("wb") as file:
            file.truncate(512 << 20)
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-N", str(WIDE_FILES + 10_000), str(image)], check=True
        )
        subprocess.run(["mount", "-o", "loop", str(image), str(path)], check=True)
    else:
        options = f"size=256m,nr_inodes={WIDE_FILES + 10_000}"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill_tree(root: Path) -> None:
    """WIDE_FILES empty files, PER_DIRECTORY to a directory, made on the host side."""
    for d in range(WIDE_FILES // PER_DIRECTORY):
        directory = root / f"d{d:03}"
        directory.mkdir()
        for i in range(PER_DIRECTORY):
            os.close(os.open(directory / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644))


def stat_every_file(root: str, directories: list[str]) -> int:
    """List each directory and lstat every entry, as ``find -exec stat`` does."""
    seen = 0
    for directory in directories:
        with os.scandir(os.path.join(root, directory)) as scan:
            for entry in scan:
                os.lstat(entry.path)
                seen += 1
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ext4", "tmpfs"])
def test_a_walk_of_100000_files_keeps_the_daemon_fd_count_flat(kind, tmp_path, capfd):
    """The issue's test: with the default (prefer), the daemon's fds after a walk of
    100,000 files that the kernel keeps holding are those it had before (the hot fds
    filled by a first, smaller walk), far below one per file; ``never`` would need
    100,000 fds."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with host_file_system(kind, tmp_path / kind) as share:
        started = time.monotonic()
        fill_tree(share)
        created = time.monotonic()
        directories = sorted(os.listdir(share))
        with hostfs_mount("devfuse", str(share), str(mnt), str(share), extra_args=()) as mount:
            start = mount.daemon_fds()
            assert stat_every_file(str(mnt), directories[:WARM_UP_DIRECTORIES]) == WARM_UP
            before = mount.daemon_fds()
            assert before <= start + HOT_FDS + SLACK
            walked = time.monotonic()
            assert stat_every_file(str(mnt), directories) == WIDE_FILES
            done = time.monotonic()
            after = mount.daemon_fds()
            assert after <= before + SLACK, (start, before, after)
    log = capfd.readouterr().err
    assert "no file handles" not in log
    print(
        f"\n{kind}: created {WIDE_FILES} files in {created - started:.1f} s, walked them "
        f"through the mount in {done - walked:.1f} s; daemon fds {start} at start, "
        f"{before} after {WARM_UP} files, {after} after {WIDE_FILES}"
    )
