"""The NFS backend: :class:`~hostfs.core.backend.Backend` over an NFSv3 export.

Lookup, getattr, setattr, open, unlink, create and mkdir where the NFS
filehandle (of the node, or of the parent) is known are one RPC sent from the
event loop (:class:`LoopRpc`); a getattr right after a reply that carried the
attributes (:mod:`.postop`), and flush and release of a file with no unstable
writes, send nothing.  Every other operation becomes one closure run by a
:class:`ContextPool` worker, so a request costs one thread hop however many
RPCs it needs.  Paths come from the :class:`NodeTree` on the event loop thread
before the hop; the tree is updated after the RPCs succeed.  Support table:
``SUPPORT.md`` in this package.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import stat as stat_module
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from hostfs.backends.nfs import rpc3
from hostfs.backends.nfs.counts import total
from hostfs.backends.nfs.deadline import per_request
from hostfs.backends.nfs.libnfs_c import (
    Context,
    IoFailed,
    NfsStat64,
    WriteFailed,
    filehandle_of,
    free_handle,
    open_handle,
)
from hostfs.backends.nfs.listing import Listings, NameChange
from hostfs.backends.nfs.loop import LoopRpc
from hostfs.backends.nfs.nodes import NfsNode, NodeTree
from hostfs.backends.nfs.pool import ContextPool
from hostfs.backends.nfs.silly import is_silly, silly_name
from hostfs.core.backend import Backend, NameMissing
from hostfs.core.modes import without_privileges
from hostfs.core.types import Caller, DirEntry, SetattrChanges, Stat, StatFs

logger = logging.getLogger(__name__)

T = TypeVar("T")

OPEN_FLAGS = os.O_ACCMODE | os.O_TRUNC | os.O_APPEND | os.O_SYNC | os.O_DSYNC
"""What libnfs's nfs_open honours; the rest (O_NOFOLLOW, O_CLOEXEC...) mean nothing to NFS."""

POST_OP_REUSE_NS = 10_000_000
"""How long the attributes a reply carried (:mod:`.postop`) answer a GETATTR without
an RPC: 10 ms.  The kernel's own rule for attributes given with a 0 s timeout
(``--cache never``) is the same in spirit: valid until the clock tick ends
(``time_before64(fi->i_time, jiffies)`` in fuse_permission), up to 10 ms at
HZ=100.  Long enough for the GETATTR the kernel sends right after a create or
unlink invalidated the directory; far shorter than any NFS client's attribute
cache (Linux: acregmin 3 s, acdirmin 30 s).  Changes made through this backend
drop the attributes they touch at once."""

COPY_CHUNK = 1 << 20
"""copy_file_range moves data in 1 MiB pieces: ganesha's default rtmax/wtmax."""


def to_stat(st: NfsStat64) -> Stat:
    def ns(seconds: int, nanoseconds: int) -> int:
        return seconds * 1_000_000_000 + nanoseconds

    return Stat(
        st.dev, st.ino, st.mode, st.nlink, st.uid, st.gid, st.rdev, st.size, st.blocks,
        st.blksize, ns(st.atime, st.atime_nsec), ns(st.mtime, st.mtime_nsec),
        ns(st.ctime, st.ctime_nsec),
    )  # fmt: skip


@dataclass(eq=False, slots=True, weakref_slot=True)
class NfsHandle:
    """An open file: libnfs's ``struct nfsfh`` (it holds the NFS filehandle, not a
    connection, so any context of the pool may use it)."""

    nfsfh: int
    node: NfsNode


