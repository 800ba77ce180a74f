"""The FUSE translation core: FUSE semantics on top of a :class:`Backend`.

Every transport (the FUSE codec behind /dev/fuse and vhost-user, the pyfuse3
adapter) calls these methods; none of them re-implements a FUSE rule.
Errors are raised as :class:`OSError` with ``errno`` set.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_module
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager

from hostfs.core.backend import Backend, BackendHandle, BackendObject, NameMissing
from hostfs.core.handles import HandleTable, OpenDir, OpenFile
from hostfs.core.idmap import translate_callers
from hostfs.core.locks import FlockTable, LockTable
from hostfs.core.modes import SUID_SGID, dirent_type, without_privileges
from hostfs.core.nodes import ROOT_NODEID, Node, NodeTable
from hostfs.core.options import FsOptions
from hostfs.core.permissions import check_access, check_xattr_write, xattr_visible
from hostfs.core.readonly import make_read_only
from hostfs.core.snapshots import SnapshotCache
from hostfs.core.types import (
    AttrReply,
    Caller,
    DirEntry,
    Entry,
    Lock,
    Opened,
    SetattrChanges,
    Stat,
    StatFs,
    build,
)

__all__ = ["ROOT_NODEID", "FileSystem", "ReaddirAdd"]

log = logging.getLogger(__name__)

NO_ATTRIBUTES = Stat(*(0,) * len(Stat._fields))
"""The attributes of a negative entry: the kernel reads none of them."""

ReaddirAdd = Callable[[bytes, int, int, int, "Entry | None"], bool]
"""``add(name, ino, dtype, next_offset, entry) -> fits``.

