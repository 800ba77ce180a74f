"""Fixtures for the NFS backend tests: one export subdirectory and backend per test.

The session server (``nfs_server``) comes from tests/conftest.py.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hostfs.backends.nfs import NfsBackend, open_nfs_backend
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
async def backend(nfs_url: str) -> AsyncIterator[NfsBackend]:
    nfs = await open_nfs_backend(nfs_url + "&timeout=3")
    yield nfs
    await nfs.close()
