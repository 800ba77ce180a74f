"""Passthrough to a host directory, through file descriptors only.

Every object is an inode reached by an ``O_PATH`` descriptor (as in virtiofsd),
pinned or opened from its file handle for the operation (:mod:`inodes`); every
operation is an ``*at`` call on a single name relative to a directory descriptor,
or acts on the descriptor itself (``AT_EMPTY_PATH``, or ``/proc/self/fd/N``, which names
the inode and is never resolved through the shared tree).  No request name is
ever joined into a host path, and no symlink is followed for the guest:
lookups use ``O_NOFOLLOW`` (and ``openat2(RESOLVE_BENEATH)`` where the kernel
has it), creation uses ``O_NOFOLLOW``, and symlink nodes are never opened.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat as stat_module
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import trio

from hostfs import procfd
from hostfs.backends.local import (
    credentials,
    direct_io,
    dirents,
    file_handles,
    find_paths,
    syscalls,
)
from hostfs.backends.local.fd_budget import FdBudget, set_nofile_limit
from hostfs.backends.local.host_locks import HostLocks
from hostfs.backends.local.inodes import Inode, Inodes
from hostfs.core.backend import Backend
from hostfs.core.modes import SUID_SGID, dirent_type
from hostfs.core.types import Caller, DirEntry, SetattrChanges, Stat, StatFs

T = TypeVar("T")

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_RESOLVE = syscalls.RESOLVE_BENEATH | syscalls.RESOLVE_NO_MAGICLINKS
_REOPEN_DROPPED = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
"""Flags meaningless when re-opening a known inode through /proc/self/fd."""
_OPEN_ALWAYS = os.O_CLOEXEC | os.O_NOCTTY
"""On every open: a tty must never become the daemon's controlling terminal."""
_UNCHANGED: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


_proc = procfd.fd_path


