"""An in-process /dev/fuse mount of a temp dir, for tests that also look inside the session.

``engine`` picks the engine module (hostfs.fuse.engine): devfuse by default, or
hostfs.uring.session, which mounts through /dev/fuse too.

Every syscall on the mount runs in a worker thread: the kernel waits for this
very trio loop to answer it.  Each mount is bounded by a timeout and checks no
mount is left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from hostfs.backends.local.backend import LocalBackend
from hostfs.core.filesystem import FileSystem
from hostfs.core.options import FsOptions
from hostfs.devfuse import session as devfuse_engine
from hostfs.devfuse.mount import unmount
from hostfs.fuse.engine import MountEngine
from hostfs.fuse.init import SessionConfig

TIMEOUT = 20
T = TypeVar("T")


def is_mounted(path: Path) -> bool:
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


async def in_thread(function: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(function)


@dataclass
class Mounted:
    source: Path
    path: Path
    fs: FileSystem
    session: Any
    """What the engine's ``task_status.started`` gave: its session object."""


@contextlib.asynccontextmanager
async def devfuse_mount(
    tmp_path: Path, config: SessionConfig | None = None, engine: MountEngine = devfuse_engine
) -> AsyncIterator[Mounted]:
    source, mountpoint = tmp_path / "src", tmp_path / "mnt"
    source.mkdir()
    mountpoint.mkdir()
    fs = FileSystem(LocalBackend.from_path(str(source)), FsOptions(xattr=True))
    await fs.start()
    try:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                session = await nursery.start(
                    lambda task_status: engine.serve_mount(
                        fs, str(mountpoint), config=config, task_status=task_status
                    )
                )
                assert is_mounted(mountpoint)
                yield Mounted(source, mountpoint, fs, session)
                nursery.cancel_scope.cancel()
    finally:
        if is_mounted(mountpoint):
            unmount(str(mountpoint))
            pytest.fail("mount left behind")
        await fs.close()
