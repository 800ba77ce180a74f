"""Filehandle-level LOOKUP/GETATTR/REMOVE agree with libnfs's path API."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio

from hostfs.backends.nfs import NfsBackend, rpc3
from hostfs.backends.nfs.libnfs_c import Context


async def test_lookup_getattr_remove_match_the_path_api(backend: NfsBackend, nfs_dir: Path) -> None:
    (nfs_dir / "d").mkdir()
    (nfs_dir / "d" / "f").write_bytes(b"x" * 5000)
    os.symlink("f", nfs_dir / "d" / "l")
    os.mkfifo(nfs_dir / "d" / "p")

    def compare(c: Context) -> None:
        root = rpc3.root_filehandle(c)
        assert rpc3.getattr_(c, root).ino == c.lstat(b"/").ino
        directory, _ = rpc3.lookup(c, root, b"d")
        for name in (b"f", b"l", b"p"):
            filehandle, st = rpc3.lookup(c, directory, name)
            for found in (st, rpc3.getattr_(c, filehandle)):
                assert bytes(found) == bytes(c.lstat(b"/d/" + name))
        with pytest.raises(OSError) as info:
            rpc3.lookup(c, directory, b"missing")
        assert info.value.errno == errno.ENOENT
        rpc3.call(c, rpc3.remove_request(directory, b"f"))
        with pytest.raises(OSError) as info:
            rpc3.call(c, rpc3.remove_request(directory, b"f"))
        assert info.value.errno == errno.ENOENT

    await backend.pool.run(compare)
    assert sorted(os.listdir(nfs_dir / "d")) == ["l", "p"]


async def test_event_loop_rpc_pipelines_and_reports_errors(
    backend: NfsBackend, nfs_dir: Path
) -> None:
    for index in range(50):
        (nfs_dir / f"f{index}").write_bytes(b"x" * index)
    root = backend.tree.root.filehandle
    assert root is not None
    sizes = {}

    async def stat(index: int) -> None:
        _, st = await backend.fast.lookup(root, b"f%d" % index)
        sizes[index] = st.size

    async with trio.open_nursery() as nursery:
        for index in range(50):
            nursery.start_soon(stat, index)
    assert sizes == {index: index for index in range(50)}
    with pytest.raises(FileNotFoundError):
        await backend.fast.remove(root, b"missing")
    await backend.fast.remove(root, b"f1")
    assert not (nfs_dir / "f1").exists()
