"""A server's refusals reach the writer as themselves: ENOSPC from a full export, not EIO."""

from __future__ import annotations

import errno
import os

import pytest

from hostfs.backends.nfs import open_nfs_backend
from hostfs.backends.nfs.libnfs_c import NFS3ERR_DQUOT, nfs_errno
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.options import FsOptions
from hostfs.core.types import Caller
from tests.support.mounts import hostfs_mount
from tests.support.nfs_server import GaneshaServer

ME = Caller(os.getuid(), os.getgid(), os.getpid())

CHUNK = 1 << 16
LIMIT = 64
"""Chunks to write before giving up: 4 MiB, four times the export's size."""


def test_quota_is_edquot() -> None:
    """libnfs 4.0 says ERANGE for NFS3ERR_DQUOT; the Linux client and POSIX say EDQUOT."""
    assert nfs_errno(NFS3ERR_DQUOT) == errno.EDQUOT
    assert nfs_errno(28) == errno.ENOSPC  # NFS3ERR_NOSPC


async def test_full_export_is_enospc_through_the_core(small_server: GaneshaServer) -> None:
    fs = FileSystem(await open_nfs_backend(small_server.url + "&timeout=3"), FsOptions())
    await fs.start()
    try:
        entry, opened = await fs.create(ME, ROOT_NODEID, b"big", 0o644, os.O_RDWR)
        chunk = memoryview(bytearray(b"x" * CHUNK))
        with pytest.raises(OSError) as info:
            for index in range(LIMIT):
                await fs.write(ME, entry.nodeid, opened.fh, index * CHUNK, [chunk])
        assert info.value.errno == errno.ENOSPC, info.value
        # The export is full, not broken: what fit is there, and the file can go.
        assert (await fs.getattr(ME, entry.nodeid)).attr.size > 0
        await fs.release(ME, entry.nodeid, opened.fh)
        await fs.unlink(ME, ROOT_NODEID, b"big")
    finally:
        await fs.close()


def test_full_export_is_enospc_through_a_mount(small_server: GaneshaServer, tmp_path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with hostfs_mount(
        "devfuse", small_server.url, str(mountpoint), str(small_server.export_dir), "nfs", ()
    ):
        fd = os.open(mountpoint / "big", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            with pytest.raises(OSError) as info:
                for _ in range(LIMIT):
                    os.write(fd, b"x" * CHUNK)
                os.fsync(fd)
            assert info.value.errno == errno.ENOSPC, info.value
        finally:
            os.close(fd)
        os.unlink(mountpoint / "big")
