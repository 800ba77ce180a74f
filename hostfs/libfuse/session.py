"""The pyfuse3 engine: mount the core through libfuse."""

from __future__ import annotations

import pyfuse3
import trio

from hostfs.core.filesystem import FileSystem
from hostfs.devfuse.mount import mount_options
from hostfs.fuse.init import SessionConfig
from hostfs.libfuse.operations import CoreOperations

MOUNT_OPTIONS = {"fsname=hostfs", "subtype=hostfs"}
"""Plus the permission words the other engines use (hostfs.devfuse.mount.mount_options)."""


async def serve_mount(
    fs: FileSystem,
    mountpoint: str,
    *,
    config: SessionConfig | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Mount ``fs`` on ``mountpoint`` and serve it until unmounted or cancelled
    (hostfs.fuse.engine).  libfuse makes the INIT reply and reads /dev/fuse itself,
    so of ``config`` only ``allow_other`` counts here.

    pyfuse3 keeps one session per process, so one pyfuse3 mount at a time.
    """
    allow_other = config is not None and config.allow_other
    options = MOUNT_OPTIONS | set(mount_options(allow_other=allow_other))
    pyfuse3.init(CoreOperations(fs), mountpoint, options)
    try:
        task_status.started()
        await pyfuse3.main()
    finally:
        pyfuse3.close(unmount=True)
        with trio.CancelScope(shield=True):
            await fs.destroy()
