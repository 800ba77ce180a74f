"""A libnfs context driven by the trio event loop itself, for filehandle calls.

A worker-thread hop costs more than a LOOKUP3 or GETATTR3 round trip on a fast
link (~45 us vs ~40 us here), and the threads fight over the GIL.  libnfs's raw
RPC layer is non-blocking (``rpc_nfs3_*_async`` queue a request;
``rpc_service`` writes, reads and runs callbacks; see libnfs-raw.h), so the
event loop can drive one connection directly: any number of requests in
flight on it, no thread switch.  One task at a time "pumps" the socket
(waits for it to be readable, at most 100 ms so ``rpc_service`` can expire
timed-out calls); every other waiter sleeps until its own reply has come, or
until the pumping is handed to it, so a reply wakes one task, not all of them.

Only calls that need no path walk come here; the path API stays in the
:class:`~hostfs.backends.nfs.pool.ContextPool` threads, where blocking is fine.
A broken connection is first libnfs's to mend: it reconnects and sends the
calls in flight again, same XIDs (see :meth:`LoopRpc.call` for what a resent
CREATE/REMOVE/MKDIR then answers).  A transport failure it reports drops the
context; the next call mounts a new one in a thread, bounded by the request's
deadline, as the pool does.
"""

from __future__ import annotations

import errno
import logging
import random
import select
import stat as stat_module
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from hostfs.backends.nfs.counts import CallCounter
from hostfs.backends.nfs.deadline import deadline, remaining_ms, trio_deadline
from hostfs.backends.nfs.idle import loop_state, ready
from hostfs.backends.nfs.libnfs_c import Context, NfsStat64, TransportError, lib
from hostfs.backends.nfs.listing import NameChange
from hostfs.backends.nfs.pool import mount
from hostfs.backends.nfs.postop import (
    Observe,
    after_access,
    after_create,
    after_getattr,
    after_lookup,
    after_remove,
    created_wcc,
    removed_wcc,
    setattr_request,
)
from hostfs.backends.nfs.rpc3 import (
    POLL_MS,
    REPLY_POLL_NS,
    Request,
    Steps,
    access_request,
    create_request,
    getattr_request,
    lookup_steps,
    mkdir_request,
    remove_request,
    rpc_error,
)

T = TypeVar("T")
Observer = Callable[[bytes, NfsStat64, int], None]

logger = logging.getLogger(__name__)


