"""Fixtures for the NFS backend tests: one export subdirectory and backend per test.

The session server (``nfs_server``) comes from tests/conftest.py.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hostfs.backends.nfs import NfsBackend, open_nfs_backend
from hostfs.core.filesystem import FileSystem
from hostfs.core.options import FsOptions
from tests.support.nfs_server import GaneshaServer

_serial = itertools.count()


@pytest.fixture
def nfs_dir(nfs_server: GaneshaServer) -> Path:
    """A fresh directory inside the export, seen from the host side."""
    path = nfs_server.export_dir / f"t{next(_serial)}"
    path.mkdir()
    return path


@pytest.fixture
def nfs_url(nfs_server: GaneshaServer, nfs_dir: Path) -> str:
    """The URL of ``nfs_dir`` (ganesha mounts subdirectories of an export over NFSv3)."""
    return nfs_server.url.replace(str(nfs_server.export_dir), str(nfs_dir), 1)


@pytest.fixture
async def fs(nfs_url: str) -> AsyncIterator[FileSystem]:
    """The core over a fresh NFS backend of the export, as ``hostfs serve`` runs it."""
    filesystem = FileSystem(await open_nfs_backend(nfs_url), FsOptions())
    await filesystem.start()
    yield filesystem
    await filesystem.close()


@pytest.fixture
async def backend(nfs_url: str) -> AsyncIterator[NfsBackend]:
    nfs = await open_nfs_backend(nfs_url + "&timeout=3")
    yield nfs
    await nfs.close()


@pytest.fixture
async def other_client(nfs_url: str) -> AsyncIterator[NfsBackend]:
    """A second, independent client of the same directory (another hostfs, say)."""
    nfs = await open_nfs_backend(nfs_url + "&timeout=3")
    yield nfs
    await nfs.close()


SMALL_EXPORT = "1m"
"""tmpfs ``size=`` of :func:`small_server`'s export: full after 256 pages."""


@pytest.fixture
def small_server(nfs_server: GaneshaServer, tmp_path: Path) -> Iterator[GaneshaServer]:
    """A server whose export is a size-limited tmpfs, so writes end in ENOSPC.

    ganesha refuses to mount (EACCES) or cross into (EXDEV) a file system mounted
    inside a running export, so this is a second server on the same fixed ports:
    the session server steps aside meanwhile.
    """
    export = tmp_path / "small"
    export.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_EXPORT}", "tmpfs", export], check=True
    )
    nfs_server.stop()
    try:
        with GaneshaServer(export, tmp_path / "small.ganesha") as server:
            yield server
    finally:
        subprocess.run(["umount", export], check=False)
        nfs_server.start()
