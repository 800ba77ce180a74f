"""Passthrough to a host directory, through file descriptors only.

Every object is an ``O_PATH`` descriptor (as in virtiofsd); every operation is
an ``*at`` call on a single name relative to a directory descriptor, or acts on
the descriptor itself (``AT_EMPTY_PATH``, or ``/proc/self/fd/N``, which names
the inode and is never resolved through the shared tree).  No request name is
ever joined into a host path, and no symlink is followed for the guest:
lookups use ``O_NOFOLLOW`` (and ``openat2(RESOLVE_BENEATH)`` where the kernel
has it), creation uses ``O_NOFOLLOW``, and symlink nodes are never opened.
"""

from __future__ import annotations

import errno
import functools
import os
import stat as stat_module
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import trio

from hostfs.backends.base import Backend
from hostfs.backends.local import direct_io, dirents, procfd, syscalls
from hostfs.backends.local.fd_budget import FdBudget, set_nofile_limit
from hostfs.core.types import Caller, DirEntry, SetattrChanges, Stat, StatFs

T = TypeVar("T")

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_RESOLVE = syscalls.RESOLVE_BENEATH | syscalls.RESOLVE_NO_MAGICLINKS
_REOPEN_DROPPED = os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_NOFOLLOW
"""Flags meaningless when re-opening a known inode through /proc/self/fd."""


_proc = procfd.fd_path


class DirStream:
    """An open directory read by getdents64 offsets: the fd and where it stands."""

    __slots__ = ("fd", "position", "reads", "wanted")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.position: int | None = 0
        """The loff_t the fd is at, None when unknown (lseek before the next read)."""
        self.reads = 0
        """getdents64 calls so far: a listing that finds none but its own since its
        last read knows the fd stands after the last entry it read."""
        self.wanted = dirents.FIRST_READ
        """Bytes of host entries the last READDIR took: the next one reads about that
        much first (a READDIRPLUS reply holds a quarter of what a READDIR holds)."""


