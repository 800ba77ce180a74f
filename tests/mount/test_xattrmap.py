"""``hostfs mount --xattrmap``: the guest's names as the host file stores them.

Through the devfuse engine (the VM's byte path), with virtiofsd's map rule that
keeps a guest's ``security.*`` names away from the host's own.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

from tests.support.mounts import Mount, hostfs_mount

j = os.path.join


@pytest.fixture(scope="module")
def mapped_mount(tmp_path_factory) -> Iterator[Mount]:
    share = str(tmp_path_factory.mktemp("xattrmap-share"))
    mountpoint = str(tmp_path_factory.mktemp("xattrmap-mnt"))
    extra = ("--xattr", "--xattrmap", ":map:security.:user.virtiofs.:")
    with hostfs_mount("devfuse", share, mountpoint, share, extra_args=extra) as live:
        yield live


def test_security_names_are_stored_under_the_prefix(mapped_mount):
    mnt, host = j(mapped_mount.path, "f"), j(mapped_mount.host_dir, "f")
    with open(mnt, "wb"):
        pass
    os.setxattr(host, "security.host-only", b"h")
    os.setxattr(mnt, "security.guest", b"g")
    os.setxattr(mnt, "user.plain", b"p")

    assert sorted(os.listxattr(host)) == [
        "security.host-only",
        "user.plain",
        "user.virtiofs.security.guest",
    ]
    assert os.getxattr(host, "user.virtiofs.security.guest") == b"g"
    assert os.getxattr(mnt, "security.guest") == b"g"
    assert sorted(os.listxattr(mnt)) == ["security.guest", "user.plain"]

    with pytest.raises(OSError) as failure:
        os.setxattr(mnt, "user.virtiofs.security.forged", b"x")
    assert failure.value.errno == errno.EPERM
    os.removexattr(mnt, "security.guest")
    assert sorted(os.listxattr(host)) == ["security.host-only", "user.plain"]
