"""A libnfs context driven by the trio event loop itself, for filehandle calls.

A worker-thread hop costs more than a LOOKUP3 or GETATTR3 round trip on a fast
link (~45 us vs ~40 us here), and the threads fight over the GIL.  libnfs's raw
RPC layer is non-blocking (``rpc_nfs3_*_async`` queue a request;
``rpc_service`` writes, reads and runs callbacks; see libnfs-raw.h), so the
event loop can drive one connection directly: any number of requests in
flight on it, no thread switch.  One task at a time "pumps" the socket
(waits for it to be readable, at most 100 ms so ``rpc_service`` can expire
timed-out calls) and every waiter checks its own request after each round.

Only calls that need no path walk come here; the path API stays in the
:class:`~hostfs.backends.nfs.pool.ContextPool` threads, where blocking is fine.
A transport failure drops the context (libnfs's autoreconnect is off for it, so
errors surface instead of requeueing); the next call mounts a new one in a
thread, bounded by the RPC timeout, as the pool does.
"""

from __future__ import annotations

import errno
import select
import time
from collections.abc import Callable
from typing import TypeVar

import trio

from hostfs.backends.nfs.counts import CallCounter
from hostfs.backends.nfs.libnfs_c import Context, NfsStat64, TransportError, lib
from hostfs.backends.nfs.pool import mount
from hostfs.backends.nfs.postop import (
    Observe,
    after_access,
    after_create,
    after_getattr,
    after_lookup,
    after_remove,
    setattr_request,
)
from hostfs.backends.nfs.rpc3 import (
    POLL_MS,
    Request,
    access_request,
    create_request,
    getattr_request,
    lookup_request,
    mkdir_request,
    remove_request,
    rpc_error,
)

T = TypeVar("T")
Observer = Callable[[bytes, NfsStat64, int], None]


class LoopRpc:
    def __init__(self, url: bytes, timeout_ms: int) -> None:
        self.url = url
        self.timeout_ms = timeout_ms
        self._context: Context | None = None
        self.counter = CallCounter()
        """Every request sent from the loop, by procedure."""
        self.observer: Observer | None = None
        """Told ``(filehandle, attributes, sent_ns)`` for every post-op attribute replied."""
        self._mounting = trio.Lock()
        self._pending: set[Request] = set()
        """In-flight requests: their ctypes callbacks must outlive a cancelled waiter."""
        self._pumping = False
        self._progress = trio.Event()

    async def lookup(self, directory: bytes, name: bytes) -> tuple[bytes, NfsStat64]:
        """LOOKUP3 (plus GETATTR3 if the server sent no attributes; ganesha always does)."""
        fh, attributes = await self.call(lookup_request(directory, name), after_lookup(directory))
        return fh, attributes or await self.getattr(fh)

    async def getattr(self, fh: bytes) -> NfsStat64:
        return await self.call(getattr_request(fh), after_getattr(fh))

    async def access(self, fh: bytes, access: int) -> int:
        """The ``access`` bits (ACCESS3_*) the server grants on ``fh``."""
        return await self.call(access_request(fh, access), after_access(fh))

    async def setattr(
        self,
        fh: bytes,
        mode: int | None,
        uid: int | None,
        gid: int | None,
        size: int | None,
        atime: int | str | None,
        mtime: int | str | None,
    ) -> NfsStat64:
        """SETATTR3 of all the changes at once; the attributes after it."""
        request = setattr_request(fh, mode, uid, gid, size, atime, mtime)
        return await self.call(request) or await self.getattr(fh)

    async def remove(self, directory: bytes, name: bytes) -> None:
        await self.call(remove_request(directory, name), after_remove(directory))

    async def create(
        self, directory: bytes, name: bytes, mode: int, uid: int | None, gid: int | None
    ) -> tuple[bytes, NfsStat64]:
        """CREATE3 GUARDED with mode and owner set (RFC 1813 §3.3.8): EEXIST if it exists."""
        return await self._made(directory, name, create_request(directory, name, mode, uid, gid))

    async def mkdir(
        self, directory: bytes, name: bytes, mode: int, uid: int | None, gid: int | None
    ) -> tuple[bytes, NfsStat64]:
        """MKDIR3 with mode and owner set (RFC 1813 §3.3.9)."""
        return await self._made(directory, name, mkdir_request(directory, name, mode, uid, gid))

    async def _made(
        self, directory: bytes, name: bytes, request: Request[tuple[bytes | None, NfsStat64 | None]]
    ) -> tuple[bytes, NfsStat64]:
        """The new object's handle and attributes; the reply may omit either (§2.6
        ``post_op_fh3``, ``post_op_attr``; ganesha sends both), then one more call."""
        fh, attributes = await self.call(request, after_create(directory))
        if fh is None:
            return await self.lookup(directory, name)
        return fh, attributes or await self.getattr(fh)

    async def call(self, request: Request[T], observe: Observe | None = None) -> T:
        """Send ``request`` on the loop's connection and wait for its reply; hand the
        post-op attributes ``observe`` finds in a successful one to :attr:`observer`."""
        request.observe = observe
        context = await self._connect()
        rpc = lib.nfs_get_rpc_context(context.pointer)
        self._pending.add(request)
        self.counter.add(request.procedure)
        sent = time.monotonic_ns()
        try:
            request.start(rpc)
            self._service(rpc, lib.rpc_which_events(rpc) & select.POLLOUT)  # send it now
            while request.done is None:
                if context is not self._context:
                    raise TransportError(errno.EIO, f"{request.what}: connection dropped")
                if self._pumping:
                    await self._progress.wait()
                else:
                    await self._pump(context, rpc)
        except TransportError:
            self._drop(context)
            raise
        finally:
            if request.done is not None or context is not self._context:
                self._pending.discard(request)
        result = request.result()
        if self.observer is not None:
            for fh, attributes in request.seen:
                self.observer(fh, attributes, sent)
        return result

    async def _pump(self, context: Context, rpc: int) -> None:
        """One ``rpc_service`` round: wait for replies (or 100 ms, to expire timeouts)."""
        self._pumping = True
        try:
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
            self._progress.set()
            self._progress = trio.Event()
        self._pending = {request for request in self._pending if request.done is None}

    @staticmethod
    def _service(rpc: int, revents: int) -> None:
        """Read replies and run their callbacks (POLLIN), write queued requests (POLLOUT):
        the socket is non-blocking, so this never waits."""
        if lib.rpc_service(rpc, revents) < 0:
            raise TransportError(errno.EIO, f"NFS connection: {rpc_error(rpc)}")

    async def _connect(self) -> Context:
        if self._context is not None:
            return self._context
        async with self._mounting:
            if self._context is None:
                context = await trio.to_thread.run_sync(mount, self.url, self.timeout_ms)
                lib.nfs_set_autoreconnect(context.pointer, 0)
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

    def close(self) -> None:
        if self._context is not None:
            self._drop(self._context)
