"""A pool of mounted libnfs contexts, each driven by one worker thread at a time.

libnfs 4.0 contexts are not thread safe, and each synchronous call blocks for
a round trip, so the event loop never calls libnfs: :meth:`ContextPool.run`
takes an idle context (or mounts a new one), runs the call in a trio worker
thread and puts the context back.  At most ``size`` calls are in flight
(a ``trio.CapacityLimiter``), like the Linux client's ``nconnect`` connections.

A context whose RPC timed out or whose connection broke is destroyed, not
reused; the next call mounts a fresh one, which is how service resumes once
the server is back (libnfs 4.0's own reconnect gives up for good after a
refused connection).  Mounting is bounded by the same RPC timeout.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import trio

from hostfs.backends.nfs.libnfs_c import Context, TransportError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ContextPool:
    def __init__(self, url: bytes, size: int, timeout_ms: int) -> None:
        self.url = url
        self.size = size
        self.timeout_ms = timeout_ms
        self._limiter = trio.CapacityLimiter(size)
        self._idle: list[Context] = []
        self._lock = threading.Lock()
        self._closed = False

    def connect(self) -> Context:
        """Mount one more context (blocking); raises OSError when the server refuses."""
        return Context(self.url, self.timeout_ms)

    def add(self, context: Context) -> None:
        with self._lock:
            self._idle.append(context)

    async def run(self, call: Callable[[Context], T]) -> T:
        """``call(context)`` in a worker thread with a context nobody else is using."""
        return await trio.to_thread.run_sync(self._run_in_thread, call, limiter=self._limiter)

    def _run_in_thread(self, call: Callable[[Context], T]) -> T:
        with self._lock:
            if self._closed:
                raise OSError(errno.EIO, "NFS backend is closed")
            context = self._idle.pop() if self._idle else None
        if context is None:
            context = self._reconnect()
        try:
            result = call(context)
        except TransportError as error:
            logger.warning("NFS context dropped: %s", error)
            context.destroy()
            raise
        except BaseException:
            self.add(context)
            raise
        self.add(context)
        return result

    def _reconnect(self) -> Context:
        try:
            return self.connect()
        except OSError as error:
            code = errno.ETIMEDOUT if error.errno == errno.ETIMEDOUT else errno.EIO
            raise OSError(code, f"NFS server unavailable: {error.strerror}") from error

    def close(self) -> None:
        """Unmount every idle context (workers are done: the core released everything)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for context in idle:
            context.destroy()