@per_request(lambda backend: backend.pool.timeout_ms / 1000)
class NfsBackend(Backend):
    """Each public method is one request with one deadline, the URL's ``timeout=``
    from its start, however many RPCs and waits it takes (:mod:`deadline`)."""

    def __init__(
        self,
        pool: ContextPool,
        fast: LoopRpc,
        root_stat: Stat,
        root_filehandle: bytes,
        owner: Caller,
    ) -> None:
        self.pool = pool
        self.fast = fast
        """Filehandle calls (LOOKUP3, GETATTR3, REMOVE3) straight from the event loop."""
        self.tree = NodeTree(root_stat.ino, root_stat.mode)
        self.tree.root.filehandle = root_filehandle
        self.owner = owner
        """The credentials the contexts send (URL ``uid=``/``gid=``, libnfs's default is ours)."""
        self.reuse_ns = POST_OP_REUSE_NS
        fast.observer = self._observed
        self.listings = Listings()
        """Directories whose every name we know: a missing name costs no LOOKUP3."""
        fast.change_observer = self._dir_changed
        self._open: weakref.WeakSet[NfsHandle] = weakref.WeakSet()
        self._hidden: dict[NfsNode, list[tuple[NfsNode, bytes]]] = {}
        """Open files unlinked while open, and the hidden names they now have."""
        self._silly_counter = random.getrandbits(32)
        """Counts hidden names; random start, so two instances on an export do not collide."""

    # -- lifetime -----------------------------------------------------------

    async def root(self) -> tuple[NfsNode, Stat]:
        return self.tree.root, await self.getattr(self.tree.root)

    def forget(self, obj: NfsNode) -> None:
        self.tree.forget(obj)

    async def path_of(self, obj: NfsNode) -> bytes | None:
        """The path of its first known link (nodes.py), without the leading ``/``.  A
        file unlinked while open has none: its hidden name (silly.py) is removed at
        the source's last close, under the destination's handle."""
        try:
            path = obj.path
        except OSError:
            return None
        if is_silly(path.rpartition(b"/")[2]):
            return None
        return path[1:] or None

    def trust_names_for(self, seconds: float) -> None:
        self.listings.ttl_ns = int(seconds * 1e9)

    def same_object(self, known: NfsNode, found: NfsNode) -> bool:
        """A fileid outlives its file (the server reuses a removed file's), a filehandle
        does not (RFC 1813 §2.6: a removed file's handle is ``NFS3ERR_STALE``): compare
        filehandles, or, where one is unknown, whether the tree matched the same node."""
        if known.filehandle is not None and found.filehandle is not None:
            return known.filehandle == found.filehandle
        return known is found

    def rpc_counts(self) -> Counter[str]:
        """NFS calls made so far, by procedure or libnfs function (:mod:`.counts`)."""
        return total([self.fast.counter, *self.pool.counters])

    async def close(self) -> None:
        self.fast.close()
        self.pool.close()

    # -- attributes the server volunteered (postop.py) ------------------------

    def _observed(self, filehandle: bytes, st: NfsStat64, sent: int) -> None:
        node = self.tree.by_fileid(st.ino)
        if node is not None and node.filehandle == filehandle:
            _remember(node, st, sent)

    def _dir_changed(self, change: NameChange) -> None:
        self.listings.changed(change, time.monotonic_ns())

    def _recent(self, obj: NfsNode) -> NfsStat64 | None:
        """``obj``'s attributes if a reply brought them less than ``reuse_ns`` ago."""
        if obj.attrs is not None and time.monotonic_ns() - obj.attrs_at < self.reuse_ns:
            return obj.attrs
        return None

    # -- names --------------------------------------------------------------

    async def lookup(self, parent: NfsNode, name: bytes) -> tuple[NfsNode, Stat]:
        sent = time.monotonic_ns()
        if parent.filehandle:
            missing_ns = self.listings.missing_for(parent.filehandle, name, sent)
            if missing_ns:
                raise NameMissing(name, missing_ns / 1e9)
            return self._found(parent, name, await self.fast.lookup(parent.filehandle, name), sent)
        path = parent.child_path(name)
        found = await self.pool.run(lambda c: (None, c.lstat(path)))
        return self._found(parent, name, found, sent)

    def _found(
        self, parent: NfsNode, name: bytes, found: tuple[bytes | None, NfsStat64], sent: int
    ) -> tuple[NfsNode, Stat]:
        """The node ``parent/name`` is now, with the attributes the call (sent at
        ``sent``, monotonic ns) returned."""
        filehandle, st = found
        node = self.tree.found(parent, name, st.ino, st.mode, filehandle)
        _remember(node, st, sent)
        return node, to_stat(st)

    def held_attributes(self, obj: NfsNode) -> Stat | None:
        recent = self._recent(obj)
        return None if recent is None else self._fresh(obj, recent)

    async def getattr(self, obj: NfsNode, handle: NfsHandle | None = None) -> Stat:
        held = self.held_attributes(obj)
        if held is not None:
            return held
        sent = time.monotonic_ns()
        # The node's filehandle is the one inside any handle open on it.
        if obj.filehandle:
            st = await self.fast.getattr(obj.filehandle)
        elif handle is not None:
            nfsfh = handle.nfsfh
            st = await self.pool.run(lambda c: c.fstat(nfsfh))
        else:
            path = obj.path
            st = await self.pool.run(lambda c: c.lstat(path))
        _remember(obj, st, sent)
        return self._fresh(obj, st)

    @staticmethod
    def _fresh(obj: NfsNode, st: NfsStat64) -> Stat:
        """Keep the node's mode current: its setgid bit decides how children are made."""
        obj.mode = st.mode
        return to_stat(st)

    async def setattr(
        self,
        obj: NfsNode,
        changes: SetattrChanges,
        handle: NfsHandle | None,
        caller: Caller,
    ) -> Stat:
        filehandle = obj.filehandle or (filehandle_of(handle.nfsfh) if handle is not None else None)
        if filehandle is not None:
            return await self._setattr_by_filehandle(obj, filehandle, changes)
        path, node_filehandle = obj.path, obj.filehandle
        nfsfh = handle.nfsfh if handle is not None else None

        def apply(c: Context) -> NfsStat64:
            mode = changes.mode
            if changes.kill_suidgid and mode is None:
                current = c.fstat(nfsfh) if nfsfh else c.lstat(path)
                mode = _without_suidgid(current.mode)
            if mode is not None:
                c.fchmod(nfsfh, mode & 0o7777) if nfsfh else c.chmod(path, mode & 0o7777)
            if changes.uid is not None or changes.gid is not None:
                uid = -1 if changes.uid is None else changes.uid
                gid = -1 if changes.gid is None else changes.gid
                c.fchown(nfsfh, uid, gid) if nfsfh else c.chown(path, uid, gid)
            if changes.size is not None:
                c.ftruncate(nfsfh, changes.size) if nfsfh else c.truncate(path, changes.size)
            if changes.atime is not None or changes.mtime is not None:
                c.utimes(path, _times(c, path, changes))
            return c.fstat(nfsfh) if nfsfh else _stat(c, node_filehandle, path)

        sent = time.monotonic_ns()
        try:
            st = await self.pool.run(apply)
        except BaseException:
            _stale(obj)
            raise
        _remember(obj, st, sent)
        return self._fresh(obj, st)

    async def _setattr_by_filehandle(
        self, obj: NfsNode, filehandle: bytes, changes: SetattrChanges
    ) -> Stat:
        """One SETATTR3 from the event loop for every change, its reply's post-op
        attributes as the answer (the path API walks, then sends a SETATTR per
        attribute and a GETATTR).  Times keep microseconds, as the path API's
        ``struct timeval`` did, so a node with and without a filehandle agree."""
        mode = changes.mode
        if changes.kill_suidgid and mode is None:
            mode = _without_suidgid((await self.fast.getattr(filehandle)).mode)
        atime, mtime = (
            change - change % 1000 if isinstance(change, int) else change
            for change in (changes.atime, changes.mtime)
        )
        sent = time.monotonic_ns()
        try:
            st = await self.fast.setattr(
                filehandle,
                None if mode is None else mode & 0o7777,
                changes.uid,
                changes.gid,
                changes.size,
                atime,
                mtime,
            )
        except BaseException:
            _stale(obj)
            raise
        _remember(obj, st, sent)
        return self._fresh(obj, st)

    async def readlink(self, obj: NfsNode) -> bytes:
        path = obj.path
        return await self.pool.run(lambda c: c.readlink(path))

    async def mknod(
        self, parent: NfsNode, name: bytes, mode: int, rdev: int, caller: Caller
    ) -> tuple[NfsNode, Stat]:
        sent = time.monotonic_ns()
        filehandle = self._fast_parent(parent) if stat_module.S_ISREG(mode) else None
        if filehandle is not None:
            made = await self.fast.create(filehandle, name, mode & 0o7777, *self._ids(caller))
            return self._found(parent, name, made, sent)
        path = parent.child_path(name)

        def make(c: Context) -> tuple[bytes | None, NfsStat64]:
            if stat_module.S_ISREG(mode):
                c.close(c.create(path, os.O_WRONLY | os.O_EXCL, mode & 0o7777))
            else:
                before = c.connection()
                try:
                    c.mknod(path, mode, rdev)
                except FileExistsError:
                    found = c.lstat(path)
                    if c.connection() == before or found.mode != mode or found.rdev != rdev:
                        raise
                    # MKNOD sent again after a reconnect: the first one made it.
            return self._own(c, parent, name, path, caller)

        return self._found(parent, name, await self._changing(make, parent), sent)

    async def mkdir(
        self, parent: NfsNode, name: bytes, mode: int, caller: Caller
    ) -> tuple[NfsNode, Stat]:
        sent = time.monotonic_ns()
        filehandle = self._fast_parent(parent)
        if filehandle is not None:
            made = await self.fast.mkdir(filehandle, name, mode & 0o7777, *self._ids(caller))
            self.listings.made(made[0], made[1], time.monotonic_ns())
            return self._found(parent, name, made, sent)
        path = parent.child_path(name)

        def make(c: Context) -> tuple[bytes | None, NfsStat64]:
            before = c.connection()
            try:
                c.mkdir(path, mode & 0o7777)
            except FileExistsError:
                if c.connection() == before or not stat_module.S_ISDIR(c.lstat(path).mode):
                    raise
                # MKDIR sent again after a reconnect: the first one made it.
            return self._own(c, parent, name, path, caller)

        return self._found(parent, name, await self._changing(make, parent), sent)

    async def symlink(
        self, parent: NfsNode, name: bytes, target: bytes, caller: Caller
    ) -> tuple[NfsNode, Stat]:
        sent = time.monotonic_ns()
        path = parent.child_path(name)

        def make(c: Context) -> tuple[bytes | None, NfsStat64]:
            before = c.connection()
            try:
                c.symlink(target, path)
            except FileExistsError:
                if c.connection() == before or c.readlink(path) != target:
                    raise
                # SYMLINK sent again after a reconnect: the first one made it.
            return self._own(c, parent, name, path, caller)

        return self._found(parent, name, await self._changing(make, parent), sent)

    async def _changing(self, call: Callable[[Context], T], *changed: NfsNode | None) -> T:
        """``call`` in a worker; the attributes of the ``changed`` nodes the tree knew
        are dropped once it is done (or failed): the server's changed them."""
        try:
            return await self.pool.run(call)
        finally:
            _stale(*changed)
            for node in changed:
                if node is not None:
                    self.listings.forget(node.filehandle)

    def _fast_parent(self, parent: NfsNode) -> bytes | None:
        """The parent's filehandle when a new child can be made by one RPC on the event
        loop: the filehandle is known, and the parent is not setgid (then the child's
        group is the parent's, which is not at hand: the path API and :meth:`_own` do it)."""
        return None if parent.mode & stat_module.S_ISGID else parent.filehandle

    def _ids(self, caller: Caller) -> tuple[int | None, int | None]:
        """uid and gid for a new object's sattr3: None where the RPC's credentials
        (``self.owner``) already give the caller's, so an unprivileged hostfs never
        asks the server for a chown."""
        uid = None if caller.uid == self.owner.uid else caller.uid
        gid = None if caller.gid == self.owner.gid else caller.gid
        return uid, gid

    def _own(
        self, c: Context, parent: NfsNode, name: bytes, path: bytes, caller: Caller
    ) -> tuple[bytes | None, NfsStat64]:
        """Give a new object to its creator (the contexts create as ``self.owner``).

        NFSv3 CREATE/MKDIR carry no owner libnfs lets us set, so this is a
        SETATTR after the fact; a setgid parent keeps its group, as in Linux.
        Runs in a worker: reads only the parent's filehandle and mode, set before.
        """
        filehandle, st = _child(c, parent.filehandle, name, path)
        gid = st.gid if parent.mode & stat_module.S_ISGID else caller.gid
        if (st.uid, st.gid) != (caller.uid, gid):
            c.chown(path, caller.uid, gid)
            st = _stat(c, filehandle, path)
        return filehandle, st

    async def link(
        self, obj: NfsNode, new_parent: NfsNode, new_name: bytes, caller: Caller
    ) -> tuple[NfsNode, Stat]:
        old, new = obj.path, new_parent.child_path(new_name)

        def make(c: Context) -> NfsStat64:
            before = c.connection()
            try:
                c.link(old, new)
            except FileExistsError:
                if c.connection() == before or c.lstat(new).ino != c.lstat(old).ino:
                    raise
                # LINK sent again after a reconnect: the first one made it.
            return c.lstat(new)

        st = await self._changing(make, obj, new_parent)
        self.tree.linked(obj, new_parent, new_name)
        return obj, to_stat(st)

    async def unlink(self, parent: NfsNode, name: bytes) -> None:
        node = self.tree.child(parent, name)
        if node is not None and node.opened:
            await self._hide(parent, name, node)
            return
        await self._remove(parent, name)

    async def _remove(self, parent: NfsNode, name: bytes) -> None:
        child = self.tree.child(parent, name)
        if parent.filehandle:
            # REMOVE3's reply brings the directory's new attributes (postop.py).
            try:
                await self.fast.remove(parent.filehandle, name)
            finally:
                _stale(child)
        else:
            path = parent.child_path(name)
            await self._changing(lambda c: _resent_ok(c, c.unlink, path), parent, child)
        self.tree.removed(parent, name)

    async def _hide(self, parent: NfsNode, name: bytes, node: NfsNode) -> None:
        """Unlink an open file by renaming it to a hidden name (:mod:`silly`), removed
        at its last release, so the open handles keep reading and writing it."""
        self._silly_counter += 1
        hidden = silly_name(node.ino, self._silly_counter)
        old, new = parent.child_path(name), parent.child_path(hidden)
        await self._changing(lambda c: c.rename(old, new), parent, node)
        self.tree.moved(parent, name, parent, hidden)
        self._hidden.setdefault(node, []).append((parent, hidden))

    async def _unhide(self, node: NfsNode) -> None:
        """The last handle on ``node`` is closed: remove the hidden names it was given."""
        for parent, hidden in self._hidden.pop(node, []):
            if self.tree.child(parent, hidden) is not node:
                continue  # renamed or removed by the guest meanwhile
            try:
                await self._remove(parent, hidden)
            except OSError as error:
                logger.warning("removing %r (unlinked while open): %s", hidden, error)

    async def rmdir(self, parent: NfsNode, name: bytes) -> None:
        path = parent.child_path(name)
        await self._changing(
            lambda c: _resent_ok(c, c.rmdir, path), parent, self.tree.child(parent, name)
        )
        self.tree.removed(parent, name)

    async def rename(
        self, parent: NfsNode, name: bytes, new_parent: NfsNode, new_name: bytes, flags: int
    ) -> None:
        if flags:
            # RENAME3 (RFC 1813 §3.3.14) always replaces; the Linux NFS client
            # answers EINVAL to renameat2 flags as well.
            raise OSError(errno.EINVAL, "NFSv3 has no RENAME_NOREPLACE/RENAME_EXCHANGE")
        target = self.tree.child(new_parent, new_name)
        if target is not None and target.opened and target is not self.tree.child(parent, name):
            # The replaced file is open: keep it for its handles, as unlink does.
            await self._hide(new_parent, new_name, target)
        old, new = parent.child_path(name), new_parent.child_path(new_name)

        def move(c: Context) -> None:
            before = c.connection()
            try:
                c.rename(old, new)
            except FileNotFoundError:
                if c.connection() == before or _exists(c, old) or not _exists(c, new):
                    raise
                # RENAME sent again after a reconnect: the first one moved it.

        moved, replaced = self.tree.child(parent, name), self.tree.child(new_parent, new_name)
        await self._changing(move, parent, new_parent, moved, replaced)
        self.tree.moved(parent, name, new_parent, new_name)

    # -- files --------------------------------------------------------------

    async def open(self, obj: NfsNode, flags: int, caller: Caller) -> NfsHandle:
        if stat_module.S_ISDIR(obj.mode) and flags & os.O_ACCMODE != os.O_RDONLY:
            # nfs_open only LOOKUPs and ACCESSes; open(2) refuses to write a directory.
            raise OSError(errno.EISDIR, "is a directory")
        if obj.filehandle:
            return self._handle(await self._open_by_filehandle(obj, obj.filehandle, flags), obj)
        path = obj.path
        truncated = obj if flags & os.O_TRUNC else None
        nfsfh = await self._changing(lambda c: c.open(path, flags & OPEN_FLAGS), truncated)
        return self._handle(nfsfh, obj)

    async def _open_by_filehandle(self, obj: NfsNode, filehandle: bytes, flags: int) -> int:
        """What ``nfs_open`` does, without its path walk: one ACCESS3 for the open mode
        from the event loop (it refuses as ``nfs_open`` would), the handle built from
        the filehandle, and for O_TRUNC one SETATTR of the size."""
        access = {os.O_RDONLY: rpc3.ACCESS3_READ, os.O_WRONLY: rpc3.ACCESS3_MODIFY}.get(
            flags & os.O_ACCMODE, rpc3.ACCESS3_READ | rpc3.ACCESS3_MODIFY
        )
        if await self.fast.access(filehandle, access) & access != access:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        nfsfh = open_handle(filehandle, flags & OPEN_FLAGS)
        if flags & os.O_TRUNC:
            try:
                await self._changing(lambda c: c.ftruncate(nfsfh, 0), obj)
            except BaseException:
                free_handle(nfsfh)
                raise
        return nfsfh

    def _handle(self, nfsfh: int, node: NfsNode) -> NfsHandle:
        handle = NfsHandle(nfsfh, node)
        self._open.add(handle)
        node.opened += 1
        return handle

    async def create(
        self, parent: NfsNode, name: bytes, flags: int, mode: int, caller: Caller
    ) -> tuple[NfsNode, Stat, NfsHandle]:
        # GUARDED (RFC 1813 §3.3.8) so we know whether we made it: only a file we
        # created gets the caller as owner; an existing one is opened as it is.
        sent = time.monotonic_ns()
        parent_filehandle = self._fast_parent(parent)
        if parent_filehandle is None:
            path = parent.child_path(name)
            nfsfh, st = await self._changing(
                lambda c: self._create_by_path(c, parent, name, path, flags, mode, caller),
                parent,
                self.tree.child(parent, name),
            )
        else:
            try:
                made = await self.fast.create(
                    parent_filehandle, name, mode & 0o7777, *self._ids(caller)
                )
            except FileExistsError:
                if flags & os.O_EXCL:
                    raise
                path = parent.child_path(name)
                nfsfh, st = await self._changing(
                    lambda c: _open_existing(c, path, flags), self.tree.child(parent, name)
                )
            else:
                # One CREATE3 gave the handle and attributes: no LOOKUP, ACCESS or SETATTR.
                nfsfh, st = open_handle(made[0], flags & OPEN_FLAGS), made
        node, attr = self._found(parent, name, st, sent)
        return node, attr, self._handle(nfsfh, node)

    def _create_by_path(
        self,
        c: Context,
        parent: NfsNode,
        name: bytes,
        path: bytes,
        flags: int,
        mode: int,
        caller: Caller,
    ) -> tuple[int, tuple[bytes | None, NfsStat64]]:
        """``create`` through libnfs's path API, in a worker (no parent filehandle, or setgid)."""
        try:
            nfsfh = c.create(path, (flags & OPEN_FLAGS) | os.O_EXCL, mode & 0o7777)
        except FileExistsError:
            if flags & os.O_EXCL:
                raise
            return _open_existing(c, path, flags)
        try:
            return nfsfh, self._own(c, parent, name, path, caller)
        except OSError:
            c.close(nfsfh)
            raise

    async def read(self, handle: NfsHandle, offset: int, buffers: Sequence[memoryview]) -> int:
        nfsfh = handle.nfsfh

        def read(c: Context) -> int:
            total = 0
            try:
                for buffer in buffers:
                    got = c.pread(nfsfh, offset + total, buffer)
                    total += got
                    if got < buffer.nbytes:
                        break
            except IoFailed as error:
                raise _why_io_failed(c, error, nfsfh) from None
            return total

        return await self.pool.run(read)

    async def write(self, handle: NfsHandle, offset: int, buffers: Sequence[memoryview]) -> int:
        nfsfh = handle.nfsfh

        def write(c: Context) -> int:
            total = 0
            try:
                for buffer in buffers:
                    total += c.pwrite(nfsfh, offset + total, buffer)
            except WriteFailed as failed:
                # libnfs lost the server's reason: send the failed WRITE again
                # ourselves (a WRITE is idempotent) and raise its answer, or
                # report what got written as a short write.
                request = rpc3.write_request(
                    filehandle_of(nfsfh), failed.offset, failed.address, failed.count
                )
                return total + failed.done + rpc3.call(c, request)
            return total

        try:
            return await self.pool.run(write)
        finally:
            # Set once the WRITEs are answered, so a COMMIT sent after this covers them.
            handle.node.unstable = True
            _stale(handle.node)

    async def flush(self, handle: NfsHandle) -> None:
        """COMMIT unstable writes at close, as the Linux client does (close-to-open)."""
        await self.fsync(handle, datasync=False)

    async def fsync(self, handle: NfsHandle, datasync: bool) -> None:
        """COMMIT (RFC 1813 §3.3.21): on stable storage before we answer.

        Only when some handle on the file wrote since the last COMMIT: libnfs
        4.0's ``nfs_fsync`` sends one every time, and a COMMIT covers the whole
        file whichever handle wrote.  A clean file costs no thread hop.
        """
        node = handle.node
        if not node.unstable:
            return
        node.unstable = False
        nfsfh = handle.nfsfh
        try:
            await self.pool.run(lambda c: c.fsync(nfsfh))
        except BaseException:
            node.unstable = True
            raise

    async def release(self, handle: NfsHandle) -> None:
        """COMMIT what is still unstable (as ``nfs_close`` would), then free the handle
        here: ``nfs_close`` of a clean handle sends nothing, so it needs no worker."""
        self._open.discard(handle)
        node = handle.node
        try:
            await self.fsync(handle, datasync=False)
        except OSError as error:
            logger.warning("closing an NFS file (%s): %s", node, error)
        finally:
            free_handle(handle.nfsfh)
            node.opened -= 1
        if not node.opened and node in self._hidden:
            await self._unhide(node)

    async def fallocate(self, handle: NfsHandle, mode: int, offset: int, length: int) -> None:
        # NFSv3 has no ALLOCATE (NFSv4.2 does); the Linux NFSv3 client says the same.
        raise OSError(errno.EOPNOTSUPP, "NFSv3 cannot preallocate")

    async def lseek(self, handle: NfsHandle, offset: int, whence: int) -> int:
        """NFSv3 has no SEEK: the whole file is data, as Linux's generic llseek says."""
        nfsfh = handle.nfsfh
        size = (await self.pool.run(lambda c: c.fstat(nfsfh))).size
        if offset < 0 or offset >= size:
            raise OSError(errno.ENXIO, "offset beyond end of file")
        if whence == os.SEEK_DATA:
            return offset
        if whence == os.SEEK_HOLE:
            return size
        raise OSError(errno.EINVAL, "lseek supports SEEK_DATA and SEEK_HOLE only")

    async def copy_file_range(
        self,
        handle_in: NfsHandle,
        offset_in: int,
        handle_out: NfsHandle,
        offset_out: int,
        length: int,
    ) -> int:
        """NFSv3 has no COPY: move the bytes through one worker, sparing FUSE round trips."""
        nfsfh_in, nfsfh_out = handle_in.nfsfh, handle_out.nfsfh

        def copy(c: Context) -> int:
            chunk = memoryview(bytearray(min(length, COPY_CHUNK)))
            done = 0
            try:
                while done < length:
                    piece = chunk[: min(length - done, len(chunk))]
                    got = c.pread(nfsfh_in, offset_in + done, piece)
                    if got == 0:
                        break
                    c.pwrite(nfsfh_out, offset_out + done, piece[:got])
                    done += got
            except IoFailed as error:
                raise _why_io_failed(c, error, nfsfh_in, nfsfh_out) from None
            return done

        try:
            return await self.pool.run(copy)
        finally:
            handle_out.node.unstable = True
            _stale(handle_out.node)

    # -- directories --------------------------------------------------------

    async def listdir(self, obj: NfsNode) -> list[DirEntry]:
        path = obj.path
        entries = await self.pool.run(lambda c: c.listdir(path))
        self.listings.listed(obj.filehandle, {name for name, _, _ in entries})
        # Files unlinked while open are gone for the guest (see silly.py).
        return [DirEntry(name, ino, dtype) for name, ino, dtype in entries if not is_silly(name)]

    async def fsyncdir(self, obj: NfsNode, datasync: bool) -> None:
        """Nothing to do: an NFSv3 server commits namespace changes before it replies
        (RFC 1813 §3.3.8-3.3.15, "the server must ... commit to stable storage")."""

    # -- whole file system -------------------------------------------------

    async def statfs(self, obj: NfsNode) -> StatFs:
        path = obj.path
        st = await self.pool.run(lambda c: c.statvfs(path))
        return StatFs(
            blocks=st.blocks, bfree=st.bfree, bavail=st.bavail, files=st.files,
            ffree=st.ffree, bsize=st.bsize, namelen=st.namemax, frsize=st.frsize,
        )  # fmt: skip

    async def syncfs(self) -> None:
        for handle in list(self._open):
            await self.fsync(handle, datasync=False)

    # -- extended attributes: NFSv3 has none (RFC 8276 added them to NFSv4.2) --

    async def setxattr(
        self, obj: NfsNode, name: bytes, value: bytes, flags: int, caller: Caller
    ) -> None:
        raise OSError(errno.EOPNOTSUPP, "NFSv3 has no extended attributes")

    async def getxattr(self, obj: NfsNode, name: bytes) -> bytes:
        raise OSError(errno.EOPNOTSUPP, "NFSv3 has no extended attributes")

    async def listxattr(self, obj: NfsNode) -> list[bytes]:
        raise OSError(errno.EOPNOTSUPP, "NFSv3 has no extended attributes")

    async def removexattr(self, obj: NfsNode, name: bytes, caller: Caller) -> None:
        raise OSError(errno.EOPNOTSUPP, "NFSv3 has no extended attributes")


