"""Serve one FUSE request: decode it, call the core, encode the reply.

Each handler below registers itself in :data:`OPERATIONS` with its opcode, its
decoder and its reply kind (hostfs/fuse/operations.py): that table is the only
place an opcode is routed.

Transports (/dev/fuse, vhost-user virtqueues) call :meth:`Dispatcher.handle`
with the request's buffers and the buffers the reply goes into; they may run
many ``handle`` calls concurrently.  ``readable`` and ``writable`` may be the
same memory (the /dev/fuse transport answers in its request buffer): every
request field is decoded before the core is called, and WRITE data, the only
thing still referenced, is consumed before the reply is written.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from hostfs.core.filesystem import FileSystem
from hostfs.core.types import AttrReply, Caller, Opened, build
from hostfs.fuse import abi, replies
from hostfs.fuse import requests as rq
from hostfs.fuse.abi import Opcode
from hostfs.fuse.args import Args
from hostfs.fuse.extensions import decode_extensions
from hostfs.fuse.init import Protocol, SessionConfig, negotiate
from hostfs.fuse.operations import Operation, OperationTable, ReplyKind
from hostfs.fuse.parking import parked
from hostfs.fuse.passthrough import BackingDevice, BackingFiles
from hostfs.fuse.ratelimit import RateLimitedLog
from hostfs.fuse.scatter import scatter_into, slices, total_length
from hostfs.fuse.session import REFUSED_ERRNO, Session, SessionState
from hostfs.fuse.stats import OpStats

log = logging.getLogger(__name__)
guest_errors = RateLimitedLog(log)
"""Whatever a guest's requests make hostfs log goes through here."""

HEADER = abi.OUT_HEADER.size
_MAX_ERRNO = 511
"""The kernel rejects a reply whose error is not in ``[-511, 0]`` (fuse_dev_do_write)."""
_EARLY_INTERRUPTS_MAX = 1024

_CREATIONS = frozenset({Opcode.CREATE, Opcode.MKNOD, Opcode.MKDIR, Opcode.SYMLINK})
"""The requests the kernel extends with FUSE_EXT_GROUPS (fs/fuse/dir.c, get_create_ext;
TMPFILE too, which hostfs does not implement): on others the groups are ignored."""

_NO_REPLY = ReplyKind.NONE
_BUFFER = ReplyKind.BUFFER
_SETLKW = int(Opcode.SETLKW)
_RUNNING = SessionState.RUNNING
"""Enum members the request path reads on every request, read once here: reading an
attribute of an enum class goes through ``EnumType.__getattr__``'s slot (CPython 3.11),
about 850 instructions each time under callgrind, 16 of them per create sequence."""

OPERATIONS = OperationTable()
"""What hostfs serves: each handler below registers itself, with its decoder."""


def _errno_of(error: OSError) -> int:
    code = error.errno
    return code if code and 0 < code <= _MAX_ERRNO else errno.EIO


