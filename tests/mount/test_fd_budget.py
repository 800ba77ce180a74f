"""The local backend's fd budget through a real mount (``--rlimit-nofile``): a stat
walk wider than the budget gets ENFILE for what does not fit, the daemon never
holds more than its budget, and every node is released once the kernel forgets."""

from __future__ import annotations

import errno
import os

import pytest

from hostfs.backends.local.fd_budget import CONTROL_PLANE_RESERVE
from tests.mount.test_forget import SLACK, forget_everything_unused, settled_fd_count
from tests.support.mounts import hostfs_mount

LIMIT = 400
FILES = 1000


def listing_walk(directory: str) -> int:
    """What ``find -exec stat`` does: list (READDIRPLUS looks every entry up) and
    stat each name; the listing itself may end in ENFILE. Returns the names seen."""
    seen = 0
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                seen += 1
                try:
                    os.lstat(entry.path)
                except OSError as error:
                    assert error.errno == errno.ENFILE
    except OSError as error:
        assert error.errno == errno.ENFILE
    return seen


def stat_walk(directory: str, names: list[str]) -> dict[int, int]:
    """errno -> how many lstat calls got it (0: success)."""
    outcome: dict[int, int] = {}
    for name in names:
        try:
            os.lstat(os.path.join(directory, name))
            code = 0
        except OSError as error:
            code = error.errno
        outcome[code] = outcome.get(code, 0) + 1
    return outcome


@pytest.mark.parametrize("engine", ["devfuse", "pyfuse3"])
def test_a_walk_wider_than_the_budget_gets_enfile_and_leaks_nothing(engine, tmp_path):
    share, mnt = tmp_path / "share", tmp_path / "mnt"
    share.mkdir()
    mnt.mkdir()
    names = [f"f{i}" for i in range(FILES)]
    for name in names:
        (share / name).touch()
    args = ("--rlimit-nofile", str(LIMIT))
    with hostfs_mount(engine, str(share), str(mnt), str(share), extra_args=args) as mount:
        forget_everything_unused()
        before = settled_fd_count(mount)
        for _ in range(2):
            outcome = stat_walk(str(mnt), names)
            assert set(outcome) == {0, errno.ENFILE}, outcome
            assert mount.daemon_fds() <= LIMIT - CONTROL_PLANE_RESERVE + SLACK
            forget_everything_unused()
            assert settled_fd_count(mount) <= before + SLACK
        assert outcome[0] > LIMIT // 2
        for _ in range(2):  # READDIRPLUS replies cut short by ENFILE count no stray lookup
            assert listing_walk(str(mnt)) > LIMIT // 2
            forget_everything_unused()
            assert settled_fd_count(mount) <= before + SLACK