def _require_regular(mode: int) -> None:
    """Open only regular files for I/O (CVE-2020-35517).

    A device node would hand the guest a host device, and open(2) of a FIFO
    blocks until a writer comes.  virtiofsd's ``is_safe_inode`` allows only
    regular files and directories and ``open_inode`` answers EBADF otherwise;
    directories and symlinks get what open(2) itself would answer.
    """
    if stat_module.S_ISREG(mode):
        return
    if stat_module.S_ISDIR(mode):
        code = errno.EISDIR
    elif stat_module.S_ISLNK(mode):
        code = errno.ELOOP
    else:
        code = errno.EBADF
    raise OSError(code, f"not a regular file: {os.strerror(code)}")


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
        self,
        root_fd: int,
        thread_pool_size: int = 0,
        fds: FdBudget | None = None,
        inode_file_handles: str = file_handles.DEFAULT_MODE,
        hot_fds: int | None = None,
    ) -> None:
        self._root_fd = root_fd
        self._fds = fds if fds is not None else FdBudget.from_rlimit()
        """Every fd the guest makes the backend hold (nodes that pin one, open files,
        directory streams) is counted here and refused beyond the budget (fd_budget.py)."""
        self._inodes = Inodes(inode_file_handles, root_fd, self._fds, hot_fds)
        """``hot_fds``: how many nodes known by handle keep an fd (inodes.HOT_FDS)."""
        self._fd = self._inodes.fd
        self._is_root = os.geteuid() == 0
        self.supplementary_groups = self._is_root and credentials.can_set_groups()
        """A daemon in a user namespace whose setgroups is ``deny`` (one own id mapped)
        cannot give a caller groups, so it does not offer FUSE_CREATE_SUPP_GROUP."""
        self._use_openat2 = syscalls.has_openat2()
        self._limiter = trio.CapacityLimiter(thread_pool_size) if thread_pool_size else None
        self.calls_in_loop = self._limiter is None
        self._dirent_buffer = dirents.Buffer()
        self._root_path: bytes | None = None
        """The share's path as /proc/self/fd names it, for path_of."""

    @classmethod
    def from_path(
        cls,
        path: str,
        thread_pool_size: int = 0,
        rlimit_nofile: int | None = None,
        inode_file_handles: str = file_handles.DEFAULT_MODE,
        hot_fds: int | None = None,
    ) -> LocalBackend:
        """Open ``path`` as the shared directory; OSError if it is not one.

        ``rlimit_nofile`` is ``--rlimit-nofile`` (fd_budget.set_nofile_limit); the
        fd budget is what the resulting soft limit leaves. ``inode_file_handles``
        is ``--inode-file-handles`` (file_handles.MODES); HandlesUnavailable when
        ``mandatory`` cannot be had.
        """
        root_fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            set_nofile_limit(rlimit_nofile)
            fds = FdBudget.from_rlimit()
            return cls(root_fd, thread_pool_size, fds, inode_file_handles, hot_fds)
        except BaseException:
            os.close(root_fd)
            raise

    def _acting_as(self, caller: Caller) -> contextlib.AbstractContextManager[None]:
        """The host kernel's permission checks for ``caller`` on the calls made
        inside (see :mod:`credentials`).  Free when nothing would change: a
        root caller (the common case), or a daemon that is not root and so
        acts as its own user whoever asks."""
        if not self._is_root or (caller.uid == 0 and caller.gid == 0):
            return _UNCHANGED
        groups = caller.groups if self.supplementary_groups else ()
        return credentials.acting_as(caller.uid, caller.gid, groups)

    async def _blocking(self, function: Callable[..., T], *args: object) -> T:
        if self._limiter is None:
            return function(*args)
        return await trio.to_thread.run_sync(
            functools.partial(function, *args), limiter=self._limiter
        )

    # -- lifetime -----------------------------------------------------------

    async def root(self) -> tuple[Inode, Stat]:
        fd = self._fds.open(
            os.open, _proc(self._root_fd), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        )
        return Inode(fd), Stat.from_os(os.stat(fd))

    def forget(self, obj: Inode) -> None:
        self._inodes.release(obj)

    def same_object(self, known: Inode, found: Inode) -> bool:
        return self._inodes.same(known, found)

    async def names_object(self, parent: Inode, name: bytes, obj: Inode) -> bool:
        if self._inodes.identifies(obj):
            return True
        # A cold node by handle: its inode may be gone and the number reused. The
        # handle of the name now settles it (it carries the inode's generation), and
        # if it is the node's, the node's inode lived at the stat before it too.
        with self._fd(parent) as parent_fd:
            try:
                return file_handles.name_to_handle(parent_fd, name) == obj.handle
            except OSError:
                return False

    async def path_of(self, obj: Inode) -> bytes | None:
        """Where ``/proc/self/fd`` says the inode is, below the share's own path there,
        and only if that name still leads to the very inode (virtiofsd's
        ``--migration-confirm-paths`` check, always on): a file renamed, removed (the
        link then ends in `` (deleted)``) or out of reach has no path."""
        with self._fd(obj) as fd:
            where = os.readlink(os.fsencode(_proc(fd)))
            prefix = self._root_prefix(where)
            if prefix is None or where == prefix:
                return None
            path = where[len(prefix) :]
            try:
                named = os.stat(path, dir_fd=self._root_fd, follow_symlinks=False)
            except OSError:
                return None
            st = os.stat(fd)
        return path if (named.st_dev, named.st_ino) == (st.st_dev, st.st_ino) else None

    def _root_prefix(self, where: bytes) -> bytes | None:
        """The share's own path + ``/`` if ``where`` lies below it: kept from the last
        call (one readlink for a whole migration), read again if the share moved."""
        for fresh in (False, True):
            if fresh or self._root_path is None:
                root = os.readlink(os.fsencode(_proc(self._root_fd)))
                self._root_path = root if root.endswith(b"/") else root + b"/"
            if where.startswith(self._root_path):
                return self._root_path
        return None

    async def find_paths(self, objs: Sequence[Inode]) -> list[bytes | None]:
        """A walk of the share (find_paths.py): for inodes whose fd, opened from their file
        handle, got a disconnected dentry that /proc/self/fd cannot name."""
        wanted: dict[tuple[int, int], file_handles.FileHandle | None] = {}
        keys: list[tuple[int, int] | None] = []
        for obj in objs:
            try:
                with self._fd(obj) as fd:
                    st = os.stat(fd)
            except OSError:
                keys.append(None)  # a handle of a file that is gone (ESTALE)
                continue
            keys.append((st.st_dev, st.st_ino))
            wanted[(st.st_dev, st.st_ino)] = obj.handle
        found = find_paths.find_paths(self._root_fd, wanted)
        return [None if key is None else found.get(key) for key in keys]

    def host_locks(self) -> HostLocks:
        """Guest locks as OFD and flock locks on the shared files (host_locks.py)."""
        return HostLocks(self._fds)

    async def close(self) -> None:
        self._inodes.close()
        os.close(self._root_fd)

    # -- names --------------------------------------------------------------

    def _open_path(self, parent: int, name: bytes) -> int:
        if self._use_openat2:
            return self._fds.open(syscalls.openat2, parent, name, _PATH_FLAGS, 0, _RESOLVE)
        return self._fds.open(os.open, name, _PATH_FLAGS, dir_fd=parent)

    def _lookup(self, parent: int, name: bytes) -> tuple[Inode, Stat]:
        fd = self._open_path(parent, name)
        try:
            st = Stat.from_os(os.stat(fd))
        except BaseException:
            self._fds.close(fd)
            raise
        return self._inodes.adopt(fd, st), st

    async def lookup(self, parent: Inode, name: bytes) -> tuple[Inode, Stat]:
        with self._fd(parent) as parent_fd:
            return self._lookup(parent_fd, name)

    async def stat_name(self, parent: Inode, name: bytes) -> Stat | None:
        # A single component (the core refuses "/", "." and ".."), final symlink
        # not followed: it cannot leave ``parent``, so RESOLVE_BENEATH adds nothing.
        # One syscall that opens nothing: no lease (Inodes.stat), no context to enter.
        return Stat.from_os(self._inodes.stat(parent, name))

    async def getattr(self, obj: Inode, handle: int | None = None) -> Stat:
        if handle is not None:
            return Stat.from_os(os.stat(handle))
        return Stat.from_os(self._inodes.stat(obj))

    async def setattr(
        self, obj: Inode, changes: SetattrChanges, handle: int | None, caller: Caller
    ) -> Stat:
        with self._fd(obj) as fd:
            return self._setattr(fd, changes, handle, caller)

    def _setattr(
        self, obj: int, changes: SetattrChanges, handle: int | None, caller: Caller
    ) -> Stat:
        mode = changes.mode
        if mode is not None and changes.kill_suidgid and self._drops_privileges_only(obj, mode):
            # FATTR_KILL_SUIDGID, which the core turned into this mode: the
            # kernel drops the bits for a write or truncate by anyone who may
            # write (should_remove_suid), not only the owner, so not as the caller.
            self._chmod(obj, handle, mode)
            mode = None
        with self._acting_as(caller):
            if mode is not None:
                self._chmod(obj, handle, mode)
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
                now = {
                    n for n, v in (("atime", changes.atime), ("mtime", changes.mtime)) if v == "now"
                }
                atime = changes.atime if isinstance(changes.atime, int) else None
                mtime = changes.mtime if isinstance(changes.mtime, int) else None
                syscalls.utimens_empty_path(obj, atime, mtime, now)
        return Stat.from_os(os.stat(obj))

    @staticmethod
    def _drops_privileges_only(obj: int, mode: int) -> bool:
        """Whether ``mode`` is the current mode less setuid/setgid bits."""
        current = stat_module.S_IMODE(os.stat(obj).st_mode)
        new = stat_module.S_IMODE(mode)
        return new & ~current == 0 and (current ^ new) & ~SUID_SGID == 0

    @staticmethod
    def _chmod(obj: int, handle: int | None, mode: int) -> None:
        if handle is not None:
            os.fchmod(handle, mode)
        elif stat_module.S_ISLNK(os.stat(obj).st_mode):
            raise OSError(errno.EOPNOTSUPP, "symlinks have no mode of their own")
        else:
            os.chmod(_proc(obj), mode)

    async def readlink(self, obj: Inode) -> bytes:
        with self._fd(obj) as fd:
            return os.readlink(b"", dir_fd=fd)

    def _settle(self, fd: int, mode: int | None) -> Stat:
        """Give a new object exactly the permission bits requested: the kernel
        applied the caller's umask already (no FUSE_DONT_MASK), so this
        process's own umask must not apply again.  Its owner is right already:
        it was created under the caller's filesystem ids (:meth:`_acting_as`),
        and the host kernel gave it a setgid directory's group."""
        st = os.stat(fd)
        if mode is not None and stat_module.S_IMODE(st.st_mode) & 0o777 != mode & 0o777:
            os.chmod(_proc(fd), stat_module.S_IMODE(st.st_mode) & 0o7000 | mode & 0o777)
            st = os.stat(fd)
        return Stat.from_os(st)

    def _new_object(self, parent: int, name: bytes, mode: int | None) -> tuple[Inode, Stat]:
        """Pin and settle ``name``, just created in ``parent``; undo it on failure."""
        fd = self._open_path(parent, name)
        try:
            st = self._settle(fd, mode)
        except BaseException:
            self._fds.close(fd)
            if stat_module.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                os.rmdir(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)
            raise
        return self._inodes.adopt(fd, st), st

    async def mknod(
        self, parent: Inode, name: bytes, mode: int, rdev: int, caller: Caller
    ) -> tuple[Inode, Stat]:
        if (stat_module.S_ISCHR(mode) or stat_module.S_ISBLK(mode)) and caller.uid != 0:
            # mknod(2): device nodes need CAP_MKNOD, which only root callers hold.
            raise OSError(errno.EPERM, "only root may create device nodes")
        return self._make(
            parent, name, caller, mode, lambda fd: os.mknod(name, mode, rdev, dir_fd=fd)
        )

    async def mkdir(
        self, parent: Inode, name: bytes, mode: int, caller: Caller
    ) -> tuple[Inode, Stat]:
        return self._make(parent, name, caller, mode, lambda fd: os.mkdir(name, mode, dir_fd=fd))

    async def symlink(
        self, parent: Inode, name: bytes, target: bytes, caller: Caller
    ) -> tuple[Inode, Stat]:
        return self._make(
            parent, name, caller, None, lambda fd: os.symlink(target, name, dir_fd=fd)
        )

    def _make(
        self,
        parent: Inode,
        name: bytes,
        caller: Caller,
        mode: int | None,
        make: Callable[[int], None],
    ) -> tuple[Inode, Stat]:
        """Create ``name`` with ``make(parent_fd)``: refused first if the fd budget has
        no room for the new node (so nothing is left behind), made under the caller's
        ids, then pinned and given exactly ``mode``."""
        self._fds.check()
        with self._fd(parent) as parent_fd:
            with self._acting_as(caller):
                make(parent_fd)
            return self._new_object(parent_fd, name, mode)

    async def link(
        self, obj: Inode, new_parent: Inode, new_name: bytes, caller: Caller
    ) -> tuple[Inode, Stat]:
        self._fds.check()
        with self._fd(obj) as fd, self._fd(new_parent) as parent_fd:
            with self._acting_as(caller):
                if self._is_root and caller.uid == 0:
                    syscalls.linkat_empty_path(fd, parent_fd, new_name)
                else:
                    # AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (which a filesystem uid
                    # other than 0 drops); the magic link needs nothing.
                    os.link(_proc(fd), new_name, dst_dir_fd=parent_fd, follow_symlinks=True)
            return self._lookup(parent_fd, new_name)

    async def unlink(self, parent: Inode, name: bytes) -> None:
        with self._fd(parent) as parent_fd:
            os.unlink(name, dir_fd=parent_fd)

    async def rmdir(self, parent: Inode, name: bytes) -> None:
        with self._fd(parent) as parent_fd:
            os.rmdir(name, dir_fd=parent_fd)

    async def rename(
        self, parent: Inode, name: bytes, new_parent: Inode, new_name: bytes, flags: int
    ) -> None:
        with self._fd(parent) as old_fd, self._fd(new_parent) as new_fd:
            if flags:
                syscalls.renameat2(old_fd, name, new_fd, new_name, flags)
            else:
                os.rename(name, new_name, src_dir_fd=old_fd, dst_dir_fd=new_fd)

    # -- files --------------------------------------------------------------

    async def open(self, obj: Inode, flags: int, caller: Caller) -> int:
        # The type of an inode never changes, so the fstat of its O_PATH object
        # decides for the open that follows.
        with self._fd(obj) as fd:
            _require_regular(os.fstat(fd).st_mode)
            return self._fds.open(os.open, _proc(fd), (flags & ~_REOPEN_DROPPED) | _OPEN_ALWAYS)

    async def create(
        self, parent: Inode, name: bytes, flags: int, mode: int, caller: Caller
    ) -> tuple[Inode, Stat, int]:
        with self._fd(parent) as parent_fd:
            return self._create(parent_fd, name, flags, mode, caller)

    def _create(
        self, parent: int, name: bytes, flags: int, mode: int, caller: Caller
    ) -> tuple[Inode, Stat, int]:
        # O_EXCL never follows a symlink nor opens an existing FIFO or device.
        flags = flags | _OPEN_ALWAYS | os.O_NOFOLLOW
        self._fds.check(2)  # the open file and the node's O_PATH fd
        with self._acting_as(caller):
            try:
                handle = self._fds.open(os.open, name, flags | os.O_EXCL, mode, dir_fd=parent)
            except FileExistsError:
                if flags & os.O_EXCL:
                    raise
                return self._open_existing(parent, name, flags)
        try:
            st = self._settle(handle, mode)
            inode = self._inodes.adopt_open(handle, st)
        except BaseException:
            self._fds.close(handle)
            raise
        if inode is not None:
            return inode, st, handle
        try:
            obj = self._fds.open(os.open, _proc(handle), os.O_PATH | os.O_CLOEXEC)
        except BaseException:
            self._fds.close(handle)
            raise
        try:
            return self._inodes.adopt(obj, st), st, handle
        except BaseException:
            self._fds.close(handle)
            raise

    def _open_existing(self, parent: int, name: bytes, flags: int) -> tuple[Inode, Stat, int]:
        """CREATE without O_EXCL of a name that exists: pin it, check it is a
        regular file, and open that very inode, so no rename can swap in a FIFO
        or a device between the check and the open."""
        obj = self._open_path(parent, name)
        try:
            _require_regular(os.fstat(obj).st_mode)
            handle = self._fds.open(os.open, _proc(obj), flags & ~_REOPEN_DROPPED)
        except BaseException:
            self._fds.close(obj)
            raise
        st = Stat.from_os(os.fstat(handle))
        return self._inodes.adopt(obj, st), st, handle

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

    async def opendir(self, obj: Inode) -> DirStream:
        with self._fd(obj) as fd:
            return DirStream(self._fds.open(self._open_dir, fd))

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

    async def listdir(self, obj: Inode) -> list[DirEntry]:
        with self._fd(obj) as path_fd:
            fd = self._open_dir(path_fd)
        try:
            with os.scandir(fd) as scan:
                return [DirEntry(os.fsencode(e.name), e.inode(), _dtype(e)) for e in scan]
        finally:
            os.close(fd)

    async def fsyncdir(self, obj: Inode, datasync: bool) -> None:
        with self._fd(obj) as path_fd:
            fd = self._open_dir(path_fd)
        try:
            await self._blocking(os.fdatasync if datasync else os.fsync, fd)
        finally:
            os.close(fd)

    # -- whole file system -------------------------------------------------

    async def statfs(self, obj: Inode) -> StatFs:
        with self._fd(obj) as fd:
            st = os.fstatvfs(fd)
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

    async def setxattr(
        self, obj: Inode, name: bytes, value: bytes, flags: int, caller: Caller
    ) -> None:
        with self._fd(obj) as fd, self._acting_as(caller):
            os.setxattr(_proc(fd), name, value, flags)

    async def getxattr(self, obj: Inode, name: bytes) -> bytes:
        with self._fd(obj) as fd:
            return os.getxattr(_proc(fd), name)

    async def listxattr(self, obj: Inode) -> list[bytes]:
        with self._fd(obj) as fd:
            return [os.fsencode(name) for name in os.listxattr(_proc(fd))]

    async def removexattr(self, obj: Inode, name: bytes, caller: Caller) -> None:
        with self._fd(obj) as fd, self._acting_as(caller):
            os.removexattr(_proc(fd), name)


def _dtype(entry: os.DirEntry[str]) -> int:
    """DT_* from the directory entry itself; a stat only for the rare special files."""
    if entry.is_symlink():
        return dirent_type(stat_module.S_IFLNK)
    if entry.is_dir(follow_symlinks=False):
        return dirent_type(stat_module.S_IFDIR)
    if entry.is_file(follow_symlinks=False):
        return dirent_type(stat_module.S_IFREG)
    return dirent_type(entry.stat(follow_symlinks=False).st_mode)