def _remember(node: NfsNode, st: NfsStat64, sent: int) -> None:
    """Keep ``st`` as ``node``'s attributes, unless what it has is newer: a reply to a
    call sent before the last change (or the last reply kept) is old news."""
    if sent >= node.attrs_at:
        node.attrs, node.attrs_at = st, sent


def _stale(*nodes: NfsNode | None) -> None:
    """Forget the attributes of ``nodes``: a change made them wrong."""
    now = time.monotonic_ns()
    for node in nodes:
        if node is not None:
            node.attrs, node.attrs_at = None, now


def _open_existing(c: Context, path: bytes, flags: int) -> tuple[int, tuple[bytes, NfsStat64]]:
    """``nfs_open`` (ACCESS, O_TRUNC) of a file that create found there, and its
    filehandle and attributes."""
    nfsfh = c.open(path, flags & OPEN_FLAGS)
    try:
        return nfsfh, (filehandle_of(nfsfh), c.fstat(nfsfh))
    except OSError:
        c.close(nfsfh)
        raise


def _why_io_failed(c: Context, failure: IoFailed, *handles: int) -> OSError:
    """The error a failed READ/WRITE on ``handles`` stands for (see :class:`IoFailed`).

    A GETATTR3 (RFC 1813 §3.3.1) of each file on the same connection raises the
    server's answer (ESTALE: the file was removed) or, if the connection is
    broken, :class:`TransportError`.  If all answer, the server refused the I/O
    itself for a reason libnfs lost: EIO, and the context stays (a failed write
    asks the server again instead, see :meth:`NfsBackend.write`).
    """
    for nfsfh in handles:
        rpc3.getattr_(c, filehandle_of(nfsfh))
    return OSError(errno.EIO, f"the NFS server refused the read or write: {failure.strerror}")


