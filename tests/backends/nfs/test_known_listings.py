"""A directory made through a real /dev/fuse mount of the export under ``--cache
always`` (nothing else changes the share): its every name is known
(hostfs.backends.nfs.listing), so the LOOKUP the kernel sends before each create
costs the server nothing; another client's change still ends that knowledge.
Under ``auto`` every name is asked for, so one made elsewhere is found at once."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hostfs.backends.nfs import NfsBackend, open_nfs_backend
from hostfs.core.types import Caller
from tests.backends.nfs.mounting import mounted_nfs
from tests.devfuse.mounting import in_thread

FILES = 20
ME = Caller(os.getuid(), os.getgid(), 0)


@pytest.fixture
async def mounted(nfs_url: str, tmp_path: Path) -> AsyncIterator[tuple[Path, NfsBackend]]:
    async with mounted_nfs(nfs_url, tmp_path, "always") as backend:
        await in_thread(lambda: os.mkdir(tmp_path / "d"))
        yield tmp_path / "d", backend


async def other_client_creates(url: str, name: bytes) -> None:
    """``d/name`` made by a second NFS client of the export."""
    other = await open_nfs_backend(url)
    try:
        root, _ = await other.root()
        directory, _ = await other.lookup(root, b"d")
        _, _, handle = await other.create(directory, name, os.O_WRONLY, 0o644, ME)
        await other.release(handle)
    finally:
        await other.close()


def exists(path: Path) -> bool:
    return os.path.lexists(path)


async def test_creates_in_a_directory_made_here_send_no_lookup(
    mounted: tuple[Path, NfsBackend],
) -> None:
    d, backend = mounted
    before = backend.rpc_counts()
    for index in range(FILES):
        await in_thread(lambda i=index: os.close(os.open(d / f"f{i}", os.O_CREAT | os.O_WRONLY)))
    assert not await in_thread(lambda: exists(d / "never-made"))
    assert backend.rpc_counts() - before == Counter(CREATE3=FILES)
    assert sorted(await in_thread(lambda: os.listdir(d))) == sorted(f"f{i}" for i in range(FILES))


async def test_another_client_s_name_ends_it_at_our_next_change(
    mounted: tuple[Path, NfsBackend], nfs_url: str
) -> None:
    """Our CREATE3's pre-op attributes are not those our last change left: the
    directory changed in between, so the next LOOKUP asks the server."""
    d, _ = mounted
    await other_client_creates(nfs_url, b"theirs")
    await in_thread(lambda: os.close(os.open(d / "mine", os.O_CREAT | os.O_WRONLY)))
    assert await in_thread(lambda: exists(d / "theirs"))


async def test_under_auto_a_name_made_elsewhere_is_found_at_once(
    nfs_url: str, tmp_path: Path
) -> None:
    """Close-to-open for a new name: the other client made and closed it, our first
    LOOKUP of it finds it, however recently we changed the directory ourselves."""
    async with mounted_nfs(nfs_url, tmp_path, "auto") as backend:
        d = tmp_path / "d"
        await in_thread(lambda: os.mkdir(d))
        before = backend.rpc_counts()
        await in_thread(lambda: os.close(os.open(d / "mine", os.O_CREAT | os.O_WRONLY)))
        assert backend.rpc_counts() - before == Counter(LOOKUP3=1, CREATE3=1)
        await other_client_creates(nfs_url, b"theirs")
        assert await in_thread(lambda: exists(d / "theirs"))


async def test_a_removed_name_is_missing_again(mounted: tuple[Path, NfsBackend]) -> None:
    d, backend = mounted
    await in_thread(lambda: os.close(os.open(d / "f", os.O_CREAT | os.O_WRONLY)))
    await in_thread(lambda: os.unlink(d / "f"))
    before = backend.rpc_counts()
    await in_thread(lambda: os.close(os.open(d / "f", os.O_CREAT | os.O_WRONLY)))
    assert backend.rpc_counts() - before == Counter(CREATE3=1)