def _opcode_name(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return str(opcode)


def _check_xattr_size(data_size: int, requested: int, limit: int) -> None:
    """GETXATTR/LISTXATTR: a too-small buffer is ERANGE, as for getxattr(2)."""
    if data_size > requested or HEADER + data_size > limit:
        raise OSError(errno.ERANGE, "xattr buffer too small")


_OPCODE = struct.Struct("<I")
_OPCODE_OFFSET = 4
"""``fuse_in_header.opcode``: after ``len``."""
_OPCODE_END = _OPCODE_OFFSET + _OPCODE.size


class Dispatcher:
    """One FUSE session over a :class:`FileSystem`, whichever transport carries it."""

    def __init__(
        self,
        fs: FileSystem,
        config: SessionConfig | None = None,
        backing_device: BackingDevice | None = None,
        stats: OpStats | None = None,
    ) -> None:
        """``backing_device``: a transport that can register backing files (only
        /dev/fuse can) passes itself, with ``config.passthrough`` on.  ``stats``: a
        table shared with other sessions (a device's sessions, one per guest boot)."""
        self.fs = fs
        self.config = config or SessionConfig()
        self.backing = BackingFiles(backing_device) if backing_device else None
        self.protocol = Protocol()
        """Negotiated by INIT; until then the newest layouts decode INIT itself."""
        self.session = Session()
        self.stats = stats if stats is not None else OpStats()
        self._calls_wait = fs.calls_wait
        self._every_request_may_yield = fs.calls_wait or not fs.calls_in_loop
        self._inflight: dict[int, trio.CancelScope] = {}
        self._early_interrupts: set[int] = set()
        self._scratch: list[memoryview] = []
        self._debug = log.isEnabledFor(logging.DEBUG)
        self._max_request = self.config.max_request
        """Read once: a property of the (frozen) config, and a tenth of a GETATTR's
        decoding when read per request (cProfile)."""

    @property
    def initialized(self) -> bool:
        """Whether INIT has agreed a protocol (transports wait for it)."""
        return self.session.state is _RUNNING

    # -- the transport-facing API ---------------------------------------------

    async def handle(self, readable: Sequence[memoryview], writable: Sequence[memoryview]) -> int:
        """Serve the request in ``readable``; write the reply into ``writable``.

        Returns the reply length, 0 when there is none (FORGET, BATCH_FORGET,
        INTERRUPT, or a request too short to have a ``unique``).
        """
        started = time.perf_counter_ns()
        header, args = rq.frame(readable, self._max_request)
        if header is None:
            guest_errors.log(
                "short request", logging.WARNING, "dropped a request shorter than fuse_in_header"
            )
            return 0
        opcode = header.opcode
        operation = OPERATIONS.get(opcode)
        request = self._decode(operation, opcode, args)
        if isinstance(request, rq.BadRequest):
            length, error = 0, request.errno
        elif isinstance(caller := self._caller(header, readable), rq.BadRequest):
            length, error = 0, caller.errno  # a malformed extension: the request's own fault
        else:
            assert operation is not None  # without one, _decode answered ENOSYS
            kind = operation.reply
            if kind is _NO_REPLY:
                # No reply: a plain call, nothing to interrupt (none of them waits).
                length, error = 0, self._no_reply(operation, header, request)
            elif kind is _BUFFER and not self._calls_wait and opcode != _SETLKW:
                # The common case inline: a request that cannot wait.  Each coroutine
                # layer skipped is ~0.3 us of a 5 us FORGET on this machine.
                try:
                    if len(writable) == 1:  # /dev/fuse, io_uring
                        out = writable[0]
                        payload = await operation.handler(
                            self, header, request, caller, out, len(out)
                        )
                        length, error = HEADER + payload, 0
                        replies.out_header(out, length, 0, header.unique)
                    else:  # a guest's descriptors: the header and the reply apart
                        length = await self._reply_in_buffer(
                            operation.handler, header, request, caller, writable
                        )
                        error = 0
                except Exception as failure:
                    length, error = 0, self._failed(header, failure)
            elif (
                isinstance(request, rq.Getattr)
                and request.fh is None
                and (held := self.fs.held_attr(header.nodeid)) is not None
            ):
                # A backend whose calls wait (NFS) holds fresh attributes: no call, so
                # no cancel scope, half of such a GETATTR's cost.
                try:
                    length = await self._reply_in_buffer(
                        _held_getattr, header, held, caller, writable
                    )
                    error = 0
                except Exception as failure:
                    length, error = 0, self._failed(header, failure)
            else:
                length, error = await self._call(operation, header, request, caller, writable)
        if self._debug:
            log.debug(
                "%s unique=%d nodeid=%d -> %s",
                _opcode_name(opcode),
                header.unique,
                header.nodeid,
                f"-{errno.errorcode.get(error, error)}" if error else length,
            )
        self.stats.record(opcode, error != 0, time.perf_counter_ns() - started)
        if operation is not None and operation.reply is _NO_REPLY:
            return 0
        if error:
            if total_length(writable) < HEADER:
                return 0
            return self._write_header(writable, HEADER, -error, header.unique)
        return length

    def may_yield(self, readable: Sequence[memoryview]) -> bool:
        """Whether serving this request can give the event loop a turn: a lock wait
        (SETLKW), or any request when the backend's calls leave the loop's thread (NFS,
        a thread pool: Backend.calls_in_loop).  The rest run start to end without other
        tasks running, so a transport may serve them in its own task."""
        if self._every_request_may_yield:
            return True
        first = readable[0] if readable else b""
        if len(first) < _OPCODE_END:
            return True  # split or short header: let the general path sort it out
        return bool(_OPCODE.unpack_from(first, _OPCODE_OFFSET)[0] == _SETLKW)

    # -- plumbing ---------------------------------------------------------------

    def _caller(
        self, header: rq.InHeader, readable: Sequence[memoryview]
    ) -> Caller | rq.BadRequest:
        """Who asks; on a creation, with the supplementary groups its extension carries
        once FUSE_CREATE_SUPP_GROUP is agreed (a malformed extension is EINVAL always)."""
        if not header.total_extlen:
            return build(Caller, (header.uid, header.gid, header.pid, ()))
        extensions = decode_extensions(readable, header)
        if isinstance(extensions, rq.BadRequest):
            return extensions
        groups = extensions.groups
        if not (groups and self.protocol.create_supp_group and header.opcode in _CREATIONS):
            groups = ()
        return Caller(header.uid, header.gid, header.pid, groups)

    def _decode(
        self, operation: Operation | None, opcode: int, args: Args | rq.BadRequest
    ) -> rq.Request | rq.BadRequest:
        """The typed request, or the errno to answer: ENOSYS for an opcode without an
        operation, EIO for one the session does not admit yet."""
        if isinstance(args, rq.BadRequest):
            return args
        if operation is None:
            return rq.BadRequest(errno.ENOSYS)
        if not self.session.admits(opcode):
            return rq.BadRequest(REFUSED_ERRNO)
        return rq.decode(operation.decoder, self.protocol, args)

    async def _call(
        self,
        operation: Operation,
        header: rq.InHeader,
        request: rq.Request,
        caller: Caller,
        writable: Sequence[memoryview],
    ) -> tuple[int, int]:
        """Serve the request; map its failure to an errno.

        Only a request that can wait runs interruptibly: a waiting lock always,
        anything else when the backend's calls can wait.  The rest finish
        promptly, and a cancel scope would cost them a third of their time.
        """
        try:
            if self._calls_wait or header.opcode == _SETLKW:
                return await self._interruptible(operation, header, request, caller, writable)
            return await self._serve(operation, header, request, caller, writable), 0
        except Exception as failure:
            return 0, self._failed(header, failure)

    def _no_reply(self, operation: Operation, header: rq.InHeader, request: rq.Request) -> int:
        """Call a handler that answers nothing (a plain function); the errno it fails with."""
        try:
            operation.handler(self, header, request)
        except Exception as failure:
            return self._failed(header, failure)
        return 0

    @staticmethod
    def _failed(header: rq.InHeader, failure: Exception) -> int:
        """The errno a failed request is answered with; a bug or a bad reply is logged."""
        if isinstance(failure, OSError):
            return _errno_of(failure)
        if isinstance(failure, struct.error):
            guest_errors.log(
                "bad reply",
                logging.WARNING,
                "%s: reply does not fit or holds bad values: %s",
                _opcode_name(header.opcode),
                failure,
            )
            return errno.EIO
        guest_errors.log(
            "request failure",
            logging.ERROR,
            "%s unique %d failed: %r",
            _opcode_name(header.opcode),
            header.unique,
            failure,
            trace=True,
        )
        return errno.EIO

    async def _interruptible(
        self,
        operation: Operation,
        header: rq.InHeader,
        request: rq.Request,
        caller: Caller,
        writable: Sequence[memoryview],
    ) -> tuple[int, int]:
        """Serve in a cancel scope that FUSE_INTERRUPT for its ``unique`` cancels."""
        unique = header.unique
        scope = trio.CancelScope()
        if unique in self._early_interrupts:
            self._early_interrupts.discard(unique)
            scope.cancel()
        self._inflight[unique] = scope
        length = 0
        try:
            with scope:
                length = await self._serve(operation, header, request, caller, writable)
        finally:
            if self._inflight.get(unique) is scope:
                del self._inflight[unique]
        if scope.cancelled_caught:
            return 0, errno.EINTR
        return length, 0

    def _write_header(
        self, writable: Sequence[memoryview], length: int, error: int, unique: int
    ) -> int:
        first = writable[0]
        if len(first) >= HEADER:
            replies.out_header(first, length, error, unique)
        else:
            header = bytearray(HEADER)
            replies.out_header(memoryview(header), length, error, unique)
            scatter_into(writable, 0, memoryview(header))
        return length

    def _serve(
        self,
        operation: Operation,
        header: rq.InHeader,
        request: rq.Request,
        caller: Caller,
        writable: Sequence[memoryview],
    ) -> Awaitable[int]:
        """Call a BUFFER or DATA handler as its kind wants; awaited, the reply length.

        Not a coroutine itself: the caller awaits the one it returns, one coroutine
        fewer per request."""
        reply = operation.reply
        if reply is _BUFFER:
            return self._reply_in_buffer(operation.handler, header, request, caller, writable)
        data: Awaitable[int] = operation.handler(self, header, request, caller, writable)
        return data

    async def _reply_in_buffer(
        self,
        handler: Callable[..., Awaitable[int]],
        header: rq.InHeader,
        request: rq.Request | AttrReply,
        caller: Caller,
        writable: Sequence[memoryview],
    ) -> int:
        """Encode straight into a single reply buffer, else into scratch then scatter.
        ``request`` goes to ``handler`` as it is (an AttrReply for _held_getattr)."""
        if len(writable) == 1:
            out = writable[0]
            payload = await handler(self, header, request, caller, out, len(out))
            replies.out_header(out, HEADER + payload, 0, header.unique)
            return HEADER + payload
        out = self._scratch.pop() if self._scratch else self._new_scratch()
        try:
            capacity = total_length(writable)
            payload = await handler(self, header, request, caller, out, min(len(out), capacity))
            if HEADER + payload > capacity:
                raise OSError(errno.EIO, "reply larger than the buffers offered")
            replies.out_header(out, HEADER + payload, 0, header.unique)
            return scatter_into(writable, 0, out[: HEADER + payload])
        finally:
            self._scratch.append(out)

    def _new_scratch(self) -> memoryview:
        return memoryview(bytearray(self.config.buffer_size))

    @OPERATIONS.handles(Opcode.READ, rq.decode_read, ReplyKind.DATA)
    async def _on_read(
        self, header: rq.InHeader, request: rq.Read, caller: Caller, writable: Sequence[memoryview]
    ) -> int:
        """The core fills the reply buffers after the header, zero-copy."""
        capacity = total_length(writable) - HEADER
        if capacity < 0:
            raise OSError(errno.EIO, "no room for a reply")
        views = slices(writable, HEADER, min(request.size, capacity))
        count = await self.fs.read(caller, header.nodeid, request.fh, request.offset, views)
        if not 0 <= count <= sum(len(view) for view in views):
            raise OSError(errno.EIO, f"read returned {count}")
        return self._write_header(writable, HEADER + count, 0, header.unique)

    # -- session ----------------------------------------------------------------

    @OPERATIONS.handles(Opcode.INIT, rq.decode_init)
    async def _on_init(
        self, header: rq.InHeader, request: rq.Init, caller: Caller, out: memoryview, limit: int
    ) -> int:
        reply = negotiate(
            request.major,
            request.minor,
            request.max_readahead,
            request.flags,
            self.fs.options,
            self.config,
            supplementary_groups=self.fs.supplementary_groups,
        )
        if reply.error:
            guest_errors.log(
                "init",
                logging.ERROR,
                "kernel speaks FUSE %d.%d: unsupported",
                request.major,
                request.minor,
            )
            raise OSError(reply.error, "unsupported FUSE version")
        if reply.protocol is not None:
            await self.fs.init()
            self.protocol = reply.protocol
            self.session.agreed()
            guest_errors.log(
                "init",
                logging.INFO,
                "FUSE session: kernel %d.%d, speaking 7.%d, flags %#x",
                request.major,
                request.minor,
                reply.protocol.minor,
                reply.protocol.flags,
            )
        out[HEADER : HEADER + len(reply.body)] = reply.body
        return len(reply.body)

    @OPERATIONS.handles(Opcode.DESTROY, rq.decode_empty)
    async def _on_destroy(
        self, header: rq.InHeader, request: rq.Empty, caller: Caller, out: memoryview, limit: int
    ) -> int:
        self.session.destroyed()
        self.stats.log(logging.DEBUG)
        await self.fs.destroy()
        return 0

    @OPERATIONS.handles(Opcode.INTERRUPT, rq.decode_interrupt, ReplyKind.NONE)
    def _on_interrupt(self, header: rq.InHeader, request: rq.Interrupt) -> None:
        scope = self._inflight.get(request.unique)
        if scope is not None:
            scope.cancel()
            return
        if len(self._early_interrupts) >= _EARLY_INTERRUPTS_MAX:
            self._early_interrupts.clear()
        self._early_interrupts.add(request.unique)

    @OPERATIONS.handles(Opcode.FORGET, rq.decode_forget, ReplyKind.NONE)
    def _on_forget(self, header: rq.InHeader, request: rq.Forget) -> None:
        self.fs.forget(header.nodeid, request.nlookup)

    @OPERATIONS.handles(Opcode.BATCH_FORGET, rq.decode_batch_forget, ReplyKind.NONE)
    def _on_batch_forget(self, header: rq.InHeader, request: rq.BatchForget) -> None:
        self.fs.batch_forget(request.items())

    @OPERATIONS.handles(Opcode.SYNCFS, rq.decode_empty)
    async def _on_syncfs(
        self, header: rq.InHeader, request: rq.Empty, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.syncfs(caller)
        return 0

    @OPERATIONS.handles(Opcode.STATFS, rq.decode_empty)
    async def _on_statfs(
        self, header: rq.InHeader, request: rq.Empty, caller: Caller, out: memoryview, limit: int
    ) -> int:
        replies.statfs_out(out, HEADER, await self.fs.statfs(caller, header.nodeid))
        return abi.KSTATFS.size

    # -- names --------------------------------------------------------------

    def _entry_reply(self, out: memoryview, entry: Any) -> int:
        replies.entry_out(out, HEADER, entry)
        return abi.ENTRY_OUT.size

    @OPERATIONS.handles(Opcode.LOOKUP, rq.decode_lookup)
    async def _on_lookup(
        self, header: rq.InHeader, request: rq.Lookup, caller: Caller, out: memoryview, limit: int
    ) -> int:
        entry = await self.fs.lookup_entry(caller, header.nodeid, request.name)
        return self._entry_reply(out, entry)

    @OPERATIONS.handles(Opcode.GETATTR, rq.decode_getattr)
    async def _on_getattr(
        self, header: rq.InHeader, request: rq.Getattr, caller: Caller, out: memoryview, limit: int
    ) -> int:
        replies.attr_out(out, HEADER, await self.fs.getattr(caller, header.nodeid, request.fh))
        return abi.ATTR_OUT.size

    @OPERATIONS.handles(Opcode.SETATTR, rq.decode_setattr)
    async def _on_setattr(
        self, header: rq.InHeader, request: rq.Setattr, caller: Caller, out: memoryview, limit: int
    ) -> int:
        reply = await self.fs.setattr(caller, header.nodeid, request.changes, request.fh)
        replies.attr_out(out, HEADER, reply)
        return abi.ATTR_OUT.size

    @OPERATIONS.handles(Opcode.READLINK, rq.decode_empty)
    async def _on_readlink(
        self, header: rq.InHeader, request: rq.Empty, caller: Caller, out: memoryview, limit: int
    ) -> int:
        target = await self.fs.readlink(caller, header.nodeid)
        if HEADER + len(target) > limit:
            raise OSError(errno.ENAMETOOLONG, "symlink target larger than the reply buffer")
        out[HEADER : HEADER + len(target)] = target
        return len(target)

    @OPERATIONS.handles(Opcode.SYMLINK, rq.decode_symlink)
    async def _on_symlink(
        self, header: rq.InHeader, request: rq.Symlink, caller: Caller, out: memoryview, limit: int
    ) -> int:
        entry = await self.fs.symlink(caller, header.nodeid, request.name, request.target)
        return self._entry_reply(out, entry)

    @OPERATIONS.handles(Opcode.MKNOD, rq.decode_mknod)
    async def _on_mknod(
        self, header: rq.InHeader, request: rq.Mknod, caller: Caller, out: memoryview, limit: int
    ) -> int:
        entry = await self.fs.mknod(caller, header.nodeid, request.name, request.mode, request.rdev)
        return self._entry_reply(out, entry)

    @OPERATIONS.handles(Opcode.MKDIR, rq.decode_mkdir)
    async def _on_mkdir(
        self, header: rq.InHeader, request: rq.Mkdir, caller: Caller, out: memoryview, limit: int
    ) -> int:
        entry = await self.fs.mkdir(caller, header.nodeid, request.name, request.mode)
        return self._entry_reply(out, entry)

    @OPERATIONS.handles(Opcode.UNLINK, rq.decode_unlink)
    async def _on_unlink(
        self, header: rq.InHeader, request: rq.Unlink, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.unlink(caller, header.nodeid, request.name)
        return 0

    @OPERATIONS.handles(Opcode.RMDIR, rq.decode_unlink)
    async def _on_rmdir(
        self, header: rq.InHeader, request: rq.Unlink, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.rmdir(caller, header.nodeid, request.name)
        return 0

    @OPERATIONS.handles(Opcode.RENAME, rq.decode_rename)
    @OPERATIONS.handles(Opcode.RENAME2, rq.decode_rename2)
    async def _on_rename(
        self, header: rq.InHeader, request: rq.Rename, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.rename(
            caller, header.nodeid, request.name, request.new_parent, request.new_name, request.flags
        )
        return 0

    @OPERATIONS.handles(Opcode.LINK, rq.decode_link)
    async def _on_link(
        self, header: rq.InHeader, request: rq.Link, caller: Caller, out: memoryview, limit: int
    ) -> int:
        entry = await self.fs.link(caller, request.old_nodeid, header.nodeid, request.new_name)
        return self._entry_reply(out, entry)

    # -- files --------------------------------------------------------------

    @OPERATIONS.handles(Opcode.OPEN, rq.decode_open)
    async def _on_open(
        self, header: rq.InHeader, request: rq.Open, caller: Caller, out: memoryview, limit: int
    ) -> int:
        opened = await self.fs.open(caller, header.nodeid, request.flags, request.kill_suidgid)
        replies.open_out(out, HEADER, opened, self._backing_id(header.nodeid, opened))
        return abi.OPEN_OUT.size

    @OPERATIONS.handles(Opcode.CREATE, rq.decode_create)
    async def _on_create(
        self, header: rq.InHeader, request: rq.Create, caller: Caller, out: memoryview, limit: int
    ) -> int:
        entry, opened = await self.fs.create(
            caller, header.nodeid, request.name, request.mode, request.flags
        )
        size = self._entry_reply(out, entry)
        replies.open_out(out, HEADER + size, opened, self._backing_id(entry.nodeid, opened))
        return size + abi.OPEN_OUT.size

    def _backing_id(self, nodeid: int, opened: Opened) -> int | None:
        """The file's backing id when FUSE passthrough is on and the file has one."""
        if self.backing is None or not self.protocol.passthrough:
            return None
        fd = self.fs.backing_fd(opened.fh)
        return None if fd is None else self.backing.acquire(nodeid, opened.fh, fd)

    @OPERATIONS.handles(Opcode.WRITE, rq.decode_write)
    async def _on_write(
        self, header: rq.InHeader, request: rq.Write, caller: Caller, out: memoryview, limit: int
    ) -> int:
        count = await self.fs.write(
            caller, header.nodeid, request.fh, request.offset, request.data, request.kill_suidgid
        )
        abi.WRITE_OUT.pack_into(out, HEADER, count, 0)
        return abi.WRITE_OUT.size

    @OPERATIONS.handles(Opcode.FLUSH, rq.decode_flush)
    async def _on_flush(
        self, header: rq.InHeader, request: rq.Flush, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.flush(caller, header.nodeid, request.fh, request.lock_owner)
        return 0

    @OPERATIONS.handles(Opcode.RELEASE, rq.decode_release)
    async def _on_release(
        self, header: rq.InHeader, request: rq.Release, caller: Caller, out: memoryview, limit: int
    ) -> int:
        try:
            await self.fs.release(
                caller, header.nodeid, request.fh, request.lock_owner, request.flock_release
            )
        finally:
            if self.backing is not None:
                self.backing.release(request.fh)
        return 0

    @OPERATIONS.handles(Opcode.FSYNC, rq.decode_fsync)
    async def _on_fsync(
        self, header: rq.InHeader, request: rq.Fsync, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.fsync(caller, header.nodeid, request.fh, request.datasync)
        return 0

    @OPERATIONS.handles(Opcode.FALLOCATE, rq.decode_fallocate)
    async def _on_fallocate(
        self,
        header: rq.InHeader,
        request: rq.Fallocate,
        caller: Caller,
        out: memoryview,
        limit: int,
    ) -> int:
        await self.fs.fallocate(
            caller, header.nodeid, request.fh, request.mode, request.offset, request.length
        )
        return 0

    @OPERATIONS.handles(Opcode.LSEEK, rq.decode_lseek)
    async def _on_lseek(
        self, header: rq.InHeader, request: rq.Lseek, caller: Caller, out: memoryview, limit: int
    ) -> int:
        offset = await self.fs.lseek(
            caller, header.nodeid, request.fh, request.offset, request.whence
        )
        abi.LSEEK_OUT.pack_into(out, HEADER, offset)
        return abi.LSEEK_OUT.size

    @OPERATIONS.handles(Opcode.COPY_FILE_RANGE, rq.decode_copy_file_range)
    async def _on_copy_file_range(
        self,
        header: rq.InHeader,
        request: rq.CopyFileRange,
        caller: Caller,
        out: memoryview,
        limit: int,
    ) -> int:
        count = await self.fs.copy_file_range(
            caller,
            header.nodeid,
            request.fh_in,
            request.offset_in,
            request.nodeid_out,
            request.fh_out,
            request.offset_out,
            request.length,
            request.flags,
        )
        abi.WRITE_OUT.pack_into(out, HEADER, count, 0)
        return abi.WRITE_OUT.size

    @OPERATIONS.handles(Opcode.GETLK, rq.decode_lk)
    async def _on_getlk(
        self, header: rq.InHeader, request: rq.Lk, caller: Caller, out: memoryview, limit: int
    ) -> int:
        lock = await self.fs.getlk(caller, header.nodeid, request.fh, request.owner, request.lock)
        replies.lk_out(out, HEADER, lock)
        return abi.FILE_LOCK.size

    @OPERATIONS.handles(Opcode.SETLK, rq.decode_lk)
    @OPERATIONS.handles(Opcode.SETLKW, rq.decode_lk)
    async def _on_setlk(
        self, header: rq.InHeader, request: rq.Lk, caller: Caller, out: memoryview, limit: int
    ) -> int:
        wait = header.opcode == Opcode.SETLKW
        async with parked() if wait else contextlib.nullcontext():
            await self.fs.setlk(
                caller, header.nodeid, request.fh, request.owner, request.lock, wait, request.flock
            )
        return 0

    # -- directories --------------------------------------------------------

    @OPERATIONS.handles(Opcode.OPENDIR, rq.decode_open)
    async def _on_opendir(
        self, header: rq.InHeader, request: rq.Open, caller: Caller, out: memoryview, limit: int
    ) -> int:
        replies.open_out(out, HEADER, await self.fs.opendir(caller, header.nodeid, request.flags))
        return abi.OPEN_OUT.size

    @OPERATIONS.handles(Opcode.READDIR, rq.decode_read)
    @OPERATIONS.handles(Opcode.READDIRPLUS, rq.decode_read)
    async def _on_readdir(
        self, header: rq.InHeader, request: rq.Read, caller: Caller, out: memoryview, limit: int
    ) -> int:
        plus = header.opcode == Opcode.READDIRPLUS
        end = min(limit, HEADER + request.size)
        position = HEADER

        def add(name: bytes, ino: int, dtype: int, next_offset: int, entry: Any) -> bool:
            nonlocal position
            if plus:
                after = replies.direntplus(out, position, end, name, ino, next_offset, dtype, entry)
            else:
                after = replies.dirent(out, position, end, name, ino, next_offset, dtype)
            if after < 0:
                return False
            position = after
            return True

        await self.fs.readdir(caller, header.nodeid, request.fh, request.offset, add, plus)
        return position - HEADER

    @OPERATIONS.handles(Opcode.RELEASEDIR, rq.decode_release)
    async def _on_releasedir(
        self, header: rq.InHeader, request: rq.Release, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.releasedir(caller, header.nodeid, request.fh)
        return 0

    @OPERATIONS.handles(Opcode.FSYNCDIR, rq.decode_fsync)
    async def _on_fsyncdir(
        self, header: rq.InHeader, request: rq.Fsync, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.fsyncdir(caller, header.nodeid, request.fh, request.datasync)
        return 0

    @OPERATIONS.handles(Opcode.ACCESS, rq.decode_access)
    async def _on_access(
        self, header: rq.InHeader, request: rq.Access, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.access(caller, header.nodeid, request.mask)
        return 0

    # -- extended attributes --------------------------------------------------

    @OPERATIONS.handles(Opcode.SETXATTR, rq.decode_setxattr)
    async def _on_setxattr(
        self, header: rq.InHeader, request: rq.Setxattr, caller: Caller, out: memoryview, limit: int
    ) -> int:
        await self.fs.setxattr(caller, header.nodeid, request.name, request.value, request.flags)
        return 0

    def _xattr_reply(self, data: bytes, requested: int, out: memoryview, limit: int) -> int:
        """Size 0 asks how big the value is (fuse_getxattr_out); else the value itself."""
        if requested == 0:
            abi.GETXATTR_OUT.pack_into(out, HEADER, len(data), 0)
            return abi.GETXATTR_OUT.size
        _check_xattr_size(len(data), requested, limit)
        out[HEADER : HEADER + len(data)] = data
        return len(data)

    @OPERATIONS.handles(Opcode.GETXATTR, rq.decode_getxattr)
    async def _on_getxattr(
        self, header: rq.InHeader, request: rq.Getxattr, caller: Caller, out: memoryview, limit: int
    ) -> int:
        value = await self.fs.getxattr(caller, header.nodeid, request.name)
        return self._xattr_reply(value, request.size, out, limit)

    @OPERATIONS.handles(Opcode.LISTXATTR, rq.decode_listxattr)
    async def _on_listxattr(
        self,
        header: rq.InHeader,
        request: rq.Listxattr,
        caller: Caller,
        out: memoryview,
        limit: int,
    ) -> int:
        names = await self.fs.listxattr(caller, header.nodeid)
        data = b"".join(name + b"\0" for name in names)
        return self._xattr_reply(data, request.size, out, limit)

    @OPERATIONS.handles(Opcode.REMOVEXATTR, rq.decode_removexattr)
    async def _on_removexattr(
        self,
        header: rq.InHeader,
        request: rq.Removexattr,
        caller: Caller,
        out: memoryview,
        limit: int,
    ) -> int:
        await self.fs.removexattr(caller, header.nodeid, request.name)
        return 0


async def _held_getattr(
    dispatcher: Dispatcher,
    header: rq.InHeader,
    held: AttrReply,
    caller: Caller,
    out: memoryview,
    limit: int,
) -> int:
    """GETATTR's reply from :meth:`FileSystem.held_attr`, as a handler for
    :meth:`Dispatcher._reply_in_buffer` (which places it: in place, or scattered)."""
    replies.attr_out(out, HEADER, held)
    return abi.ATTR_OUT.size
