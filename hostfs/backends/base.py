"""The contract between the translation core and a storage backend.

A backend performs operations on *its own objects*; it knows nothing of FUSE
nodeids, lookup counts or file-handle numbers, which the core keeps.  Objects
and open handles are opaque to the core: whatever the backend returns from
:meth:`Backend.lookup` comes back as ``obj`` in later calls, and whatever
:meth:`Backend.open` returns comes back as ``handle``.

Errors are raised as :class:`OSError` with ``errno`` set; the core turns them
into FUSE error replies unchanged.  Every name is a single path component
already checked by the core (no ``/``, not empty, not ``.``/``..``).

Methods are async so that each backend chooses where work runs: the local
backend does cheap syscalls inline, the NFS backend hops to a pool of libnfs
contexts in worker threads.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from hostfs.core.types import Caller, DirEntry, Lock, SetattrChanges, Stat, StatFs

BackendObject = Any
"""An object the backend can operate on (an O_PATH fd, an NFS path record, ...)."""

BackendHandle = Any
"""An open file or directory on the backend."""


class HostLocks(Protocol):
    """Guest locks kept by the storage itself, so that every client of it sees them
    (the local backend's: hostfs/backends/local/host_locks.py).  ``key`` is the
    core's nodeid, ``owner`` FUSE's lock owner, ``handle`` the open file asking."""

    def getlk(self, key: int, handle: BackendHandle, owner: int, lock: Lock) -> Lock: ...

    async def setlk(
        self, key: int, handle: BackendHandle, owner: int, lock: Lock, wait: bool
    ) -> None: ...

    async def flock(
        self, key: int, handle: BackendHandle, owner: int, lock: Lock, wait: bool
    ) -> None: ...

    def release_posix(self, key: int, owner: int) -> None: ...

    def release_flock(self, key: int, owner: int) -> None: ...

    def release_all(self) -> None: ...


class Backend(abc.ABC):
    """Operations on one shared directory tree."""

    calls_wait: bool = True
    """Whether a call can wait on something outside the event loop's control (a
    server, a slow device) for long enough that FUSE_INTERRUPT should cancel it.
    A backend whose calls always finish promptly says False, and is spared the
    per-request cancel scope that interrupting needs."""

    supplementary_groups: bool = False
    """Whether creating (create, mknod, mkdir, symlink) honours ``Caller.groups``, so that
    a caller in the parent's group only through a supplementary group passes the host's
    permission check (FUSE_CREATE_SUPP_GROUP)."""

    # -- lifetime -----------------------------------------------------------

    @abc.abstractmethod
    async def root(self) -> tuple[BackendObject, Stat]:
        """The shared directory itself."""

    @abc.abstractmethod
    def forget(self, obj: BackendObject) -> None:
        """The core holds no more references to ``obj``: release what it pins."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything (the core has already released handles and objects)."""

    def same_object(self, known: BackendObject, found: BackendObject) -> bool:
        """Whether ``found``, just returned with the same (st_dev, st_ino) as the object
        ``known`` the core holds, is that object, and not a newer one that reuses its
        inode number (then the core gives it a node of its own).

        True by default, which is right for a backend whose objects pin their inode
        while the core holds them, as the local backend's O_PATH descriptors do: a
        pinned inode is never freed, so its number cannot be handed out again.
        """
        return True

    async def names_object(self, parent: BackendObject, name: bytes, obj: BackendObject) -> bool:
        """Whether ``name`` in ``parent``, which :meth:`stat_name` just found with the
        (st_dev, st_ino) of the held ``obj``, is ``obj`` and not a newer object that
        reuses its number: then the stat stands for a full lookup.

        True by default, for objects that pin their inode while held (see
        :meth:`same_object`); the local backend compares file handles for the
        objects that hold no fd.
        """
        return True

    def host_locks(self) -> HostLocks | None:
        """Locks the storage keeps for every client (``--locks host``), or None (the
        default): the core's own tables then keep them, coherent within this daemon."""
        return None

    # -- names --------------------------------------------------------------

    @abc.abstractmethod
    async def lookup(self, parent: BackendObject, name: bytes) -> tuple[BackendObject, Stat]:
        """Find ``name`` in ``parent`` without following a final symlink."""

    async def stat_name(self, parent: BackendObject, name: bytes) -> Stat | None:
        """The attributes of ``name`` in ``parent`` (no final symlink followed), without
        making an object for it: when the core already holds an object with that
        (st_dev, st_ino), it answers a lookup with that one.

        None, the default, makes the core always :meth:`lookup`; a backend returns
        a Stat only where (st_dev, st_ino) can identify an object the core holds,
        which the core then asks :meth:`names_object` of.
        """
        return None

    @abc.abstractmethod
    async def getattr(self, obj: BackendObject, handle: BackendHandle | None = None) -> Stat: ...

    @abc.abstractmethod
    async def setattr(
        self,
        obj: BackendObject,
        changes: SetattrChanges,
        handle: BackendHandle | None,
        caller: Caller,
    ) -> Stat:
        """Apply ``changes`` (through ``handle`` when given) and return the new stat."""

    @abc.abstractmethod
    async def readlink(self, obj: BackendObject) -> bytes: ...

    @abc.abstractmethod
    async def mknod(
        self, parent: BackendObject, name: bytes, mode: int, rdev: int, caller: Caller
    ) -> tuple[BackendObject, Stat]:
        """Create a regular file, fifo, socket or device node owned by ``caller``."""

    @abc.abstractmethod
    async def mkdir(
        self, parent: BackendObject, name: bytes, mode: int, caller: Caller
    ) -> tuple[BackendObject, Stat]: ...

    @abc.abstractmethod
    async def symlink(
        self, parent: BackendObject, name: bytes, target: bytes, caller: Caller
    ) -> tuple[BackendObject, Stat]: ...

    @abc.abstractmethod
    async def link(
        self, obj: BackendObject, new_parent: BackendObject, new_name: bytes, caller: Caller
    ) -> tuple[BackendObject, Stat]: ...

    @abc.abstractmethod
    async def unlink(self, parent: BackendObject, name: bytes) -> None: ...

    @abc.abstractmethod
    async def rmdir(self, parent: BackendObject, name: bytes) -> None: ...

    @abc.abstractmethod
    async def rename(
        self,
        parent: BackendObject,
        name: bytes,
        new_parent: BackendObject,
        new_name: bytes,
        flags: int,
    ) -> None:
        """``renameat2``: ``flags`` is 0, RENAME_NOREPLACE (1) or RENAME_EXCHANGE (2)."""

    # -- files --------------------------------------------------------------

    @abc.abstractmethod
    async def open(self, obj: BackendObject, flags: int, caller: Caller) -> BackendHandle:
        """Open for I/O; ``flags`` are open(2) flags (no O_CREAT)."""

    @abc.abstractmethod
    async def create(
        self, parent: BackendObject, name: bytes, flags: int, mode: int, caller: Caller
    ) -> tuple[BackendObject, Stat, BackendHandle]:
        """Create and open ``name`` (O_CREAT, plus O_EXCL if given) owned by ``caller``."""

    @abc.abstractmethod
    async def read(self, handle: BackendHandle, offset: int, buffers: Sequence[memoryview]) -> int:
        """Fill ``buffers`` in order from ``offset``; return the bytes read (short at EOF)."""

    @abc.abstractmethod
    async def write(self, handle: BackendHandle, offset: int, buffers: Sequence[memoryview]) -> int:
        """Write ``buffers`` in order at ``offset``; return the bytes written."""

    @abc.abstractmethod
    async def flush(self, handle: BackendHandle) -> None:
        """close(2) of one descriptor of the handle: surface deferred write errors."""

    @abc.abstractmethod
    async def fsync(self, handle: BackendHandle, datasync: bool) -> None: ...

    @abc.abstractmethod
    async def release(self, handle: BackendHandle) -> None:
        """The last reference to the handle is gone: close it."""

    def passthrough_fd(self, handle: BackendHandle) -> int | None:
        """A host descriptor the kernel may read and write itself for ``handle``
        (FUSE passthrough), or None where the data is not in a host file."""
        return None

    @abc.abstractmethod
    async def fallocate(
        self, handle: BackendHandle, mode: int, offset: int, length: int
    ) -> None: ...

    @abc.abstractmethod
    async def lseek(self, handle: BackendHandle, offset: int, whence: int) -> int:
        """SEEK_DATA / SEEK_HOLE (the kernel handles SEEK_SET/CUR/END itself)."""

    @abc.abstractmethod
    async def copy_file_range(
        self,
        handle_in: BackendHandle,
        offset_in: int,
        handle_out: BackendHandle,
        offset_out: int,
        length: int,
    ) -> int: ...

    # -- directories --------------------------------------------------------

    @abc.abstractmethod
    async def listdir(self, obj: BackendObject) -> list[DirEntry]:
        """Every name in the directory except ``.`` and ``..``."""

    async def opendir(self, obj: BackendObject) -> BackendHandle | None:
        """A stream that reads the directory by offsets, or None (the default): the
        core then lists the directory with :meth:`listdir` and keeps the listing.

        A stream is what lets a listing cost nothing between two READDIRs: the
        host's own directory offsets resume it, as virtiofsd resumes getdents64.
        """
        return None

    async def readdir(self, stream: BackendHandle, offset: int) -> Iterator[tuple[DirEntry, int]]:
        """The entries of ``stream`` from ``offset`` (0: the start; else an offset this
        stream gave), ``.`` and ``..`` included, each with the offset that resumes
        after it (a u64). Lazily: the core takes only the entries its reply holds."""
        raise NotImplementedError

    async def releasedir(self, stream: BackendHandle) -> None:
        """Close a stream :meth:`opendir` returned."""
        raise NotImplementedError

    @abc.abstractmethod
    async def fsyncdir(self, obj: BackendObject, datasync: bool) -> None: ...

    # -- whole file system -------------------------------------------------

    @abc.abstractmethod
    async def statfs(self, obj: BackendObject) -> StatFs: ...

    @abc.abstractmethod
    async def syncfs(self) -> None: ...

    # -- extended attributes -----------------------------------------------

    @abc.abstractmethod
    async def setxattr(
        self, obj: BackendObject, name: bytes, value: bytes, flags: int, caller: Caller
    ) -> None: ...

    @abc.abstractmethod
    async def getxattr(self, obj: BackendObject, name: bytes) -> bytes: ...

    @abc.abstractmethod
    async def listxattr(self, obj: BackendObject) -> list[bytes]: ...

    @abc.abstractmethod
    async def removexattr(self, obj: BackendObject, name: bytes, caller: Caller) -> None: ...
