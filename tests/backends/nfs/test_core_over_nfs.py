"""The translation core over the NFS backend: a few FUSE operations end to end."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hostfs.backends.nfs import open_nfs_backend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.options import FsOptions
from hostfs.core.types import Caller

ME = Caller(os.getuid(), os.getgid(), os.getpid())


@pytest.fixture
async def fs(nfs_url: str) -> AsyncIterator[FileSystem]:
    filesystem = FileSystem(await open_nfs_backend(nfs_url), FsOptions())
    await filesystem.start()
    yield filesystem
    await filesystem.close()


async def test_create_write_read_rename_unlink(fs: FileSystem, nfs_dir: Path) -> None:
    directory = await fs.mkdir(ME, ROOT_NODEID, b"dir", 0o755)
    entry, opened = await fs.create(ME, directory.nodeid, b"file", 0o644, os.O_RDWR)
    assert await fs.write(ME, entry.nodeid, opened.fh, 0, [memoryview(bytearray(b"abc"))]) == 3
    await fs.fsync(ME, entry.nodeid, opened.fh, datasync=False)
    data = bytearray(10)
    assert await fs.read(ME, entry.nodeid, opened.fh, 0, [memoryview(data)]) == 3
    await fs.flush(ME, entry.nodeid, opened.fh, 0)
    await fs.release(ME, entry.nodeid, opened.fh)
    await fs.rename(ME, ROOT_NODEID, b"dir", ROOT_NODEID, b"renamed")
    assert (await fs.getattr(ME, entry.nodeid)).attr.size == 3
    assert (nfs_dir / "renamed" / "file").read_bytes() == b"abc"
    again = await fs.lookup(ME, directory.nodeid, b"file")
    assert again.nodeid == entry.nodeid
    link = await fs.link(ME, entry.nodeid, ROOT_NODEID, b"hard")
    assert link.nodeid == entry.nodeid and link.attr.nlink == 2
    await fs.unlink(ME, directory.nodeid, b"file")
    with pytest.raises(OSError) as info:
        await fs.rmdir(ME, ROOT_NODEID, b"hard")
    assert info.value.errno == errno.ENOTDIR
    await fs.rmdir(ME, ROOT_NODEID, b"renamed")
    assert (await fs.statfs(ME, ROOT_NODEID)).blocks > 0
    assert sorted(os.listdir(nfs_dir)) == ["hard"]
