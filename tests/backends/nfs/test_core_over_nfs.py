"""The translation core over the NFS backend: a few FUSE operations end to end."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from hostfs.backends.nfs import NfsBackend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.types import Caller

ME = Caller(os.getuid(), os.getgid(), os.getpid())


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


REUSE_ATTEMPTS = 1000
"""Creates to wait for the server to hand out a removed file's fileid again
(ganesha over ext4 reuses it on the first create in the same directory once it has
closed its own descriptor of the removed file, which a busy ganesha may do later:
the wait is the peer's, so it is long; it ends at the first reuse)."""


async def test_a_reused_fileid_is_a_new_node(fs: FileSystem, other_client: NfsBackend) -> None:
    """NFS reuses a fileid once its file is removed (RFC 1813 §2.6 ``fileid3`` is unique
    only among existing files), while the kernel may still hold the removed file's node
    (removed by another client: our own unlink of an open file only hides it)."""
    old, old_opened = await fs.create(ME, ROOT_NODEID, b"old", 0o644, os.O_RDWR)
    await fs.write(ME, old.nodeid, old_opened.fh, 0, [memoryview(bytearray(b"old data"))])
    await fs.flush(ME, old.nodeid, old_opened.fh, 0)
    await other_client.unlink(other_client.tree.root, b"old")
    for attempt in range(REUSE_ATTEMPTS):
        new, new_opened = await fs.create(ME, ROOT_NODEID, b"new%d" % attempt, 0o644, os.O_RDWR)
        if new.attr.ino == old.attr.ino:
            break
        await fs.release(ME, new.nodeid, new_opened.fh)
    else:
        pytest.fail(f"the server did not reuse fileid {old.attr.ino} in {REUSE_ATTEMPTS} creates")
    assert new.nodeid != old.nodeid
    assert await fs.write(ME, new.nodeid, new_opened.fh, 0, [memoryview(bytearray(b"new"))]) == 3
    assert (await fs.getattr(ME, new.nodeid)).attr.size == 3
    await fs.release(ME, new.nodeid, new_opened.fh)
    reopened = await fs.open(ME, new.nodeid, os.O_RDONLY)
    data = bytearray(16)
    assert await fs.read(ME, new.nodeid, reopened.fh, 0, [memoryview(data)]) == 3
    assert data[:3] == b"new"
    await fs.release(ME, new.nodeid, reopened.fh)
    # The removed file's handle and node die as the kernel closes and forgets them,
    # and that leaves the new file's node alone.
    await fs.release(ME, old.nodeid, old_opened.fh)
    fs.forget(old.nodeid, 1)
    again = await fs.lookup(ME, ROOT_NODEID, b"new%d" % attempt)
    assert again.nodeid == new.nodeid
    assert (await fs.getattr(ME, new.nodeid)).attr.size == 3
