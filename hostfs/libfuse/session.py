"""The pyfuse3 engine: mount the core through libfuse."""

from __future__ import annotations

import pyfuse3
import trio

from hostfs.core.filesystem import FileSystem
from hostfs.fuse.init import SessionConfig
from hostfs.libfuse.operations import CoreOperations

MOUNT_OPTIONS = {"fsname=hostfs", "subtype=hostfs", "default_permissions", "allow_other"}
"""default_permissions: the kernel checks permissions from our attributes, as
virtiofs always does; allow_other: every user on the host may use the mount."""


async def serve_mount(
    fs: FileSystem,
    mountpoint: str,
    *,
    config: SessionConfig | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Mount ``fs`` on ``mountpoint`` and serve it until unmounted or cancelled
    (hostfs.fuse.engine).  libfuse makes the INIT reply and reads /dev/fuse itself,
    so ``config`` changes nothing here.

    pyfuse3 keeps one session per process, so one pyfuse3 mount at a time.
    """
    pyfuse3.init(CoreOperations(fs), mountpoint, MOUNT_OPTIONS)
    try:
        task_status.started()
        await pyfuse3.main()
    finally:
        pyfuse3.close(unmount=True)
        with trio.CancelScope(shield=True):
            await fs.destroy()
