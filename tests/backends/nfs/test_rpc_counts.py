"""NFS calls per core operation, counted by the backend (hostfs.backends.nfs.counts).

A FUSE request that costs more than one round trip shows up here as an extra
procedure or a path-API call (each a walk of several RPCs); no timing involved.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import pytest

from hostfs.backends.nfs import NfsBackend, open_nfs_backend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.options import FsOptions
from hostfs.core.types import Caller

ME = Caller(os.getuid(), os.getgid(), os.getpid())
T = TypeVar("T")


@pytest.fixture
async def fs(nfs_url: str) -> AsyncIterator[FileSystem]:
    filesystem = FileSystem(await open_nfs_backend(nfs_url), FsOptions())
    await filesystem.start()
    yield filesystem
    await filesystem.close()


def backend_of(fs: FileSystem) -> NfsBackend:
    assert isinstance(fs.backend, NfsBackend)
    return fs.backend


async def counted(fs: FileSystem, call: Awaitable[T]) -> tuple[T, Counter[str]]:
    """What ``call`` returned and the NFS calls it made."""
    before = backend_of(fs).rpc_counts()
    result = await call
    return result, backend_of(fs).rpc_counts() - before


async def test_the_counter_sees_filehandle_calls_and_path_walks(fs: FileSystem) -> None:
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