Called once per directory entry, in order.  ``entry`` is None for a plain
READDIR and for ``.``/``..`` in READDIRPLUS (encoded as nodeid 0: "no
lookup").  Returning False means the reply buffer is full: the entry was not
sent, the core takes back the lookup it counted for it, and stops.  Raising
abandons the reply: the core takes back every lookup of the call.
"""

_DT_DIR = dirent_type(stat_module.S_IFDIR)
RENAME_NOREPLACE = 1 << 0
RENAME_EXCHANGE = 1 << 1
"""renameat2(2) flags (linux/fs.h); FUSE_RENAME2 passes them unchanged."""

_OPEN_FLAGS_DROPPED = os.O_CREAT | os.O_EXCL | os.O_NOCTTY
"""open(2) flags that make no sense once a node exists (libfuse drops them too)."""


def check_name(name: bytes) -> bytes:
    """A single path component from the guest: never a path, never ``.``/``..``."""
    # find, not ``in``: bytes.__contains__ tries the operand as an int first, and the
    # TypeError it makes and drops costs ~1900 instructions a test (callgrind).
    if not name or name.find(b"/") >= 0 or name.find(b"\0") >= 0 or name in (b".", b".."):
        raise OSError(errno.EINVAL, f"invalid name {name!r}")
    return name


class FileSystem:
    """One shared tree as FUSE sees it: nodes, handles, locks and cache policy."""

    def __init__(self, backend: Backend, options: FsOptions | None = None) -> None:
        self.backend = backend
        self.options = options or FsOptions()
        self.nodes = NodeTable(backend.forget, backend.same_object)
        self.files: HandleTable[OpenFile] = HandleTable(self.nodes)
        self.dirs: HandleTable[OpenDir] = HandleTable(self.nodes)
        self.snapshots = SnapshotCache()
        self.posix_locks = LockTable()
        self.flocks = FlockTable()
        cache = self.options.cache
        backend.trust_names_for(cache.entry_timeout if cache.sole_client else 0.0)
        self.host_locks = backend.host_locks() if self.options.host_locks else None
        """The backend's locks, shared with every client of the storage; when None
        the core's tables above keep them, for this daemon only."""
        self._root: Node | None = None
        self._open_flags_dropped = _OPEN_FLAGS_DROPPED | self.options.open_flags_dropped
        """open(2) flags the host's open never sees, worked out once (OPEN, CREATE)."""
        if self.options.writeback:
            # With the writeback cache the kernel computes append offsets itself;
            # a host-side O_APPEND would put the data somewhere else.
            self._open_flags_dropped |= os.O_APPEND
        if self.options.readonly:
            make_read_only(self)
        if not self.options.ids.is_identity:
            translate_callers(self, self.options.ids)

    @property
    def supplementary_groups(self) -> bool:
        """Whether the backend creates with a caller's supplementary groups (INIT then
        offers FUSE_CREATE_SUPP_GROUP; see Backend.supplementary_groups)."""
        return self.backend.supplementary_groups

    @property
    def calls_wait(self) -> bool:
        """Whether requests other than a waiting lock can wait long (see Backend.calls_wait)."""
        return self.backend.calls_wait

    @property
    def calls_in_loop(self) -> bool:
        """Whether requests other than a waiting lock never yield (see Backend.calls_in_loop)."""
        return self.backend.calls_in_loop

    # -- lifetime -----------------------------------------------------------

    async def start(self) -> None:
        """Resolve the root; call once before the first request."""
        obj, st = await self.backend.root()
        self._root = self.nodes.set_root(obj, st)

    async def init(self) -> None:
        """FUSE_INIT: a new session begins; whatever an old one left behind is gone."""
        await self.destroy()

    async def destroy(self) -> None:
        """FUSE_DESTROY or device reset: flush and release every handle, forget every node."""
        self.posix_locks.release_all()
        self.flocks.release_all()
        if self.host_locks is not None:
            self.host_locks.release_all()
        await self.files.remove_all(self._close_quietly)
        await self.dirs.remove_all(self._release_dir)
        self.nodes.forget_all()

    async def close(self) -> None:
        """Shut down: destroy, then close the backend."""
        await self.destroy()
        if self._root is not None:
            self.backend.forget(self._root.obj)
            self._root = None
        await self.backend.close()

    async def _close_quietly(self, open_file: OpenFile) -> None:
        try:
            await self.backend.flush(open_file.handle)
        except OSError as error:
            log.warning("flush at session end: %s", error)
        finally:
            await self.backend.release(open_file.handle)

    def _release_file(self, open_file: OpenFile) -> Awaitable[None]:
        """The table's close: the backend's own coroutine, not one more around it."""
        return self.backend.release(open_file.handle)

    # -- helpers ------------------------------------------------------------

    def _entry(self, obj: BackendObject, st: Stat) -> Entry:
        return self._entry_of(self.nodes.remember(obj, st), st)

    def _entry_of(self, node: Node, st: Stat) -> Entry:
        """The entry of ``node``, whose lookup the caller just counted."""
        cache = self.options.cache
        guest_st = self.options.ids.stat_to_guest(st)
        return build(
            Entry,
            (node.nodeid, NodeTable.GENERATION, guest_st, cache.entry_timeout, cache.attr_timeout),
        )

    def _attr(self, node: Node, st: Stat) -> AttrReply:
        node.mode = st.mode
        return build(
            AttrReply, (self.options.ids.stat_to_guest(st), self.options.cache.attr_timeout)
        )

    def _dir(self, nodeid: int) -> Node:
        node = self.nodes.get(nodeid)
        if not stat_module.S_ISDIR(node.mode):  # Node.is_dir, without a property's call
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return node

    def _opened(self, fh: int, *, is_dir: bool = False) -> Opened:
        cache = self.options.cache
        if is_dir:
            # FOPEN_CACHE_DIR alone is dropped at the next opendir (fuse_dir_open
            # invalidates the pages without FOPEN_KEEP_CACHE); virtiofsd sets both.
            return Opened(fh, cache_dir=cache.cache_dir, keep_cache=cache.cache_dir)
        # Opened(fh, direct_io=..., keep_cache=...) for every OPEN and CREATE.
        return build(Opened, (fh, cache.direct_io, cache.keep_cache, False, False))

    @asynccontextmanager
    async def _optional_file(
        self, fh: int | None, nodeid: int
    ) -> AsyncIterator[BackendHandle | None]:
        """Borrow open file ``fh`` if the request names one (SETATTR with FATTR_FH)."""
        if fh is None:
            yield None
        else:
            async with self.files.borrow(fh, nodeid) as open_file:
                yield open_file.handle

    def _require_xattr(self) -> None:
        if not self.options.xattr:
            # ENOSYS makes the kernel stop asking and answer EOPNOTSUPP itself.
            raise OSError(errno.ENOSYS, "extended attributes are off (--xattr)")

    def _require_locks(self) -> None:
        if not (self.options.locks or self.options.flock):
            raise OSError(errno.ENOSYS, "locks are off")

    # -- names --------------------------------------------------------------

    async def lookup(self, caller: Caller, parent: int, name: bytes) -> Entry:
        return self._entry(*await self._find(self._dir(parent).obj, check_name(name)))

    async def lookup_entry(self, caller: Caller, parent: int, name: bytes) -> Entry:
        """LOOKUP as a FUSE transport answers it: a missing name is a negative entry
        (nodeid 0, no lookup counted) the kernel may trust for the ``--cache`` entry
        timeout, so it asks the backend again only when the timeout runs out.

        fuse.h, ``struct fuse_entry_out``: "if the entry is a negative entry ...
        nodeid 0" (fuse_lookup_name turns it into a negative dentry valid for
        entry_valid); libfuse's ``negative_timeout`` and the Linux NFS client's
        lookup cache (``lookupcache=all``, the default) do the same.  With a 0 s
        timeout (``--cache never``) there is nothing to cache: ENOENT as before.
        """
        directory = self._dir(parent).obj
        try:
            # lookup()'s steps, one coroutine fewer (and one fewer for the miss to unwind)
            found = await self._find(directory, check_name(name))
        except FileNotFoundError as missing:
            timeout = self.options.cache.entry_timeout
            if isinstance(missing, NameMissing):
                timeout = min(timeout, missing.valid_for)
            if not timeout:
                raise
            return build(Entry, (0, 0, NO_ATTRIBUTES, timeout, 0.0))
        return self._entry(*found)

    async def _find(self, parent: BackendObject, name: bytes) -> tuple[BackendObject, Stat]:
        """Look ``name`` up, reusing the object of a node the core already holds.

        The kernel looks a name up again whenever its entry times out, and
        READDIRPLUS looks up every entry: mostly objects the core holds already.
        A stat by name finds those without pinning a new object (an O_PATH open
        and close for the local backend); a name not known yet, or a backend that
        cannot tell by key, takes the full lookup.
        """
        st = await self.backend.stat_name(parent, name)
        if st is not None:
            node = self.nodes.find(st.dev, st.ino)
            if node is not None and await self.backend.names_object(parent, name, node.obj):
                return node.obj, st
        return await self.backend.lookup(parent, name)

    def forget(self, nodeid: int, nlookup: int) -> None:
        self.nodes.forget(nodeid, nlookup)

    def batch_forget(self, items: Iterable[tuple[int, int]]) -> None:
        for nodeid, nlookup in items:
            self.nodes.forget(nodeid, nlookup)

    def held_attr(self, nodeid: int) -> AttrReply | None:
        """A stat(2)'s GETATTR (no fh) from attributes the backend holds, without a call
        that could wait (Backend.held_attributes); None: serve it with :meth:`getattr`,
        which also answers a nodeid that is not known."""
        try:
            node = self.nodes.get(nodeid)
        except OSError:
            return None
        st = self.backend.held_attributes(node.obj)
        return None if st is None else self._attr(node, st)

    async def getattr(self, caller: Caller, nodeid: int, fh: int | None = None) -> AttrReply:
        node = self.nodes.get(nodeid)
        if fh is None:  # a stat(2), not an fstat(2): nothing to borrow
            return self._attr(node, await self.backend.getattr(node.obj))
        async with self.files.borrow(fh, nodeid) as open_file:
            return self._attr(node, await self.backend.getattr(node.obj, open_file.handle))

    async def setattr(
        self, caller: Caller, nodeid: int, changes: SetattrChanges, fh: int | None = None
    ) -> AttrReply:
        node = self.nodes.get(nodeid)
        async with self._optional_file(fh, nodeid) as handle:
            if changes.kill_suidgid and changes.mode is None and node.mode & SUID_SGID:
                # FATTR_KILL_SUIDGID (HANDLE_KILLPRIV_V2): the server drops the bits.
                current = await self.backend.getattr(node.obj, handle)
                changes.mode = stat_module.S_IMODE(without_privileges(current.mode))
            st = await self.backend.setattr(node.obj, changes, handle, caller)
        return self._attr(node, st)

    async def _drop_privileges(self, caller: Caller, node: Node, fh: int) -> None:
        """FATTR_KILL_SUIDGID for a write or truncate the backend did on our behalf.

        Nodes without the bits (nearly all) cost nothing: no backend call.
        """
        if node.mode & SUID_SGID:
            await self.setattr(caller, node.nodeid, SetattrChanges(kill_suidgid=True), fh)

    async def readlink(self, caller: Caller, nodeid: int) -> bytes:
        node = self.nodes.get(nodeid)
        if not node.is_symlink:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return await self.backend.readlink(node.obj)

    async def symlink(self, caller: Caller, parent: int, name: bytes, target: bytes) -> Entry:
        directory = self._dir(parent)
        if not target or b"\0" in target:
            raise OSError(errno.EINVAL, "invalid symlink target")
        obj, st = await self.backend.symlink(directory.obj, check_name(name), target, caller)
        return self._entry(obj, st)

    async def mknod(self, caller: Caller, parent: int, name: bytes, mode: int, rdev: int) -> Entry:
        directory = self._dir(parent)
        obj, st = await self.backend.mknod(directory.obj, check_name(name), mode, rdev, caller)
        return self._entry(obj, st)

    async def mkdir(self, caller: Caller, parent: int, name: bytes, mode: int) -> Entry:
        directory = self._dir(parent)
        obj, st = await self.backend.mkdir(directory.obj, check_name(name), mode, caller)
        return self._entry(obj, st)

    async def unlink(self, caller: Caller, parent: int, name: bytes) -> None:
        await self.backend.unlink(self._dir(parent).obj, check_name(name))

    async def rmdir(self, caller: Caller, parent: int, name: bytes) -> None:
        await self.backend.rmdir(self._dir(parent).obj, check_name(name))

    async def rename(
        self,
        caller: Caller,
        parent: int,
        name: bytes,
        new_parent: int,
        new_name: bytes,
        flags: int = 0,
    ) -> None:
        if flags not in (0, RENAME_NOREPLACE, RENAME_EXCHANGE):
            raise OSError(errno.EINVAL, f"unsupported rename flags {flags:#x}")
        await self.backend.rename(
            self._dir(parent).obj,
            check_name(name),
            self._dir(new_parent).obj,
            check_name(new_name),
            flags,
        )

    async def link(self, caller: Caller, nodeid: int, new_parent: int, new_name: bytes) -> Entry:
        node = self.nodes.get(nodeid)
        if node.is_dir:
            raise OSError(errno.EPERM, "hard links to directories are not allowed")
        directory = self._dir(new_parent)
        obj, st = await self.backend.link(node.obj, directory.obj, check_name(new_name), caller)
        return self._entry(obj, st)

    # -- files --------------------------------------------------------------

    def _open_flags(self, flags: int) -> int:
        return flags & ~self._open_flags_dropped

    async def open(
        self, caller: Caller, nodeid: int, flags: int, kill_suidgid: bool = False
    ) -> Opened:
        node = self.nodes.get(nodeid)
        if node.is_dir:
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        if node.is_symlink:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        self.files.check()
        handle = await self.backend.open(node.obj, self._open_flags(flags), caller)
        opened = self._opened(self.files.add(OpenFile(node, handle, flags)))
        if kill_suidgid and flags & os.O_TRUNC:
            # FUSE_OPEN_KILL_SUIDGID: ATOMIC_O_TRUNC leaves the truncation to us,
            # and the backend truncates with the daemon's privileges: drop the
            # bits as the kernel would have for this caller (no CAP_FSETID).
            await self._drop_privileges(caller, node, opened.fh)
        return opened

    async def create(
        self, caller: Caller, parent: int, name: bytes, mode: int, flags: int
    ) -> tuple[Entry, Opened]:
        directory = self._dir(parent)
        flags = self._open_flags(flags) | os.O_CREAT | (flags & os.O_EXCL)
        self.files.check()
        obj, st, handle = await self.backend.create(
            directory.obj, check_name(name), flags, mode, caller
        )
        node = self.nodes.remember(obj, st)
        return self._entry_of(node, st), self._opened(self.files.add(OpenFile(node, handle, flags)))

    async def read(
        self, caller: Caller, nodeid: int, fh: int, offset: int, buffers: Sequence[memoryview]
    ) -> int:
        if offset < 0:
            raise OSError(errno.EINVAL, "negative offset")
        async with self.files.borrow(fh, nodeid) as open_file:
            return await self.backend.read(open_file.handle, offset, buffers)

    async def write(
        self,
        caller: Caller,
        nodeid: int,
        fh: int,
        offset: int,
        buffers: Sequence[memoryview],
        kill_suidgid: bool = False,
    ) -> int:
        if offset < 0:
            raise OSError(errno.EINVAL, "negative offset")
        async with self.files.borrow(fh, nodeid) as open_file:
            written = await self.backend.write(open_file.handle, offset, buffers)
            if kill_suidgid:
                # FUSE_WRITE_KILL_SUIDGID: a write by an unprivileged caller drops
                # setuid/setgid as the kernel would on a local file system.
                await self._drop_privileges(caller, open_file.node, fh)
        return written

    async def flush(self, caller: Caller, nodeid: int, fh: int, lock_owner: int) -> None:
        async with self.files.borrow(fh, nodeid) as open_file:
            # close(2) drops the closing owner's POSIX locks on the file (fcntl(2)).
            if self.host_locks is not None:
                self.host_locks.release_posix(open_file.node.nodeid, lock_owner)
            else:
                self.posix_locks.release_owner(open_file.node.nodeid, lock_owner)
            await self.backend.flush(open_file.handle)

    async def release(
        self,
        caller: Caller,
        nodeid: int,
        fh: int,
        lock_owner: int = 0,
        flock_release: bool = False,
    ) -> None:
        if flock_release:
            # FUSE_RELEASE_FLOCK_UNLOCK: the last close of the file drops its flock.
            open_file = self.files.get(fh, nodeid)
            if self.host_locks is not None:
                self.host_locks.release_flock(open_file.node.nodeid, lock_owner)
            else:
                self.flocks.release_owner(open_file.node.nodeid, lock_owner)
        await self.files.remove(fh, nodeid, self._release_file)

    def file_nodeid(self, fh: int) -> int:
        """The node open file ``fh`` is of, for a transport told only the fh (pyfuse3)."""
        return self.files.find(fh).node.nodeid

    def dir_nodeid(self, fh: int) -> int:
        """The directory open directory ``fh`` is of (as :meth:`file_nodeid`)."""
        return self.dirs.find(fh).node.nodeid

    def backing_fd(self, fh: int) -> int | None:
        """The host descriptor behind open file ``fh`` when the kernel may do its
        reads and writes itself (FUSE passthrough): regular files only, and not
        setuid/setgid ones, whose bits a write keeps or drops by who the caller
        is (the kernel writes a backing file with the daemon's credentials)."""
        open_file = self.files.find(fh)
        mode = open_file.node.mode
        if not stat_module.S_ISREG(mode) or mode & SUID_SGID:
            return None
        return self.backend.passthrough_fd(open_file.handle)

    async def fsync(self, caller: Caller, nodeid: int, fh: int, datasync: bool) -> None:
        async with self.files.borrow(fh, nodeid) as open_file:
            await self.backend.fsync(open_file.handle, datasync)

    async def fallocate(
        self, caller: Caller, nodeid: int, fh: int, mode: int, offset: int, length: int
    ) -> None:
        if offset < 0 or length <= 0:
            raise OSError(errno.EINVAL, "invalid fallocate range")
        async with self.files.borrow(fh, nodeid) as open_file:
            await self.backend.fallocate(open_file.handle, mode, offset, length)

    async def lseek(self, caller: Caller, nodeid: int, fh: int, offset: int, whence: int) -> int:
        if whence not in (os.SEEK_DATA, os.SEEK_HOLE):
            raise OSError(errno.EINVAL, f"lseek whence {whence} is the kernel's job")
        async with self.files.borrow(fh, nodeid) as open_file:
            return await self.backend.lseek(open_file.handle, offset, whence)

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
    ) -> int:
        if flags:
            raise OSError(errno.EINVAL, "copy_file_range flags must be 0")
        async with (
            self.files.borrow(fh_in, nodeid_in) as file_in,
            self.files.borrow(fh_out, nodeid_out) as file_out,
        ):
            return await self.backend.copy_file_range(
                file_in.handle, offset_in, file_out.handle, offset_out, length
            )

    # -- directories --------------------------------------------------------

    async def opendir(self, caller: Caller, nodeid: int, flags: int) -> Opened:
        node = self._dir(nodeid)
        self.dirs.check()
        stream = await self.backend.opendir(node.obj)
        return self._opened(self.dirs.add(OpenDir(node, stream)), is_dir=True)

    async def _snapshot(self, stream: OpenDir) -> list[DirEntry]:
        node = stream.node
        here = DirEntry(b".", node.key[1], _DT_DIR)
        parent = DirEntry(b"..", node.key[1], _DT_DIR)
        return [here, parent, *await self.backend.listdir(node.obj)]

    async def _listing(self, stream: OpenDir, offset: int) -> Iterator[tuple[DirEntry, int]]:
        """The entries from ``offset`` on, each with the offset that resumes after it."""
        if stream.stream is not None:
            return await self.backend.readdir(stream.stream, offset)
        if offset == 0 or stream.entries is None:
            self.snapshots.keep(stream, await self._snapshot(stream))
        else:
            self.snapshots.touch(stream)
        entries = stream.entries
        assert entries is not None
        if offset < 0 or offset > len(entries):
            raise OSError(errno.EINVAL, f"readdir offset {offset} out of range")
        return ((entries[index], index + 1) for index in range(offset, len(entries)))

    async def readdir(
        self, caller: Caller, nodeid: int, fh: int, offset: int, add: ReaddirAdd, plus: bool
    ) -> None:
        """Send entries from ``offset`` until the reply is full or the directory ends.

        The lookups counted always equal the entries the kernel is told of: a
        lookup that fails after entries were added ends the reply there (a short
        reply; the kernel asks again from the last offset sent, and then gets the
        error), and a reply abandoned for any other reason (``add`` raising, a
        cancel) takes back every lookup it counted, or the kernel could never
        forget those nodes and their fds would stay pinned.
        """
        async with self.dirs.borrow(fh, nodeid) as stream:
            await self._readdir(stream, offset, add, plus)

    async def _readdir(self, stream: OpenDir, offset: int, add: ReaddirAdd, plus: bool) -> None:
        counted: list[int] = []
        sent = 0
        try:
            for (name, ino, dtype), next_offset in await self._listing(stream, offset):
                entry = None
                if plus and name not in (b".", b".."):
                    try:
                        obj, st = await self._find(stream.node.obj, name)
                    except FileNotFoundError:
                        continue  # removed since it was listed: nothing to report
                    except OSError:
                        if sent:
                            return
                        raise
                    entry = self._entry(obj, st)
                    counted.append(entry.nodeid)
                    ino, dtype = st.ino, dirent_type(st.mode)
                if not add(name, ino, dtype, next_offset, entry):
                    if entry is not None:
                        self.nodes.forget(counted.pop(), 1)
                    return
                sent += 1
        except BaseException:
            for counted_nodeid in counted:
                self.nodes.forget(counted_nodeid, 1)
            raise

    async def _release_dir(self, stream: OpenDir) -> None:
        self.snapshots.drop(stream)
        if stream.stream is not None:
            await self.backend.releasedir(stream.stream)

    async def releasedir(self, caller: Caller, nodeid: int, fh: int) -> None:
        await self.dirs.remove(fh, nodeid, self._release_dir)

    async def fsyncdir(self, caller: Caller, nodeid: int, fh: int, datasync: bool) -> None:
        async with self.dirs.borrow(fh, nodeid) as stream:
            await self.backend.fsyncdir(stream.node.obj, datasync)

    # -- whole file system -------------------------------------------------

    async def statfs(self, caller: Caller, nodeid: int) -> StatFs:
        return await self.backend.statfs(self.nodes.get(nodeid).obj)

    async def access(self, caller: Caller, nodeid: int, mask: int) -> None:
        node = self.nodes.get(nodeid)
        check_access(await self.backend.getattr(node.obj), caller, mask)

    async def syncfs(self, caller: Caller) -> None:
        await self.backend.syncfs()

    # -- extended attributes -----------------------------------------------

    async def setxattr(
        self, caller: Caller, nodeid: int, name: bytes, value: bytes, flags: int
    ) -> None:
        self._require_xattr()
        check_xattr_write(caller, name)
        name = self.options.xattrmap.to_server(name)
        await self.backend.setxattr(self.nodes.get(nodeid).obj, name, value, flags, caller)

    async def getxattr(self, caller: Caller, nodeid: int, name: bytes) -> bytes:
        self._require_xattr()
        if not xattr_visible(caller, name):
            raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))
        name = self.options.xattrmap.to_server(name, refused=errno.ENODATA)
        return await self.backend.getxattr(self.nodes.get(nodeid).obj, name)

    async def listxattr(self, caller: Caller, nodeid: int) -> list[bytes]:
        self._require_xattr()
        names = await self.backend.listxattr(self.nodes.get(nodeid).obj)
        return [
            name for name in self.options.xattrmap.to_client(names) if xattr_visible(caller, name)
        ]

    async def removexattr(self, caller: Caller, nodeid: int, name: bytes) -> None:
        self._require_xattr()
        check_xattr_write(caller, name)
        name = self.options.xattrmap.to_server(name)
        await self.backend.removexattr(self.nodes.get(nodeid).obj, name, caller)

    # -- locks ----------------------------------------------------------------

    async def getlk(self, caller: Caller, nodeid: int, fh: int, owner: int, lock: Lock) -> Lock:
        self._require_locks()
        open_file = self.files.get(fh, nodeid)
        if self.host_locks is not None:
            return self.host_locks.getlk(open_file.node.nodeid, open_file.handle, owner, lock)
        return self.posix_locks.getlk(open_file.node.nodeid, owner, lock)

    async def setlk(
        self,
        caller: Caller,
        nodeid: int,
        fh: int,
        owner: int,
        lock: Lock,
        wait: bool,
        flock: bool = False,
    ) -> None:
        self._require_locks()
        open_file = self.files.get(fh, nodeid)
        key = open_file.node.nodeid
        if self.host_locks is not None:
            host = self.host_locks.flock if flock else self.host_locks.setlk
            await host(key, open_file.handle, owner, lock, wait)
            return
        table = self.flocks if flock else self.posix_locks
        await table.setlk(key, owner, lock, wait)
