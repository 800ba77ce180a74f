"""``--allow-other``: off by default (only root gets in, no ``default_permissions``),
on for other users with the kernel checking their permissions.

What would be false if the choice broke: the mount's options in /proc/mounts, and
whether another user's stat reaches the file at all (EACCES from the kernel's
fuse_allow_current_process without allow_other).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.mount.processes import as_user
from tests.support.mounts import hostfs_mount, mount_words

NOBODY = 65534


def stat_as_nobody(directory: Path, name: str) -> int:
    """0, or the errno another user's stat of ``name`` in ``directory`` gets (the
    child enters ``directory`` as root: pytest's tmp_path sits under a 0700 one)."""

    def probe(_: str) -> int:
        try:
            os.stat(name)
        except OSError as error:
            return error.errno or -1
        return 0

    return int(as_user(NOBODY, NOBODY, probe, str(directory)))


@pytest.mark.parametrize("engine", ["devfuse", "uring", "pyfuse3"])
@pytest.mark.parametrize("allow_other", [False, True], ids=["default", "allow-other"])
def test_allow_other_brings_default_permissions(
    tmp_path: Path, engine: str, allow_other: bool
) -> None:
    share, mountpoint = tmp_path / "share", tmp_path / "mnt"
    share.mkdir()
    mountpoint.mkdir()
    (share / "file").write_text("x")
    (share / "file").chmod(0o644)
    share.chmod(0o755)
    with hostfs_mount(
        engine, str(share), str(mountpoint), str(share), allow_other=allow_other
    ) as mount:
        words = mount_words(mount.path)
        assert ("allow_other" in words) == allow_other
        assert ("default_permissions" in words) == allow_other
        assert os.stat(mountpoint / "file").st_size == 1, "root, the mounting user, gets in"
        expected = 0 if allow_other else errno.EACCES
        assert stat_as_nobody(mountpoint, "file") == expected