class LocalBackend(Backend):
    """A host directory shared as it is.

    ``thread_pool_size`` follows virtiofsd's ``--thread-pool-size``: 0 (its
    default) runs every syscall inline on the trio thread, which measures
    fastest for a single stream; N > 0 moves data I/O and syncs to up to N
    worker threads so that slow disks do not stall other requests.
    """

    calls_wait = False
    """Inline syscalls finish promptly, and a worker thread cannot be cancelled."""

    def __init__(
        self, root_fd: int, thread_pool_size: int = 0, fds: FdBudget | None = None
    ) -> None:
        self._root_fd = root_fd
        self._fds = fds if fds is not None else FdBudget.from_rlimit()
        """Every fd the guest makes the backend hold (nodes, open files, directory
        streams) is counted here and refused beyond the budget (fd_budget.py)."""
        self._is_root = os.geteuid() == 0
        self._use_openat2 = syscalls.has_openat2()
        self._limiter = trio.CapacityLimiter(thread_pool_size) if thread_pool_size else None
        self._dirent_buffer = dirents.Buffer()

    @classmethod
    def from_path(
        cls, path: str, thread_pool_size: int = 0, rlimit_nofile: int | None = None
    ) -> LocalBackend:
        """Open ``path`` as the shared directory; OSError if it is not one.

        ``rlimit_nofile`` is ``--rlimit-nofile`` (fd_budget.set_nofile_limit); the
        fd budget is what the resulting soft limit leaves.
        """
        root_fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        set_nofile_limit(rlimit_nofile)
        return cls(root_fd, thread_pool_size, FdBudget.from_rlimit())

    async def _blocking(self, function: Callable[..., T], *args: object) -> T:
        if self._limiter is None:
            return function(*args)
        return await trio.to_thread.run_sync(
            functools.partial(function, *args), limiter=self._limiter
        )

    # -- lifetime -----------------------------------------------------------

    async def root(self) -> tuple[int, Stat]:
        fd = self._fds.open(
            os.open, _proc(self._root_fd), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        )
        return fd, Stat.from_os(os.stat(fd))

    def forget(self, obj: int) -> None:
        self._fds.close(obj)

    async def close(self) -> None:
        os.close(self._root_fd)

    # -- names --------------------------------------------------------------

    def _open_path(self, parent: int, name: bytes) -> int:
        if self._use_openat2:
            return self._fds.open(syscalls.openat2, parent, name, _PATH_FLAGS, 0, _RESOLVE)
        return self._fds.open(os.open, name, _PATH_FLAGS, dir_fd=parent)

    def _lookup(self, parent: int, name: bytes) -> tuple[int, Stat]:
        fd = self._open_path(parent, name)
        try:
            return fd, Stat.from_os(os.stat(fd))
        except BaseException:
            self._fds.close(fd)
            raise

    async def lookup(self, parent: int, name: bytes) -> tuple[int, Stat]:
        return self._lookup(parent, name)

    async def stat_name(self, parent: int, name: bytes) -> Stat:
        # A single component (the core refuses "/", "." and ".."), final symlink
        # not followed: it cannot leave ``parent``, so RESOLVE_BENEATH adds nothing.
        return Stat.from_os(os.stat(name, dir_fd=parent, follow_symlinks=False))

    async def getattr(self, obj: int, handle: int | None = None) -> Stat:
        return Stat.from_os(os.stat(obj if handle is None else handle))

    async def setattr(
        self, obj: int, changes: SetattrChanges, handle: int | None, caller: Caller
    ) -> Stat:
        if changes.mode is not None:
            if handle is not None:
                os.fchmod(handle, changes.mode)
            elif stat_module.S_ISLNK(os.stat(obj).st_mode):
                raise OSError(errno.EOPNOTSUPP, "symlinks have no mode of their own")
            else:
                os.chmod(_proc(obj), changes.mode)
        if changes.uid is not None or changes.gid is not None:
            uid = -1 if changes.uid is None else changes.uid
            gid = -1 if changes.gid is None else changes.gid
            syscalls.fchown_empty_path(obj, uid, gid)
        if changes.size is not None:
            if handle is not None:
                os.ftruncate(handle, changes.size)
            else:
                os.truncate(_proc(obj), changes.size)
        if changes.atime is not None or changes.mtime is not None:
            now = {n for n, v in (("atime", changes.atime), ("mtime", changes.mtime)) if v == "now"}
            atime = changes.atime if isinstance(changes.atime, int) else None
            mtime = changes.mtime if isinstance(changes.mtime, int) else None
            syscalls.utimens_empty_path(obj, atime, mtime, now)
        return Stat.from_os(os.stat(obj))

    async def readlink(self, obj: int) -> bytes:
        return os.readlink(b"", dir_fd=obj)

    def _settle(self, parent: int, fd: int, caller: Caller, mode: int | None) -> Stat:
        """Make a new object what its creator asked for, as on a local file system.

        It belongs to the caller (in a setgid directory the group comes from the
        directory, as the host kernel already arranged), and it has exactly the
        permission bits requested: the kernel applied the caller's umask already
        (no FUSE_DONT_MASK), so this process's own umask must not apply again.
        """
        if self._is_root:
            gid = -1 if os.stat(parent).st_mode & stat_module.S_ISGID else caller.gid
            if caller.uid != 0 or gid not in (-1, 0):
                syscalls.fchown_empty_path(fd, caller.uid, gid)
        st = os.stat(fd)
        if mode is not None and stat_module.S_IMODE(st.st_mode) & 0o777 != mode & 0o777:
            os.chmod(_proc(fd), stat_module.S_IMODE(st.st_mode) & 0o7000 | mode & 0o777)
            st = os.stat(fd)
        return Stat.from_os(st)

    def _new_object(
        self, parent: int, name: bytes, caller: Caller, mode: int | None
    ) -> tuple[int, Stat]:
        """Pin and settle ``name``, just created in ``parent``; undo it on failure."""
        fd = self._open_path(parent, name)
        try:
            return fd, self._settle(parent, fd, caller, mode)
        except BaseException:
            self._fds.close(fd)
            if stat_module.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                os.rmdir(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)
            raise

    async def mknod(
        self, parent: int, name: bytes, mode: int, rdev: int, caller: Caller
    ) -> tuple[int, Stat]:
        self._fds.check()
        os.mknod(name, mode, rdev, dir_fd=parent)
        return self._new_object(parent, name, caller, mode)

    async def mkdir(self, parent: int, name: bytes, mode: int, caller: Caller) -> tuple[int, Stat]:
        self._fds.check()
        os.mkdir(name, mode, dir_fd=parent)
        return self._new_object(parent, name, caller, mode)

    async def symlink(
        self, parent: int, name: bytes, target: bytes, caller: Caller
    ) -> tuple[int, Stat]:
        self._fds.check()
        os.symlink(target, name, dir_fd=parent)
        return self._new_object(parent, name, caller, None)

    async def link(self, obj: int, new_parent: int, new_name: bytes) -> tuple[int, Stat]:
        self._fds.check()
        if self._is_root:
            syscalls.linkat_empty_path(obj, new_parent, new_name)
        else:
            # AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the magic link needs nothing.
            os.link(_proc(obj), new_name, dst_dir_fd=new_parent, follow_symlinks=True)
        return self._lookup(new_parent, new_name)

    async def unlink(self, parent: int, name: bytes) -> None:
        os.unlink(name, dir_fd=parent)

    async def rmdir(self, parent: int, name: bytes) -> None:
        os.rmdir(name, dir_fd=parent)

    async def rename(
        self, parent: int, name: bytes, new_parent: int, new_name: bytes, flags: int
    ) -> None:
        if flags:
            syscalls.renameat2(parent, name, new_parent, new_name, flags)
        else:
            os.rename(name, new_name, src_dir_fd=parent, dst_dir_fd=new_parent)

    # -- files --------------------------------------------------------------

    async def open(self, obj: int, flags: int, caller: Caller) -> int:
        return self._fds.open(os.open, _proc(obj), (flags & ~_REOPEN_DROPPED) | os.O_CLOEXEC)

    async def create(
        self, parent: int, name: bytes, flags: int, mode: int, caller: Caller
    ) -> tuple[int, Stat, int]:
        # O_NOFOLLOW: a symlink planted under ``name`` must not redirect the create.
        flags = (flags & ~os.O_NOCTTY) | os.O_CLOEXEC | os.O_NOFOLLOW
        self._fds.check(2)  # the open file and the node's O_PATH fd
        try:
            handle = self._fds.open(os.open, name, flags | os.O_EXCL, mode, dir_fd=parent)
            created = True
        except FileExistsError:
            if flags & os.O_EXCL:
                raise
            handle = self._fds.open(os.open, name, flags & ~os.O_CREAT, mode, dir_fd=parent)
            created = False
        try:
            obj = self._fds.open(os.open, _proc(handle), os.O_PATH | os.O_CLOEXEC)
        except BaseException:
            self._fds.close(handle)
            raise
        if created:
            return obj, self._settle(parent, obj, caller, mode), handle
        return obj, Stat.from_os(os.stat(handle)), handle

    def passthrough_fd(self, handle: int) -> int:
        return handle

    async def read(self, handle: int, offset: int, buffers: Sequence[memoryview]) -> int:
        if not buffers:
            return 0
        return await self._blocking(direct_io.preadv, handle, buffers, offset)

    async def write(self, handle: int, offset: int, buffers: Sequence[memoryview]) -> int:
        if not buffers:
            return 0
        return await self._blocking(direct_io.pwritev, handle, buffers, offset)

    async def flush(self, handle: int) -> None:
        # close() of a duplicate reports deferred write errors without closing the handle.
        os.close(os.dup(handle))

    async def fsync(self, handle: int, datasync: bool) -> None:
        await self._blocking(os.fdatasync if datasync else os.fsync, handle)

    async def release(self, handle: int) -> None:
        self._fds.close(handle)

    async def fallocate(self, handle: int, mode: int, offset: int, length: int) -> None:
        await self._blocking(syscalls.fallocate, handle, mode, offset, length)

    async def lseek(self, handle: int, offset: int, whence: int) -> int:
        return os.lseek(handle, offset, whence)

    async def copy_file_range(
        self, handle_in: int, offset_in: int, handle_out: int, offset_out: int, length: int
    ) -> int:
        return await self._blocking(
            os.copy_file_range, handle_in, handle_out, length, offset_in, offset_out
        )

    # -- directories --------------------------------------------------------

    def _open_dir(self, obj: int) -> int:
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=obj)

    async def opendir(self, obj: int) -> DirStream:
        return DirStream(self._fds.open(self._open_dir, obj))

    async def readdir(self, stream: DirStream, offset: int) -> Iterator[tuple[DirEntry, int]]:
        return self._read_stream(stream, dirents.to_seek_offset(offset))

    def _read_stream(self, stream: DirStream, offset: int) -> Iterator[tuple[DirEntry, int]]:
        """getdents64 from ``offset`` on, lseek only where the fd is elsewhere: a
        listing read straight through costs one getdents64 per READDIR."""
        size = dirents.first_read(stream.wanted)
        taken = 0
        while True:
            if stream.position != offset:
                os.lseek(stream.fd, offset, os.SEEK_SET)
            data = self._dirent_buffer.read(stream.fd, size)
            stream.reads += 1
            mine = stream.reads
            stream.position = None
            if not data:
                return  # at the end a file system may park the fd anywhere
            for entry, d_off, length in dirents.entries(data):
                taken += length
                stream.wanted = taken
                yield entry, dirents.to_fuse_offset(d_off)
                offset = d_off
            if stream.reads == mine:
                stream.position = offset  # where getdents64 left it (filldir64)
            size = min(2 * size, dirents.LARGEST_READ)

    async def releasedir(self, stream: DirStream) -> None:
        self._fds.close(stream.fd)
        stream.fd = -1  # a READDIR still under way gets EBADF, never a reused fd number

    async def listdir(self, obj: int) -> list[DirEntry]:
        fd = self._open_dir(obj)
        try:
            with os.scandir(fd) as scan:
                return [DirEntry(os.fsencode(e.name), e.inode(), _dtype(e)) for e in scan]
        finally:
            os.close(fd)

    async def fsyncdir(self, obj: int, datasync: bool) -> None:
        fd = self._open_dir(obj)
        try:
            await self._blocking(os.fdatasync if datasync else os.fsync, fd)
        finally:
            os.close(fd)

    # -- whole file system -------------------------------------------------

    async def statfs(self, obj: int) -> StatFs:
        st = os.fstatvfs(obj)
        return StatFs(
            blocks=st.f_blocks,
            bfree=st.f_bfree,
            bavail=st.f_bavail,
            files=st.f_files,
            ffree=st.f_ffree,
            bsize=st.f_bsize,
            namelen=st.f_namemax,
            frsize=st.f_frsize,
        )

    async def syncfs(self) -> None:
        fd = self._open_dir(self._root_fd)
        try:
            await self._blocking(syscalls.syncfs, fd)
        finally:
            os.close(fd)

    # -- extended attributes -----------------------------------------------
    # Through /proc/self/fd/N: the magic link lands on the inode itself, so a
    # symlink node gets its own attributes (as lsetxattr would), never its target's.

    async def setxattr(self, obj: int, name: bytes, value: bytes, flags: int) -> None:
        os.setxattr(_proc(obj), name, value, flags)

    async def getxattr(self, obj: int, name: bytes) -> bytes:
        return os.getxattr(_proc(obj), name)

    async def listxattr(self, obj: int) -> list[bytes]:
        return [os.fsencode(name) for name in os.listxattr(_proc(obj))]

    async def removexattr(self, obj: int, name: bytes) -> None:
        os.removexattr(_proc(obj), name)


def _dtype(entry: os.DirEntry[str]) -> int:
    """DT_* from the directory entry itself; a stat only for the rare special files."""
    if entry.is_symlink():
        return stat_module.S_IFLNK >> 12
    if entry.is_dir(follow_symlinks=False):
        return stat_module.S_IFDIR >> 12
    if entry.is_file(follow_symlinks=False):
        return stat_module.S_IFREG >> 12
    return stat_module.S_IFMT(entry.stat(follow_symlinks=False).st_mode) >> 12
