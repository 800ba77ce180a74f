"""The FUSE translation core: FUSE semantics on top of a :class:`Backend`.

Every transport (the FUSE codec behind /dev/fuse and vhost-user, the pyfuse3
adapter) calls these methods; none of them re-implements a FUSE rule.
Errors are raised as :class:`OSError` with ``errno`` set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from hostfs.backends.base import Backend
from hostfs.core.options import FsOptions
from hostfs.core.types import AttrReply, Caller, Entry, Lock, Opened, SetattrChanges, StatFs

ROOT_NODEID = 1
"""``FUSE_ROOT_ID`` in fuse.h."""

ReaddirAdd = Callable[[bytes, int, int, int, "Entry | None"], bool]
"""``add(name, ino, dtype, next_offset, entry) -> fits``.

Called once per directory entry, in order.  ``entry`` is None for a plain
READDIR and for ``.``/``..`` in READDIRPLUS (encoded as nodeid 0: "no
lookup").  Returning False means the reply buffer is full: the entry was not
sent, the core takes back the lookup it counted for it, and stops.
"""


class FileSystem:
    def __init__(self, backend: Backend, options: FsOptions | None = None) -> None:
        raise NotImplementedError

    options: FsOptions

    async def start(self) -> None:
        """Resolve the root; call once before the first request."""

    async def init(self) -> None:
        """FUSE_INIT: a new session begins (after a reset the old one is destroyed)."""

    async def destroy(self) -> None:
        """FUSE_DESTROY or device reset: flush and release every handle, forget every node."""

    async def close(self) -> None:
        """Shut down: destroy, then close the backend."""

    async def lookup(self, caller: Caller, parent: int, name: bytes) -> Entry: ...
    def forget(self, nodeid: int, nlookup: int) -> None: ...
    def batch_forget(self, items: Iterable[tuple[int, int]]) -> None: ...
    async def getattr(self, caller: Caller, nodeid: int, fh: int | None = None) -> AttrReply: ...
    async def setattr(
        self, caller: Caller, nodeid: int, changes: SetattrChanges, fh: int | None = None
    ) -> AttrReply: ...
    async def readlink(self, caller: Caller, nodeid: int) -> bytes: ...
    async def symlink(self, caller: Caller, parent: int, name: bytes, target: bytes) -> Entry: ...
    async def mknod(
        self, caller: Caller, parent: int, name: bytes, mode: int, rdev: int, umask: int = 0
    ) -> Entry: ...
    async def mkdir(
        self, caller: Caller, parent: int, name: bytes, mode: int, umask: int = 0
    ) -> Entry: ...
    async def unlink(self, caller: Caller, parent: int, name: bytes) -> None: ...
    async def rmdir(self, caller: Caller, parent: int, name: bytes) -> None: ...
    async def rename(
        self,
        caller: Caller,
        parent: int,
        name: bytes,
        new_parent: int,
        new_name: bytes,
        flags: int = 0,
    ) -> None: ...
    async def link(
        self, caller: Caller, nodeid: int, new_parent: int, new_name: bytes
    ) -> Entry: ...
    async def open(self, caller: Caller, nodeid: int, flags: int) -> Opened: ...
    async def create(
        self, caller: Caller, parent: int, name: bytes, mode: int, flags: int, umask: int = 0
    ) -> tuple[Entry, Opened]: ...
    async def read(
        self, caller: Caller, nodeid: int, fh: int, offset: int, buffers: Sequence[memoryview]
    ) -> int: ...
    async def write(
        self,
        caller: Caller,
        nodeid: int,
        fh: int,
        offset: int,
        buffers: Sequence[memoryview],
        kill_suidgid: bool = False,
    ) -> int: ...
    async def flush(self, caller: Caller, nodeid: int, fh: int, lock_owner: int) -> None: ...
    async def release(
        self,
        caller: Caller,
        nodeid: int,
        fh: int,
        lock_owner: int = 0,
        flock_release: bool = False,
    ) -> None: ...
    async def fsync(self, caller: Caller, nodeid: int, fh: int, datasync: bool) -> None: ...
    async def opendir(self, caller: Caller, nodeid: int, flags: int) -> Opened: ...
    async def readdir(
        self, caller: Caller, nodeid: int, fh: int, offset: int, add: ReaddirAdd, plus: bool
    ) -> None: ...
    async def releasedir(self, caller: Caller, nodeid: int, fh: int) -> None: ...
    async def fsyncdir(self, caller: Caller, nodeid: int, fh: int, datasync: bool) -> None: ...
    async def statfs(self, caller: Caller, nodeid: int) -> StatFs: ...
    async def access(self, caller: Caller, nodeid: int, mask: int) -> None: ...
    async def setxattr(
        self, caller: Caller, nodeid: int, name: bytes, value: bytes, flags: int
    ) -> None: ...
    async def getxattr(self, caller: Caller, nodeid: int, name: bytes) -> bytes: ...
    async def listxattr(self, caller: Caller, nodeid: int) -> list[bytes]: ...
    async def removexattr(self, caller: Caller, nodeid: int, name: bytes) -> None: ...
    async def fallocate(
        self, caller: Caller, nodeid: int, fh: int, mode: int, offset: int, length: int
    ) -> None: ...
    async def lseek(
        self, caller: Caller, nodeid: int, fh: int, offset: int, whence: int
    ) -> int: ...
    async def copy_file_range(
        self,
        caller: Caller,
        nodeid_in: int,
        fh_in: int,
        offset_in: int,
        nodeid_out: int,
        fh_out: int,
        offset_out: int,
        length: int,
        flags: int = 0,
    ) -> int: ...
    async def getlk(self, caller: Caller, nodeid: int, fh: int, owner: int, lock: Lock) -> Lock: ...
    async def setlk(
        self,
        caller: Caller,
        nodeid: int,
        fh: int,
        owner: int,
        lock: Lock,
        wait: bool,
        flock: bool = False,
    ) -> None: ...
    async def syncfs(self, caller: Caller) -> None: ...
