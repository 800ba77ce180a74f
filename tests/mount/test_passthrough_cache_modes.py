"""FUSE passthrough under every ``--cache`` mode: an open the kernel accepts.

The kernel fails an open whose reply carries FOPEN_PASSTHROUGH beside any flag
outside its FOPEN_PASSTHROUGH_MASK (fs/fuse/iomode.c); ``--cache always`` asks
FOPEN_KEEP_CACHE for files, which once made every open and create there fail
with EIO on the engines that pass files through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mount.test_passthrough import daemon_rchar
from tests.support.mounts import hostfs_mount

SIZE = 1 << 20


@pytest.mark.parametrize("engine", ["devfuse", "uring"])
@pytest.mark.parametrize("cache", ["never", "metadata", "auto", "always"])
def test_files_open_and_pass_through_in_every_cache_mode(
    tmp_path: Path, engine: str, cache: str
) -> None:
    share, mountpoint = tmp_path / "share", tmp_path / "mnt"
    share.mkdir()
    mountpoint.mkdir()
    (share / "old").write_bytes(b"on the host")
    data = bytes(range(256)) * (SIZE // 256)
    args = ("--cache", cache)
    with hostfs_mount(engine, str(share), str(mountpoint), str(share), "local", args) as mount:
        created = mountpoint / "new"
        created.write_bytes(data)  # CREATE, WRITE
        assert (share / "new").read_bytes() == data
        assert (mountpoint / "old").read_bytes() == b"on the host"  # OPEN
        before = daemon_rchar(mount)
        assert created.read_bytes() == data
        assert daemon_rchar(mount) - before < SIZE // 4, "the daemon read the data"