def _resent_ok(c: Context, remove: Callable[[bytes], None], path: bytes) -> None:
    """``remove(path)`` (REMOVE3/RMDIR3), where ENOENT after libnfs reconnected and
    sent it again means the first one did it (RFC 1813 §3.3.12: the server's
    duplicate-request cache should have answered, but it keys entries by the
    connection, or forgot them when it restarted)."""
    before = c.connection()
    try:
        remove(path)
    except FileNotFoundError:
        if c.connection() == before:
            raise
        logger.info("%r removed again after a reconnect: already done", path)


def _exists(c: Context, path: bytes) -> bool:
    try:
        c.lstat(path)
    except FileNotFoundError:
        return False
    return True


def _child(
    c: Context, parent_filehandle: bytes | None, name: bytes, path: bytes
) -> tuple[bytes | None, NfsStat64]:
    """(filehandle, attributes) of ``name``: one LOOKUP, else a path walk."""
    return rpc3.lookup(c, parent_filehandle, name) if parent_filehandle else (None, c.lstat(path))


def _stat(c: Context, filehandle: bytes | None, path: bytes) -> NfsStat64:
    """GETATTR on the handle when known, else a path walk."""
    return rpc3.getattr_(c, filehandle) if filehandle else c.lstat(path)


def _without_suidgid(mode: int) -> int | None:
    """The mode after a write by someone else (the core's rule), or None when that
    leaves it unchanged and no chmod need be sent."""
    cleared = without_privileges(mode)
    return cleared if cleared != mode else None


def _times(c: Context, path: bytes, changes: SetattrChanges) -> tuple[int, int] | None:
    """The (atime, mtime) pair SETATTR needs; None = both from the server's clock."""
    if changes.atime == "now" and changes.mtime == "now":
        return None
    now = time.time_ns()
    current = None
    values = []
    for change, field in ((changes.atime, "atime"), (changes.mtime, "mtime")):
        if change == "now":
            values.append(now)
        elif change is None:
            current = current or c.lstat(path)
            values.append(
                getattr(current, field) * 1_000_000_000 + getattr(current, field + "_nsec")
            )
        else:
            values.append(change)
    return values[0], values[1]
