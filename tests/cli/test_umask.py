"""The daemons serve with umask 0 (hostfs.cli.umask): a new object gets the mode the
request carries without a chmod, and what the CLI itself makes keeps the invoking
umask, as before."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostfs.fuse.abi import ROOT_ID
from tests.support.mounts import hostfs_mount
from tests.support.serve import serving

INVOKING_UMASK = 0o027


@contextlib.contextmanager
def invoked_with_umask(mask: int) -> Iterator[None]:
    """Children started in the body inherit ``mask``."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize(
    ("group", "socket_mode"), [((), 0o750), (("--socket-group", "root"), 0o660)]
)
async def test_serve_keeps_its_socket_mode_and_serves_under_umask_0(
    tmp_path: Path, group: tuple[str, ...], socket_mode: int
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    with invoked_with_umask(INVOKING_UMASK):
        async with serving(tmp_path, str(share), *group) as daemon:
            assert mode_of(tmp_path / "vhost.sock") == socket_mode
            assert daemon.status("Umask") == "0000"
            await daemon.fuse.create(ROOT_ID, b"f", mode=0o664)
            await daemon.fuse.mkdir(ROOT_ID, b"d", mode=0o775)
            assert (mode_of(share / "f"), mode_of(share / "d")) == (0o664, 0o775)


def test_mount_serves_under_umask_0(tmp_path: Path) -> None:
    share, mnt = tmp_path / "share", tmp_path / "mnt"
    share.mkdir()
    mnt.mkdir()
    with invoked_with_umask(INVOKING_UMASK):
        mounting = hostfs_mount("devfuse", str(share), str(mnt), str(share), extra_args=())
        with mounting as mount:
            status = Path(f"/proc/{mount.process.pid}/status").read_text()
            assert "Umask:\t0000" in status.splitlines()
            os.umask(0o002)  # a caller's umask that is not the one the daemon started with
            (mnt / "f").touch(0o666)
            (mnt / "d").mkdir(0o777)
            assert (mode_of(share / "f"), mode_of(share / "d")) == (0o664, 0o775)
