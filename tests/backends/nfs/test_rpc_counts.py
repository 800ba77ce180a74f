"""NFS calls per core operation, counted by the backend (hostfs.backends.nfs.counts).

A FUSE request that costs more than one round trip shows up here as an extra
procedure or a path-API call (each a walk of several RPCs); no timing involved.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from hostfs.backends.nfs import NfsBackend, open_nfs_backend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.options import FsOptions
from hostfs.core.types import Caller, SetattrChanges

ME = Caller(os.getuid(), os.getgid(), os.getpid())
T = TypeVar("T")


def backend_of(fs: FileSystem) -> NfsBackend:
    assert isinstance(fs.backend, NfsBackend)
    return fs.backend


async def counted(fs: FileSystem, call: Awaitable[T]) -> tuple[T, Counter[str]]:
    """What ``call`` returned and the NFS calls it made."""
    before = backend_of(fs).rpc_counts()
    result = await call
    return result, backend_of(fs).rpc_counts() - before


async def test_the_counter_sees_filehandle_calls_and_path_walks(fs: FileSystem) -> None:
    backend_of(fs).reuse_ns = 0
    directory = await fs.mkdir(ME, ROOT_NODEID, b"d", 0o755)
    _, calls = await counted(fs, fs.getattr(ME, directory.nodeid))
    assert calls == Counter(GETATTR3=1)
    _, calls = await counted(fs, fs.statfs(ME, directory.nodeid))
    assert calls == Counter(nfs_statvfs=1)


async def test_lookup_create_unlink_are_one_rpc_each(fs: FileSystem) -> None:
    directory = await fs.mkdir(ME, ROOT_NODEID, b"d", 0o755)
    with pytest.raises(FileNotFoundError):
        await counted(fs, fs.lookup(ME, directory.nodeid, b"f"))
    (entry, opened), calls = await counted(
        fs, fs.create(ME, directory.nodeid, b"f", 0o644, os.O_WRONLY)
    )
    assert calls == Counter(CREATE3=1)
    _, calls = await counted(fs, fs.release(ME, entry.nodeid, opened.fh))
    assert calls == Counter()
    found, calls = await counted(fs, fs.lookup(ME, directory.nodeid, b"f"))
    assert found.nodeid == entry.nodeid and calls == Counter(LOOKUP3=1)
    _, calls = await counted(fs, fs.unlink(ME, directory.nodeid, b"f"))
    assert calls == Counter(REMOVE3=1)


def same_times(attr: object, on_host: os.stat_result) -> None:
    assert (attr.mtime_ns, attr.ctime_ns, attr.nlink) == (  # type: ignore[attr-defined]
        on_host.st_mtime_ns,
        on_host.st_ctime_ns,
        on_host.st_nlink,
    )


async def test_the_directory_getattr_after_a_change_in_it_is_answered_from_the_reply(
    fs: FileSystem, nfs_dir: Path
) -> None:
    """The kernel GETATTRs a directory after every create or unlink in it (it drops the
    directory's attributes itself): CREATE3/REMOVE3/LOOKUP3 replies already carry them."""
    directory = await fs.mkdir(ME, ROOT_NODEID, b"d", 0o755)
    entry, opened = await fs.create(ME, directory.nodeid, b"f", 0o644, os.O_WRONLY)
    await fs.release(ME, entry.nodeid, opened.fh)
    reply, calls = await counted(fs, fs.getattr(ME, directory.nodeid))
    assert calls == Counter()
    same_times(reply.attr, os.stat(nfs_dir / "d"))
    await fs.mkdir(ME, directory.nodeid, b"sub", 0o755)
    reply, calls = await counted(fs, fs.getattr(ME, directory.nodeid))
    assert calls == Counter() and reply.attr.nlink == 3
    await fs.unlink(ME, directory.nodeid, b"f")
    reply, calls = await counted(fs, fs.getattr(ME, directory.nodeid))
    assert calls == Counter()
    same_times(reply.attr, os.stat(nfs_dir / "d"))
    await fs.lookup(ME, directory.nodeid, b"sub")
    _, calls = await counted(fs, fs.getattr(ME, directory.nodeid))
    assert calls == Counter()


async def test_reply_attributes_expire(fs: FileSystem) -> None:
    backend_of(fs).reuse_ns = 0
    directory = await fs.mkdir(ME, ROOT_NODEID, b"d", 0o755)
    await fs.mkdir(ME, directory.nodeid, b"sub", 0o755)
    _, calls = await counted(fs, fs.getattr(ME, directory.nodeid))
    assert calls == Counter(GETATTR3=1)


async def test_changes_through_a_worker_drop_the_attributes_they_touch(
    fs: FileSystem, nfs_dir: Path
) -> None:
    directory = await fs.mkdir(ME, ROOT_NODEID, b"d", 0o755)
    entry, opened = await fs.create(ME, directory.nodeid, b"f", 0o644, os.O_RDWR)
    await fs.getattr(ME, entry.nodeid)
    await fs.write(ME, entry.nodeid, opened.fh, 0, [memoryview(bytearray(b"12345"))])
    reply, calls = await counted(fs, fs.getattr(ME, entry.nodeid))
    assert calls == Counter(GETATTR3=1) and reply.attr.size == 5
    await fs.release(ME, entry.nodeid, opened.fh)
    await fs.rename(ME, directory.nodeid, b"f", directory.nodeid, b"g")
    reply, calls = await counted(fs, fs.getattr(ME, directory.nodeid))
    assert calls == Counter(GETATTR3=1)
    same_times(reply.attr, os.stat(nfs_dir / "d"))
    await fs.link(ME, entry.nodeid, directory.nodeid, b"h")
    reply, calls = await counted(fs, fs.getattr(ME, entry.nodeid))
    assert calls == Counter(GETATTR3=1) and reply.attr.nlink == 2
    await fs.unlink(ME, directory.nodeid, b"h")
    reply, calls = await counted(fs, fs.getattr(ME, entry.nodeid))
    assert calls == Counter(GETATTR3=1) and reply.attr.nlink == 1


async def test_open_is_one_access_and_truncate_one_setattr(fs: FileSystem, nfs_dir: Path) -> None:
    """nfs_open walks the path (a LOOKUP per component) before its ACCESS3."""
    directory = await fs.mkdir(ME, ROOT_NODEID, b"d", 0o755)
    sub = await fs.mkdir(ME, directory.nodeid, b"e", 0o755)
    entry, opened = await fs.create(ME, sub.nodeid, b"f", 0o644, os.O_WRONLY)
    await fs.write(ME, entry.nodeid, opened.fh, 0, [memoryview(bytearray(b"data"))])
    await fs.release(ME, entry.nodeid, opened.fh)
    opened, calls = await counted(fs, fs.open(ME, entry.nodeid, os.O_RDONLY))
    assert calls == Counter(ACCESS3=1)
    buffer = bytearray(8)
    assert await fs.read(ME, entry.nodeid, opened.fh, 0, [memoryview(buffer)]) == 4
    assert buffer[:4] == b"data"
    await fs.release(ME, entry.nodeid, opened.fh)
    opened, calls = await counted(fs, fs.open(ME, entry.nodeid, os.O_WRONLY | os.O_TRUNC))
    assert calls == Counter(ACCESS3=1, nfs_ftruncate=1)
    assert os.stat(nfs_dir / "d" / "e" / "f").st_size == 0
    reply, calls = await counted(fs, fs.getattr(ME, entry.nodeid))
    assert reply.attr.size == 0 and calls == Counter(GETATTR3=1)
    await fs.release(ME, entry.nodeid, opened.fh)


async def test_open_refused_by_the_server_is_eacces(nfs_url: str, nfs_dir: Path) -> None:
    """ACCESS3 answers for the URL's credentials (uid= here), as nfs_open's did."""
    (nfs_dir / "private").write_bytes(b"secret")
    os.chmod(nfs_dir / "private", 0o600)
    fs = FileSystem(await open_nfs_backend(nfs_url + "&uid=1000&gid=1000"), FsOptions())
    await fs.start()
    try:
        entry = await fs.lookup(ME, ROOT_NODEID, b"private")
        with pytest.raises(PermissionError):
            await fs.open(ME, entry.nodeid, os.O_RDONLY)
    finally:
        await fs.close()


async def test_setattr_is_one_setattr3_whatever_it_changes(fs: FileSystem, nfs_dir: Path) -> None:
    """The path API walked the path and sent a SETATTR per attribute, then a GETATTR."""
    directory = await fs.mkdir(ME, ROOT_NODEID, b"d", 0o755)
    entry, opened = await fs.create(ME, directory.nodeid, b"f", 0o644, os.O_RDWR)
    await fs.write(ME, entry.nodeid, opened.fh, 0, [memoryview(bytearray(b"0123456789"))])
    changes = SetattrChanges(
        mode=0o600, uid=1000, gid=1001, size=3, mtime=1_234_567_890_123_456_789
    )
    reply, calls = await counted(fs, fs.setattr(ME, entry.nodeid, changes, opened.fh))
    assert calls == Counter(SETATTR3=1)
    on_host = os.stat(nfs_dir / "d" / "f")
    assert (on_host.st_mode & 0o7777, on_host.st_uid, on_host.st_gid) == (0o600, 1000, 1001)
    assert on_host.st_size == 3 and on_host.st_mtime_ns == 1_234_567_890_123_456_000
    assert (reply.attr.size, reply.attr.mtime_ns, reply.attr.uid) == (3, on_host.st_mtime_ns, 1000)
    _, calls = await counted(fs, fs.getattr(ME, entry.nodeid))
    assert calls == Counter()
    await fs.release(ME, entry.nodeid, opened.fh)
