"""``hostfs mount --readonly``: through a real mount, changes fail with EROFS, reads work.

The mount itself is read-write (statvfs shows no ST_RDONLY): the daemon refuses,
as virtiofsd does, so each EROFS here is the core's answer, not the kernel's.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

from tests.mount.conftest import ENGINES
from tests.support.mounts import Mount, hostfs_mount

j = os.path.join


@pytest.fixture(scope="module", params=ENGINES)
def ro_mount(request, tmp_path_factory) -> Iterator[Mount]:
    share = str(tmp_path_factory.mktemp("ro-share"))
    with open(j(share, "f"), "wb") as f:
        f.write(b"data")
    os.setxattr(j(share, "f"), "user.kept", b"1")
    os.mkdir(j(share, "d"))
    mountpoint = str(tmp_path_factory.mktemp("ro-mnt"))
    extra = ("--xattr", "--readonly")
    with hostfs_mount(request.param, share, mountpoint, share, extra_args=extra) as live:
        yield live


def _open_for_writing(m: str) -> None:
    os.close(os.open(j(m, "f"), os.O_WRONLY))


def _truncating_open(m: str) -> None:
    os.close(os.open(j(m, "f"), os.O_RDONLY | os.O_TRUNC))


def _create(m: str) -> None:
    os.close(os.open(j(m, "new"), os.O_WRONLY | os.O_CREAT, 0o644))


CHANGES = {
    "open-for-writing": _open_for_writing,
    "open-truncating": _truncating_open,
    "create": _create,
    "mkdir": lambda m: os.mkdir(j(m, "new")),
    "mkfifo": lambda m: os.mkfifo(j(m, "new")),
    "symlink": lambda m: os.symlink("f", j(m, "new")),
    "link": lambda m: os.link(j(m, "f"), j(m, "new")),
    "unlink": lambda m: os.unlink(j(m, "f")),
    "rmdir": lambda m: os.rmdir(j(m, "d")),
    "rename": lambda m: os.rename(j(m, "f"), j(m, "new")),
    "chmod": lambda m: os.chmod(j(m, "f"), 0o600),
    "truncate": lambda m: os.truncate(j(m, "f"), 0),
    "utime": lambda m: os.utime(j(m, "f"), (0, 0)),
    "setxattr": lambda m: os.setxattr(j(m, "f"), "user.new", b"1"),
    "removexattr": lambda m: os.removexattr(j(m, "f"), "user.kept"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_changes_fail_with_erofs(ro_mount, change):
    before = sorted(os.listdir(ro_mount.host_dir)), os.stat(j(ro_mount.host_dir, "f"))
    with pytest.raises(OSError) as failure:
        CHANGES[change](ro_mount.path)
    assert failure.value.errno == errno.EROFS
    assert (sorted(os.listdir(ro_mount.host_dir)), os.stat(j(ro_mount.host_dir, "f"))) == before


def test_reads_work_and_statvfs_does_not_say_read_only(ro_mount):
    m = ro_mount.path
    with open(j(m, "f"), "rb") as f:
        assert f.read() == b"data"
    assert os.getxattr(j(m, "f"), "user.kept") == b"1"
    assert sorted(os.listdir(m)) == ["d", "f"]
    # fuse_kstatfs carries no flags: the guest learns read-only-ness only from EROFS.
    assert not os.statvfs(m).f_flag & os.ST_RDONLY
