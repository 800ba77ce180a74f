"""``--inode-file-handles prefer`` through a real mount: a stat walk of more files
than ``--rlimit-nofile`` allows succeeds, and the daemon's fd count stays flat
while the kernel holds every node (with ``never`` the walk gets ENFILE)."""

from __future__ import annotations

import pytest

from tests.mount.test_forget import SLACK
from tests.mount.walks import share_of_files, stat_walk
from tests.support.mounts import hostfs_mount

LIMIT = 400
FILES = 1000


@pytest.mark.parametrize("engine", ["devfuse", "pyfuse3"])
def test_a_walk_wider_than_the_fd_limit_succeeds_by_file_handles(engine, tmp_path):
    share, mnt, names = share_of_files(tmp_path, FILES)
    args = ("--rlimit-nofile", str(LIMIT), "--inode-file-handles", "prefer")
    with hostfs_mount(engine, str(share), str(mnt), str(share), extra_args=args) as mount:
        stat_walk(str(mnt), names[:1])
        before = mount.daemon_fds()
        for _ in range(2):
            assert stat_walk(str(mnt), names) == {0: FILES}
            assert mount.daemon_fds() <= before + SLACK
