"""An NFS-backed FileSystem mounted over /dev/fuse for one test, the backend in hand.

The tests that count NFS calls per syscall (test_mount_rpcs, test_negative_entries)
need the backend the mount runs on, which ``tests.support.mounts`` keeps to itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from hostfs.backends.nfs import NfsBackend, open_nfs_backend
from hostfs.core.filesystem import FileSystem
from hostfs.core.options import CACHE_POLICIES, FsOptions
from hostfs.devfuse import serve_mount
from tests.devfuse.mounting import TIMEOUT, is_mounted


@asynccontextmanager
async def mounted_nfs(
    url: str, mountpoint: Path, cache: str, *, reuse_ns: int | None = None
) -> AsyncIterator[NfsBackend]:
    """``url`` mounted at ``mountpoint`` with ``--cache cache``; unmounted after.

    ``reuse_ns``: how long reply attributes answer a GETATTR (the backend's default
    when None)."""
    backend = await open_nfs_backend(url)
    if reuse_ns is not None:
        backend.reuse_ns = reuse_ns
    fs = FileSystem(backend, FsOptions(cache=CACHE_POLICIES[cache]))
    await fs.start()
    try:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: serve_mount(fs, str(mountpoint), task_status=task_status)
                )
                yield backend
                nursery.cancel_scope.cancel()
    finally:
        assert not is_mounted(mountpoint)
        await fs.close()
