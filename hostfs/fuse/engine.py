"""The seam between ``hostfs mount`` and an engine: one signature for all of them.

An engine is a module (hostfs.devfuse.session, hostfs.libfuse.session,
hostfs.uring.session) whose ``serve_mount`` mounts a :class:`FileSystem` and
serves it until cancelled (SIGTERM, Ctrl-C) or unmounted from outside, then
runs ``fs.destroy()``.  ``config`` is the session's limits and switches
(hostfs.fuse.init.SessionConfig); an engine whose INIT reply is not its own
(pyfuse3: libfuse answers INIT) takes it and keeps what it can honour.
``task_status.started(...)`` marks the mount usable.
"""

from __future__ import annotations

from typing import Any, Protocol

import trio

from hostfs.core.filesystem import FileSystem
from hostfs.fuse.init import SessionConfig


class MountEngine(Protocol):
    async def serve_mount(
        self,
        fs: FileSystem,
        mountpoint: str,
        *,
        config: SessionConfig | None = None,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None: ...
