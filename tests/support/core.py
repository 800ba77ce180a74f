"""The core over the local backend with no mount, for tests of the core and of backends."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from hostfs.backends.local import LocalBackend
from hostfs.core.filesystem import FileSystem
from hostfs.core.options import FsOptions
from hostfs.core.types import Caller

ROOT = Caller(0, 0, 1)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def share(tmp_path) -> str:
    path = tmp_path / "share"
    path.mkdir()
    return str(path)


@pytest.fixture(params=["prefer", "never"])
async def fs(share, request) -> AsyncIterator[FileSystem]:
    """Over both ways of holding nodes: by file handle (the default) and by pinned fd."""
    backend = LocalBackend.from_path(share, inode_file_handles=request.param)
    core = FileSystem(backend, FsOptions(xattr=True))
    await core.start()
    yield core
    await core.close()
