"""The contract between the translation core and a storage backend.

It lives in the core because the core is what calls it: backends depend on the
core (this module, :mod:`hostfs.core.types`), never the other way round.

A backend performs operations on *its own objects*; it knows nothing of FUSE
nodeids, lookup counts or file-handle numbers, which the core keeps.  Objects
and open handles are opaque to the core: whatever the backend returns from
:meth:`Backend.lookup` comes back as ``obj`` in later calls, and whatever
:meth:`Backend.open` returns comes back as ``handle``.

Ownership: every object a call returns beside a :class:`Stat` (lookup, mknod,
mkdir, symlink, link, create) passes to the core, which counts the kernel's
lookups of it and calls :meth:`Backend.forget` exactly once: when the kernel
has forgotten every lookup and no open handle still uses it, or when the
session ends.  When the core already holds an
object with the same (st_dev, st_ino) and :meth:`Backend.same_object` says it
is that one, the core keeps its own and forgets the new one at once.  A handle
from :meth:`Backend.open` or :meth:`Backend.create` is the core's until it calls
:meth:`Backend.release`, a stream from :meth:`Backend.opendir` until
:meth:`Backend.releasedir`; objects passed *in* are only borrowed for the call.

Errors are raised as :class:`OSError` with ``errno`` set; the core turns them
into FUSE error replies unchanged.  Only :meth:`Backend.root`,
:meth:`Backend.lookup`, :meth:`Backend.getattr`, :meth:`Backend.forget` and
:meth:`Backend.close` are required.  Every other operation has a default that
answers what a file system without it answers, so a backend writes only what
it supports: ENOSYS where the kernel then stops asking and falls back on its
own (CREATE becomes MKNOD + OPEN, copy_file_range a plain copy, SEEK_DATA sees
one extent, an xattr call EOPNOTSUPP for every later one), EOPNOTSUPP where it
would pass ENOSYS on to a program, which reads that as "no such system call".

Every name is a single path component already checked by the core (no ``/``,
not empty, not ``.``/``..``).

Methods are async so that each backend chooses where work runs: the local
backend does cheap syscalls inline, the NFS backend hops to a pool of libnfs
contexts in worker threads.
"""

from __future__ import annotations

import abc
import errno
import os
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn, Protocol

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

    def held(self) -> tuple[list[tuple[int, int, Lock]], list[tuple[int, int, int]]]:
        """(key, owner, lock) record locks and (key, owner, type) flocks held: migration."""
        ...


class NameMissing(FileNotFoundError):
    """ENOENT from what the backend knows of a directory, not from asking the storage:
    true for ``valid_for`` more seconds, so the kernel must not cache it longer
    (the core shortens the negative entry's timeout to it)."""

    def __init__(self, name: bytes, valid_for: float) -> None:
        super().__init__(errno.ENOENT, os.strerror(errno.ENOENT), os.fsdecode(name))
        self.valid_for = valid_for


def _unsupported(code: int, operation: str) -> NoReturn:
    raise OSError(code, f"{operation}: {os.strerror(code)}")