class LoopRpc:
    def __init__(self, url: bytes, timeout_ms: int) -> None:
        self.url = url
        self.timeout_ms = timeout_ms
        self._context: Context | None = None
        self.counter = CallCounter()
        """Every request sent from the loop, by procedure."""
        self.observer: Observer | None = None
        """Told ``(filehandle, attributes, sent_ns)`` for every post-op attribute replied."""
        self.change_observer: Callable[[NameChange], None] | None = None
        """Told of every CREATE3, MKDIR3 and REMOVE3 once it ended, however it ended
        (:mod:`.listing`)."""
        self._mounting = trio.Lock()
        self._pending: set[Request] = set()
        """In-flight requests: their ctypes callbacks must outlive a cancelled waiter."""
        self._pumping = False
        self._waiting: dict[Request, trio.Event] = {}
        """Requests whose tasks sleep while another task pumps, and what wakes each."""
        self._xid = random.getrandbits(32)
        """The last XID this loop chose; each call takes the next (its retry, the same)."""

    async def lookup(self, directory: bytes, name: bytes) -> tuple[bytes, NfsStat64]:
        """:func:`~.rpc3.lookup_steps` from the event loop, the replies observed."""
        return await self.run(lookup_steps(directory, name, after_lookup, after_getattr))

    async def run(self, steps: Steps[T]) -> T:
        """Drive ``steps`` to the end with :meth:`call`s, each with its observer."""
        try:
            request = next(steps)
            while True:
                request = steps.send(await self.call(request, request.observe))
        except StopIteration as finished:
            result: T = finished.value
            return result

    async def getattr(self, filehandle: bytes) -> NfsStat64:
        return await self.call(getattr_request(filehandle), after_getattr(filehandle))

    async def access(self, filehandle: bytes, access: int) -> int:
        """The ``access`` bits (ACCESS3_*) the server grants on ``filehandle``."""
        return await self.call(access_request(filehandle, access), after_access(filehandle))

    async def setattr(
        self,
        filehandle: bytes,
        mode: int | None,
        uid: int | None,
        gid: int | None,
        size: int | None,
        atime: int | str | None,
        mtime: int | str | None,
    ) -> NfsStat64:
        """SETATTR3 of all the changes at once; the attributes after it."""
        request = setattr_request(filehandle, mode, uid, gid, size, atime, mtime)
        return await self.call(request) or await self.getattr(filehandle)

    async def remove(self, directory: bytes, name: bytes) -> None:
        async def done_before(error: OSError) -> None:
            # The first REMOVE3 removed it; its reply was lost with the connection.
            if error.errno != errno.ENOENT:
                raise error
            logger.info("REMOVE %r sent again after a reconnect: already done", name)

        request = remove_request(directory, name)
        request.read_wcc = removed_wcc
        change = NameChange(directory, name, added=False)
        await self._change(request, change, after_remove(directory), done_before)

    async def create(
        self, directory: bytes, name: bytes, mode: int, uid: int | None, gid: int | None
    ) -> tuple[bytes, NfsStat64]:
        """CREATE3 GUARDED with mode and owner set (RFC 1813 §3.3.8): EEXIST if it exists."""
        request = create_request(directory, name, mode, uid, gid)
        return await self._made(directory, name, request, stat_module.S_IFREG | mode, uid, gid)

    async def mkdir(
        self, directory: bytes, name: bytes, mode: int, uid: int | None, gid: int | None
    ) -> tuple[bytes, NfsStat64]:
        """MKDIR3 with mode and owner set (RFC 1813 §3.3.9)."""
        request = mkdir_request(directory, name, mode, uid, gid)
        return await self._made(directory, name, request, stat_module.S_IFDIR | mode, uid, gid)

    async def _made(
        self,
        directory: bytes,
        name: bytes,
        request: Request[tuple[bytes | None, NfsStat64 | None]],
        mode: int,
        uid: int | None,
        gid: int | None,
    ) -> tuple[bytes, NfsStat64]:
        """The new object's handle and attributes; the reply may omit either (§2.6
        ``post_op_fh3``, ``post_op_attr``; ganesha sends both), then one more call."""
        request.read_wcc = created_wcc

        async def made_before(error: OSError) -> tuple[bytes | None, NfsStat64 | None]:
            # EEXIST for a call sent again: is what is there what the first one made?
            if error.errno != errno.EEXIST:
                raise error
            filehandle, st = await self.lookup(directory, name)
            if not _as_made(st, mode, uid, gid):
                raise error
            logger.info("CREATE/MKDIR %r sent again after a reconnect: already done", name)
            return filehandle, st

        change = NameChange(directory, name, added=True)
        observe = after_create(directory)
        filehandle, attributes = await self._change(request, change, observe, made_before)
        if filehandle is None:
            return await self.lookup(directory, name)
        return filehandle, attributes or await self.getattr(filehandle)

    async def call(
        self,
        request: Request[T],
        observe: Observe | None = None,
        settle: Callable[[OSError], Awaitable[T]] | None = None,
    ) -> T:
        """``request``'s reply; if the connection drops before it, the same call once
        more on a new one, under the same XID.  The post-op attributes ``observe``
        finds in a successful reply go to :attr:`observer`.

        libnfs 4.0 does that itself while its reconnect succeeds: it requeues the
        encoded call (``rpc_reconnect_requeue``), so the XID is the same; and
        ``nfs_set_autoreconnect`` after the mount does not reach the connection,
        whose setting was copied at mount time.  When libnfs gives up instead, this
        sends it again on a fresh mount with the XID it chose (``rpc_set_next_xid``).

        RFC 1813 §3.3 (and the RPC retransmission rules of RFC 5531 §9) let a
        client retransmit a call with its XID so that the server's duplicate-request
        cache answers a non-idempotent one (CREATE, REMOVE, MKDIR) that it already
        did, instead of doing it again; DOCA SNAP virtio-fs resends the same way.
        libnfs 4.0 lets us choose a call's XID (``rpc_set_next_xid``).  A cache may
        have forgotten (the server restarted, or it keys TCP entries by the client's
        port, which a new connection changes): then the retried call answers
        NFS3ERR_NOENT/NFS3ERR_EXIST for what the first one did, and ``settle`` turns
        that error into the outcome after checking it (or raises it).
        """
        request.observe = observe
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        xid = self._xid
        try:
            return await self._send(request, xid)
        except TransportError as error:
            if error.errno == errno.ETIMEDOUT:
                raise  # the deadline is spent
            logger.info("NFS connection lost during %s: sending it again", request.what)
        except OSError as error:
            if settle is None or not request.resent:
                raise
            return await settle(error)  # libnfs reconnected and sent it again itself
        try:
            return await self._send(request.again(), xid)
        except TransportError:
            raise
        except OSError as error:
            if settle is None:
                raise
            return await settle(error)

    async def _change(
        self,
        request: Request[T],
        change: NameChange,
        observe: Observe,
        settle: Callable[[OSError], Awaitable[T]],
    ) -> T:
        """:meth:`call` for a CREATE3, MKDIR3 or REMOVE3: :attr:`change_observer` hears
        of ``change`` however the call ends (its ``wcc`` set only by a successful reply)."""
        request.change = change
        try:
            return await self.call(request, observe, settle)
        finally:
            if self.change_observer is not None:
                self.change_observer(change)

    async def _send(self, request: Request[T], xid: int) -> T:
        """Send ``request`` on the loop's connection and wait for its reply, both
        within the request's deadline (:mod:`deadline`): waiting for another
        task's mount counts, and libnfs expires the RPC when the deadline passes."""
        when = deadline(self.timeout_ms / 1000)
        context = self._context  # connected: no cancel scope to enter (~6 us)
        if context is None:
            with trio.move_on_at(trio_deadline(when)):
                context = await self._connect(when)
            if context is None:
                what = request.what
                raise OSError(errno.ETIMEDOUT, f"{what}: no NFS connection before the deadline")
        context.deadline = when
        rpc = lib.nfs_get_rpc_context(context.armed())
        context.deadline = None
        self._pending.add(request)
        self.counter.add(request.procedure)
        sent = time.monotonic_ns()
        try:
            lib.rpc_set_next_xid(rpc, xid)
            request.start(rpc)
            self._service(rpc, lib.rpc_which_events(rpc) & select.POLLOUT)  # send it now
            while request.done is None:
                if context is not self._context:
                    raise TransportError(errno.EIO, f"{request.what}: connection dropped")
                if self._pumping:
                    await self._wait_for_reply(request)
                else:
                    await self._pump(context, rpc, request)
        except TransportError:
            self._drop(context)
            raise
        finally:
            if request.done is not None or context is not self._context:
                self._pending.discard(request)
            if not self._pumping:
                self._hand_over()
        result = request.result()
        if self.observer is not None:
            for filehandle, attributes in request.seen:
                self.observer(filehandle, attributes, sent)
        return result

    async def _pump(self, context: Context, rpc: int, request: Request[T]) -> None:
        """One ``rpc_service`` round: wait for ``request``'s reply in the loop's place
        (:meth:`_poll`), else in trio's epoll (or 100 ms, to expire timeouts).

        Other runnable tasks first get their turn (one checkpoint), since they
        usually block soon (a FUSE worker going back to /dev/fuse) and leave the
        loop idle: then the reply still costs one ``select``, not the epoll round.
        """
        self._pumping = True
        try:
            idle, loop = loop_state()
            if not idle:
                await trio.lowlevel.checkpoint()
                if context is not self._context or request.done is not None:
                    return  # dropped meanwhile, or answered by another task's read
                idle, loop = loop_state()
            if self._poll(rpc, request, idle, loop):
                return
            revents = 0
            try:
                with trio.move_on_after(POLL_MS / 1000):
                    await trio.lowlevel.wait_readable(lib.rpc_get_fd(rpc))
                    revents = select.POLLIN
            except trio.ClosedResourceError:
                return  # another task dropped the connection meanwhile
            if context is not self._context:
                return  # ... and destroyed it: rpc is gone
            self._service(rpc, revents | lib.rpc_which_events(rpc) & select.POLLOUT)
        finally:
            self._pumping = False
            self._wake_answered()
        self._pending = {request for request in self._pending if request.done is None}

    async def _wait_for_reply(self, request: Request[T]) -> None:
        """Sleep while another task pumps, until ``request`` is answered or the
        pumping is handed to this task (:meth:`_hand_over`)."""
        woken = self._waiting[request] = trio.Event()
        try:
            await woken.wait()
        finally:
            del self._waiting[request]

    def _wake_answered(self) -> None:
        """Wake the sleepers whose replies the last ``rpc_service`` round brought."""
        for request, woken in self._waiting.items():
            if request.done is not None:
                woken.set()

    def _hand_over(self) -> None:
        """The pumping task is leaving (answered, cancelled or failed): wake one
        sleeper still waiting for its reply to pump in its place."""
        for request, woken in self._waiting.items():
            if request.done is None:
                woken.set()
                return

    def _poll(self, rpc: int, request: Request[T], idle: float, loop: int | None) -> bool:
        """Wait for ``request``'s reply in the kernel, in the event loop's place
        (:mod:`.idle`), while no other task is runnable; whether it came.

        On loopback or a fast link the reply follows the call within tens of
        microseconds; parking in trio's epoll and being woken costs about as much
        again (a cancel scope for the 100 ms timeout, ``epoll_ctl``,
        ``epoll_wait``, a task switch).  Another runnable task means no wait, so
        it never delays other work; nor does other I/O or a timer: the wait ends
        when trio has anything to do, or at its next deadline, or after
        :data:`POLL_MS` (to expire timed-out calls).  Where trio's epoll cannot
        be watched, the wait lasts at most :data:`REPLY_POLL_NS`.  Asked once, not
        per read, as hostfs.devfuse.session asks it: no task can become runnable
        while this one waits without yielding (the callbacks only record each
        reply).  ``idle``, ``loop``: :func:`~.idle.loop_state`, taken just before (a task
        still to run in the current scheduler pass counts as runnable: missed, it
        waited behind this call's reply, up to POLL_MS from a slow server).

        A wait in the kernel, not reads in a loop: on 2 cores shared with the
        server the reads took the CPU the server needed to answer.
        """
        if not idle:
            return False
        window = REPLY_POLL_NS if loop is None else int(min(POLL_MS / 1000, idle) * 1e9)
        until = time.perf_counter_ns() + window
        fd = lib.rpc_get_fd(rpc)
        while request.done is None:
            left = until - time.perf_counter_ns()
            if left <= 0:
                return False
            revents, busy = ready(fd, lib.rpc_which_events(rpc), left, loop)
            self._service(rpc, revents)
            if busy:
                break
        return request.done is not None

    @staticmethod
    def _service(rpc: int, revents: int) -> None:
        """Read replies and run their callbacks (POLLIN), write queued requests (POLLOUT):
        the socket is non-blocking, so this never waits."""
        if lib.rpc_service(rpc, revents) < 0:
            raise TransportError(errno.EIO, f"NFS connection: {rpc_error(rpc)}")

    async def _connect(self, when: float) -> Context:
        """The loop's context, mounted (bounded by ``when``) if there is none."""
        if self._context is not None:
            return self._context
        async with self._mounting:
            if self._context is None:
                left = remaining_ms(when)
                context = await trio.to_thread.run_sync(mount, self.url, left)
                self._context = context
            return self._context

    def _drop(self, context: Context) -> None:
        if context is self._context:
            self._context = None
            fd = lib.rpc_get_fd(lib.nfs_get_rpc_context(context.pointer))
            if fd >= 0:
                trio.lowlevel.notify_closing(fd)
            context.destroy()
            self._pending.clear()
            for woken in self._waiting.values():
                woken.set()  # each finds its connection gone

    def close(self) -> None:
        if self._context is not None:
            self._drop(self._context)


def _as_made(st: NfsStat64, mode: int, uid: int | None, gid: int | None) -> bool:
    """Whether the object found is what a CREATE3/MKDIR3 with this type and mode
    (and owner, where given) would have made: an empty file or directory of
    that type, those permission bits, that owner."""
    if st.mode != mode or (uid is not None and st.uid != uid):
        return False
    if gid is not None and st.gid != gid:
        return False
    return st.size == 0 if stat_module.S_ISREG(mode) else True
