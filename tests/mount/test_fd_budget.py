"""The local backend's fd budget through a real mount (``--rlimit-nofile``): a stat
walk wider than the budget gets ENFILE for what does not fit, the daemon never
holds more than its budget, and every node is released once the kernel forgets.
With ``--inode-file-handles never``, where every node pins an fd (prefer's nodes
cost none: tests/mount/test_file_handles.py)."""

from __future__ import annotations

import errno

import pytest

from hostfs.backends.local.fd_budget import CONTROL_PLANE_RESERVE
from tests.mount.test_forget import SLACK, forget_everything_unused, settled_fd_count
from tests.mount.walks import listing_walk, share_of_files, stat_walk
from tests.support.mounts import hostfs_mount

LIMIT = 400
FILES = 1000


@pytest.mark.parametrize("engine", ["devfuse", "pyfuse3", "uring"])
def test_a_walk_wider_than_the_budget_gets_enfile_and_leaks_nothing(engine, tmp_path):
    share, mnt, names = share_of_files(tmp_path, FILES)
    args = ("--rlimit-nofile", str(LIMIT), "--inode-file-handles", "never")
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