class Backend(abc.ABC):
    """Operations on one shared directory tree."""

    calls_wait: bool = True
    """Whether a call can wait on something outside the event loop's control (a
    server, a slow device) for long enough that FUSE_INTERRUPT should cancel it.
    A backend whose calls always finish promptly says False, and is spared the
    per-request cancel scope that interrupting needs."""

    calls_in_loop: bool = False
    """Whether every call is made in the event loop's own thread and never yields to
    it (no worker thread, no server round trip): a transport may then serve such a
    request in its own task, since nothing else could run meanwhile anyway."""

    supplementary_groups: bool = False
    """Whether creating (create, mknod, mkdir, symlink) honours ``Caller.groups``, so that
    a caller in the parent's group only through a supplementary group passes the host's
    permission check (FUSE_CREATE_SUPP_GROUP)."""

    # -- lifetime -----------------------------------------------------------

    @abc.abstractmethod
    async def root(self) -> tuple[BackendObject, Stat]:
        """The shared directory itself.  The core asks once per session, holds the
        object for the whole session (the kernel never forgets nodeid 1) and
        forgets it just before :meth:`close`."""

    @abc.abstractmethod
    def forget(self, obj: BackendObject) -> None:
        """The core holds no more references to ``obj``: release what it pins.

        Called once per object a call returned, never while a handle opened on it
        is open; it must not fail, since nobody is left to tell."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything (the core has already released handles and objects)."""

    def trust_names_for(self, seconds: float) -> None:
        """Told once by the core: how long the backend may answer a name from what it
        knows instead of asking the storage (:class:`NameMissing`).  The ``--cache``
        entry timeout where the policy says nothing else changes the share
        (``CachePolicy.sole_client``), else 0: ask every time."""
        return None

    def same_object(self, known: BackendObject, found: BackendObject) -> bool:
        """Whether ``found``, just returned with the same (st_dev, st_ino) as the object
        ``known`` the core holds, is that object, and not a newer one that reuses its
        inode number (then the core gives it a node of its own; else it keeps
        ``known`` and forgets ``found`` at once).

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

    async def path_of(self, obj: BackendObject) -> bytes | None:
        """``obj``'s path relative to the share, by which another daemon over the same
        storage finds it again (live migration, hostfs.migration); None when it has
        none left (removed while open), or the backend cannot tell."""
        return None

    async def find_paths(self, objs: Sequence[BackendObject]) -> list[bytes | None]:
        """Paths of objects :meth:`path_of` could not name, found by searching the share
        (None where not found): slower, and only for those."""
        return [None] * len(objs)

    # -- names --------------------------------------------------------------

    @abc.abstractmethod
    async def lookup(self, parent: BackendObject, name: bytes) -> tuple[BackendObject, Stat]:
        """Find ``name`` in ``parent`` without following a final symlink.

        The object is the core's from now on (one lookup counted, see the module
        docstring); ENOENT when there is no such name."""

    async def stat_name(self, parent: BackendObject, name: bytes) -> Stat | None:
        """The attributes of ``name`` in ``parent`` (no final symlink followed), without
        making an object for it: when the core already holds an object with that
        (st_dev, st_ino), it answers a lookup with that one.

        None, the default, makes the core always :meth:`lookup`; a backend returns
        a Stat only where (st_dev, st_ino) can identify an object the core holds,
        which the core then asks :meth:`names_object` of.
        """
        return None

    def held_attributes(self, obj: BackendObject) -> Stat | None:
        """``obj``'s attributes if the backend holds them fresh enough that
        :meth:`getattr` would answer with them without a call (the NFS backend's
        post-op attributes, a few ms old); None, the default, asks :meth:`getattr`.

        Not a coroutine: a GETATTR answered this way cannot wait, so the core serves it
        without the cancel scope an interruptible request needs (half of its cost).
        """
        return None

    @abc.abstractmethod
    async def getattr(self, obj: BackendObject, handle: BackendHandle | None = None) -> Stat:
        """``obj``'s attributes now (through ``handle``, an open file of it, when
        given).  Required: the core needs them for each reply's attributes and
        for FUSE_ACCESS."""

    async def setattr(
        self,
        obj: BackendObject,
        changes: SetattrChanges,
        handle: BackendHandle | None,
        caller: Caller,
    ) -> Stat:
        """Apply ``changes`` (through ``handle`` when given) and return the new stat.
        EOPNOTSUPP by default: nothing can be changed."""
        _unsupported(errno.EOPNOTSUPP, "setattr")

    async def readlink(self, obj: BackendObject) -> bytes:
        """The target of the symlink ``obj`` (the core has checked it is one).
        EOPNOTSUPP by default, for a backend that reports no symlinks."""
        _unsupported(errno.EOPNOTSUPP, "readlink")

    async def mknod(
        self, parent: BackendObject, name: bytes, mode: int, rdev: int, caller: Caller
    ) -> tuple[BackendObject, Stat]:
        """Create a regular file, fifo, socket or device node owned by ``caller``; the
        object is the core's, as from :meth:`lookup`.  EEXIST if ``name`` exists;
        EOPNOTSUPP by default."""
        _unsupported(errno.EOPNOTSUPP, "mknod")

    async def mkdir(
        self, parent: BackendObject, name: bytes, mode: int, caller: Caller
    ) -> tuple[BackendObject, Stat]:
        """Create a directory owned by ``caller``, as :meth:`mknod` does a file."""
        _unsupported(errno.EOPNOTSUPP, "mkdir")

    async def symlink(
        self, parent: BackendObject, name: bytes, target: bytes, caller: Caller
    ) -> tuple[BackendObject, Stat]:
        """Create a symlink to ``target`` owned by ``caller``, as :meth:`mknod` does."""
        _unsupported(errno.EOPNOTSUPP, "symlink")

    async def link(
        self, obj: BackendObject, new_parent: BackendObject, new_name: bytes, caller: Caller
    ) -> tuple[BackendObject, Stat]:
        """A hard link to ``obj``: the returned object (usually ``obj`` again, or one
        :meth:`same_object` matches to it) counts one more lookup of its node."""
        _unsupported(errno.EOPNOTSUPP, "link")

    async def unlink(self, parent: BackendObject, name: bytes) -> None:
        """Remove a non-directory name; objects the core holds for it stay valid
        until forgotten (open files keep working).  EOPNOTSUPP by default."""
        _unsupported(errno.EOPNOTSUPP, "unlink")

    async def rmdir(self, parent: BackendObject, name: bytes) -> None:
        """Remove an empty directory (ENOTEMPTY otherwise).  EOPNOTSUPP by default."""
        _unsupported(errno.EOPNOTSUPP, "rmdir")

    async def rename(
        self,
        parent: BackendObject,
        name: bytes,
        new_parent: BackendObject,
        new_name: bytes,
        flags: int,
    ) -> None:
        """``renameat2``: ``flags`` is 0, RENAME_NOREPLACE (1) or RENAME_EXCHANGE (2);
        EINVAL for flags the backend cannot honour.  EOPNOTSUPP by default."""
        _unsupported(errno.EOPNOTSUPP, "rename")

    # -- files --------------------------------------------------------------

    async def open(self, obj: BackendObject, flags: int, caller: Caller) -> BackendHandle:
        """Open for I/O; ``flags`` are open(2) flags (no O_CREAT).  The handle is the
        core's until :meth:`release`.  EOPNOTSUPP by default, not ENOSYS: the
        kernel would take ENOSYS for "no open needed" and send I/O without one."""
        _unsupported(errno.EOPNOTSUPP, "open")

    async def create(
        self, parent: BackendObject, name: bytes, flags: int, mode: int, caller: Caller
    ) -> tuple[BackendObject, Stat, BackendHandle]:
        """Create and open ``name`` (O_CREAT, plus O_EXCL if given) owned by ``caller``:
        the object as from :meth:`mknod`, the handle as from :meth:`open`.

        ENOSYS by default: the kernel then creates with MKNOD and opens with OPEN.
        """
        _unsupported(errno.ENOSYS, "create")

    async def read(self, handle: BackendHandle, offset: int, buffers: Sequence[memoryview]) -> int:
        """Fill ``buffers`` in order from ``offset``; return the bytes read (short at EOF).
        The buffers are guest memory, borrowed for the call only."""
        _unsupported(errno.EOPNOTSUPP, "read")

    async def write(self, handle: BackendHandle, offset: int, buffers: Sequence[memoryview]) -> int:
        """Write ``buffers`` in order at ``offset``; return the bytes written.
        Borrowed as in :meth:`read`; EOPNOTSUPP by default."""
        _unsupported(errno.EOPNOTSUPP, "write")

    async def flush(self, handle: BackendHandle) -> None:
        """close(2) of one descriptor of the handle: surface deferred write errors.

        Nothing by default, a backend that defers nothing: ENOSYS would make the
        kernel stop sending FLUSH, and the core drops the closer's POSIX locks there.
        """
        return None

    async def fsync(self, handle: BackendHandle, datasync: bool) -> None:
        """Make the file's data (and with ``datasync`` False, its metadata) durable.
        ENOSYS by default: the kernel then lets every fsync(2) succeed."""
        _unsupported(errno.ENOSYS, "fsync")

    async def release(self, handle: BackendHandle) -> None:
        """The last reference to the handle is gone: close it.  Nothing by default,
        for handles that hold nothing; it must not fail."""
        return None

    def passthrough_fd(self, handle: BackendHandle) -> int | None:
        """A host descriptor the kernel may read and write itself for ``handle``
        (FUSE passthrough), or None where the data is not in a host file."""
        return None

    async def fallocate(self, handle: BackendHandle, mode: int, offset: int, length: int) -> None:
        """fallocate(2) ``mode`` (FALLOC_FL_*) over the range.  ENOSYS by default: the
        kernel then answers EOPNOTSUPP to every later call itself."""
        _unsupported(errno.ENOSYS, "fallocate")

    async def lseek(self, handle: BackendHandle, offset: int, whence: int) -> int:
        """SEEK_DATA / SEEK_HOLE (the kernel handles SEEK_SET/CUR/END itself); ENXIO
        past the end.  ENOSYS by default: the kernel then sees no holes."""
        _unsupported(errno.ENOSYS, "lseek")

    async def copy_file_range(
        self,
        handle_in: BackendHandle,
        offset_in: int,
        handle_out: BackendHandle,
        offset_out: int,
        length: int,
    ) -> int:
        """Copy up to ``length`` bytes between two open files; return how many.
        ENOSYS by default: the kernel then copies through read and write."""
        _unsupported(errno.ENOSYS, "copy_file_range")

    # -- directories --------------------------------------------------------

    async def listdir(self, obj: BackendObject) -> list[DirEntry]:
        """Every name in the directory except ``.`` and ``..``, made no objects for.
        EOPNOTSUPP by default, for a backend whose :meth:`opendir` gives streams."""
        _unsupported(errno.EOPNOTSUPP, "listdir")

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
        after it (a u64). Lazily: the core takes only the entries its reply holds.
        Required of a backend whose :meth:`opendir` returns streams."""
        raise NotImplementedError

    async def releasedir(self, stream: BackendHandle) -> None:
        """Close a stream :meth:`opendir` returned (required with :meth:`readdir`)."""
        raise NotImplementedError

    async def fsyncdir(self, obj: BackendObject, datasync: bool) -> None:
        """Make the directory's entries durable.  ENOSYS by default: the kernel then
        lets every fsync(2) of a directory succeed."""
        _unsupported(errno.ENOSYS, "fsyncdir")

    # -- whole file system -------------------------------------------------

    async def statfs(self, obj: BackendObject) -> StatFs:
        """The file system holding ``obj``.  By default an empty one with 255-byte
        names, rather than an error: df and statvfs(2) callers would fail on ENOSYS,
        and the kernel has no fallback for it."""
        return StatFs(
            blocks=0, bfree=0, bavail=0, files=0, ffree=0, bsize=512, namelen=255, frsize=512
        )

    async def syncfs(self) -> None:
        """syncfs(2) of the whole share.  ENOSYS by default: the kernel then stops
        asking and lets syncfs succeed."""
        _unsupported(errno.ENOSYS, "syncfs")

    # -- extended attributes -----------------------------------------------
    #
    # ENOSYS by default, as the core answers with --xattr off: the kernel then stops
    # asking and answers EOPNOTSUPP itself.  ENODATA is "no such attribute".

    async def setxattr(
        self, obj: BackendObject, name: bytes, value: bytes, flags: int, caller: Caller
    ) -> None:
        """Set ``name`` (XATTR_CREATE/XATTR_REPLACE in ``flags``: EEXIST/ENODATA)."""
        _unsupported(errno.ENOSYS, "setxattr")

    async def getxattr(self, obj: BackendObject, name: bytes) -> bytes:
        """The whole value of ``name``; ENODATA if there is none."""
        _unsupported(errno.ENOSYS, "getxattr")

    async def listxattr(self, obj: BackendObject) -> list[bytes]:
        """Every attribute name of ``obj`` (the core filters and encodes them)."""
        _unsupported(errno.ENOSYS, "listxattr")

    async def removexattr(self, obj: BackendObject, name: bytes, caller: Caller) -> None:
        """Remove ``name``; ENODATA if there is none."""
        _unsupported(errno.ENOSYS, "removexattr")
