"""An open file that is unlinked (or renamed over) stays readable and writable until
its last close, leaves nothing behind, and its hidden name is never listed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostfs.backends.nfs.silly import is_silly, silly_name
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.types import Caller
from tests.support.mounts import hostfs_mount
from tests.support.nfs_server import GaneshaServer

ME = Caller(os.getuid(), os.getgid(), os.getpid())


async def listed(fs: FileSystem, nodeid: int = ROOT_NODEID) -> list[bytes]:
    """READDIR of the directory, as the guest sees it."""
    names: list[bytes] = []

    def add(name: bytes, ino: int, dtype: int, next_offset: int, entry: object) -> bool:
        names.append(name)
        return True

    opened = await fs.opendir(ME, nodeid, 0)
    await fs.readdir(ME, nodeid, opened.fh, 0, add, False)
    await fs.releasedir(ME, nodeid, opened.fh)
    return sorted(name for name in names if name not in (b".", b".."))


async def read_all(fs: FileSystem, nodeid: int, fh: int) -> bytes:
    data = bytearray(1 << 16)
    return bytes(data[: await fs.read(ME, nodeid, fh, 0, [memoryview(data)])])


def test_hidden_names() -> None:
    name = silly_name(0x1234, 7)
    assert name == b".nfs00000000000012340000000" + b"7"
    assert is_silly(name) and not is_silly(b".nfs") and not is_silly(b"nfs" + name[4:])


async def test_unlinked_open_file_lives_until_the_last_close(fs: FileSystem, nfs_dir: Path) -> None:
    entry, opened = await fs.create(ME, ROOT_NODEID, b"tmp", 0o644, os.O_RDWR)
    await fs.write(ME, entry.nodeid, opened.fh, 0, [memoryview(bytearray(b"before"))])
    second = await fs.open(ME, entry.nodeid, os.O_RDONLY)
    await fs.unlink(ME, ROOT_NODEID, b"tmp")

    with pytest.raises(FileNotFoundError):
        await fs.lookup(ME, ROOT_NODEID, b"tmp")
    assert await listed(fs) == []
    # The server holds it under a hidden name meanwhile.
    assert [is_silly(os.fsencode(name)) for name in os.listdir(nfs_dir)] == [True]

    await fs.write(ME, entry.nodeid, opened.fh, 6, [memoryview(bytearray(b" after"))])
    await fs.fsync(ME, entry.nodeid, opened.fh, datasync=False)
    assert await read_all(fs, entry.nodeid, opened.fh) == b"before after"
    assert (await fs.getattr(ME, entry.nodeid)).attr.size == 12
    await fs.release(ME, entry.nodeid, opened.fh)
    # One handle is still open: the file still is.
    assert await read_all(fs, entry.nodeid, second.fh) == b"before after"
    assert len(os.listdir(nfs_dir)) == 1
    await fs.release(ME, entry.nodeid, second.fh)

    assert os.listdir(nfs_dir) == []
    assert await listed(fs) == []


async def test_a_closed_file_is_removed_at_once(fs: FileSystem, nfs_dir: Path) -> None:
    entry, opened = await fs.create(ME, ROOT_NODEID, b"plain", 0o644, os.O_RDWR)
    await fs.release(ME, entry.nodeid, opened.fh)
    await fs.unlink(ME, ROOT_NODEID, b"plain")
    assert os.listdir(nfs_dir) == []


async def test_renamed_over_open_file_lives_until_closed(fs: FileSystem, nfs_dir: Path) -> None:
    old, old_opened = await fs.create(ME, ROOT_NODEID, b"target", 0o644, os.O_RDWR)
    await fs.write(ME, old.nodeid, old_opened.fh, 0, [memoryview(bytearray(b"old"))])
    new, new_opened = await fs.create(ME, ROOT_NODEID, b"new", 0o644, os.O_RDWR)
    await fs.write(ME, new.nodeid, new_opened.fh, 0, [memoryview(bytearray(b"new!"))])
    await fs.release(ME, new.nodeid, new_opened.fh)

    await fs.rename(ME, ROOT_NODEID, b"new", ROOT_NODEID, b"target", 0)

    assert await read_all(fs, old.nodeid, old_opened.fh) == b"old"
    assert await listed(fs) == [b"target"]
    assert (nfs_dir / "target").read_bytes() == b"new!"
    await fs.release(ME, old.nodeid, old_opened.fh)
    assert os.listdir(nfs_dir) == ["target"]


def test_through_a_mount(
    nfs_server: GaneshaServer, nfs_url: str, nfs_dir: Path, tmp_path: Path
) -> None:
    """What a POSIX program does with a temporary file: open, unlink, use, close."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with hostfs_mount("devfuse", nfs_url, str(mountpoint), str(nfs_dir), "nfs", ()):
        path = mountpoint / "scratch"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"kept ")
            os.unlink(path)
            assert not path.exists()
            assert os.listdir(mountpoint) == []
            os.write(fd, b"while unlinked")
            os.fsync(fd)
            assert os.pread(fd, 100, 0) == b"kept while unlinked"
            assert os.fstat(fd).st_size == 19
        finally:
            os.close(fd)
        assert os.listdir(mountpoint) == []
    assert os.listdir(nfs_dir) == []
