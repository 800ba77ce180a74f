"""Negative entries through a real /dev/fuse mount of the export.

A LOOKUP of a missing name is answered with nodeid 0 and the ``--cache`` entry
timeout (fuse.h ``fuse_entry_out``), so the kernel keeps a negative dentry and
asks again only once the timeout runs out: a stat of the same missing name costs
the server nothing meanwhile, and a name another client creates appears after the
timeout, as with the Linux NFS client's lookup cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from hostfs.core.options import CACHE_POLICIES
from tests.backends.nfs.mounting import mounted_nfs
from tests.devfuse.mounting import in_thread


def missing(path: Path) -> Callable[[], bool]:
    return lambda: not os.path.lexists(path)


async def test_a_missing_name_is_cached_for_the_entry_timeout(
    nfs_url: str, nfs_dir: Path, tmp_path: Path
) -> None:
    """--cache always (86400 s): the second stat sends no LOOKUP3, and a file
    another client made meanwhile stays unseen; creating it through the mount
    over the negative entry works."""
    async with mounted_nfs(nfs_url, tmp_path, "always") as backend:
        assert await in_thread(missing(tmp_path / "late"))
        before = backend.rpc_counts()
        (nfs_dir / "late").write_bytes(b"from the other client")
        assert await in_thread(missing(tmp_path / "late"))
        assert not (backend.rpc_counts() - before)

        # O_CREAT over the negative dentry: CREATE3 finds it there, opens it as it is.
        def open_create_read() -> bytes:
            fd = os.open(tmp_path / "late", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                return os.read(fd, 100)
            finally:
                os.close(fd)

        assert await in_thread(open_create_read) == b"from the other client"


async def test_a_name_made_elsewhere_appears_after_the_entry_timeout(
    nfs_url: str, nfs_dir: Path, tmp_path: Path
) -> None:
    """--cache auto (1 s): the negative entry expires and the kernel asks again."""
    async with mounted_nfs(nfs_url, tmp_path, "auto"):
        assert await in_thread(missing(tmp_path / "late"))
        (nfs_dir / "late").write_bytes(b"x")
        await trio.sleep(CACHE_POLICIES["auto"].entry_timeout + 0.2)
        assert not await in_thread(missing(tmp_path / "late"))


async def test_never_caches_no_missing_name(nfs_url: str, nfs_dir: Path, tmp_path: Path) -> None:
    """--cache never (0 s): every stat asks the server, so a new name shows at once."""
    async with mounted_nfs(nfs_url, tmp_path, "never") as backend:
        assert await in_thread(missing(tmp_path / "late"))
        (nfs_dir / "late").write_bytes(b"x")
        before = backend.rpc_counts()
        assert not await in_thread(missing(tmp_path / "late"))
        assert (backend.rpc_counts() - before)["LOOKUP3"] >= 1


pytestmark = pytest.mark.usefixtures("nfs_server")
