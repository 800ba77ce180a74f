"""A pool of libnfs contexts, each owned by one long-lived worker thread.

libnfs 4.0 contexts are not thread safe, and each synchronous call blocks for
a round trip, so the event loop never calls libnfs.  Each context lives in a
:class:`Worker` thread that takes calls from its own queue; :meth:`ContextPool.run`
waits for an idle worker, hands it the call and sleeps until the worker
reschedules the task.  A hop costs a queue put and one ``run_sync_soon``,
about half of ``trio.to_thread.run_sync`` (no thread cache hand-off, no
limiter).  At most ``size`` calls are in flight, like the Linux client's
``nconnect`` connections.

A context whose RPC timed out or whose connection broke is destroyed, not
reused; the worker mounts a fresh one for its next call, which is how service
resumes once the server is back (libnfs 4.0's own reconnect gives up for good
after a refused connection).  Mounting is bounded by the same RPC timeout.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import outcome
import trio

from hostfs.backends.nfs.counts import CallCounter
from hostfs.backends.nfs.deadline import deadline, remaining_ms, trio_deadline
from hostfs.backends.nfs.libnfs_c import Context, TransportError

logger = logging.getLogger(__name__)

T = TypeVar("T")

Job = tuple[Callable[[Context], Any], Callable[[outcome.Outcome], None], float]
"""A call, where its outcome goes, and its deadline (``time.monotonic()``)."""


class Worker:
    """One thread and the context only it touches (mounted on first use)."""

    def __init__(self, url: bytes, timeout_ms: int, name: str) -> None:
        self.url = url
        self.timeout_ms = timeout_ms
        self.context: Context | None = None
        self.counter = CallCounter()
        """The calls this worker's contexts made (:mod:`hostfs.backends.nfs.counts`)."""
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def stop(self, timeout: float) -> None:
        """Unmount once the queued calls are done; wait at most ``timeout`` seconds."""
        self._jobs.put(None)
        self._thread.join(timeout)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, reply, when = job
            reply(outcome.capture(self._call, call, when))
            # A finished call must not pin its buffers (views of guest memory,
            # say) while this thread sleeps until the next one.
            del job, call, reply
        if self.context is not None:
            self.context.destroy()

    def _call(self, call: Callable[[Context], T], when: float) -> T:
        """``call`` with every RPC it makes (and the mount, if needed) held to ``when``."""
        if self.context is None:
            self.context = mount(self.url, remaining_ms(when))
            self.context.counter = self.counter
        self.context.deadline = when
        try:
            return call(self.context)
        except TransportError as error:
            logger.warning("NFS context dropped: %s", error)
            self.context.destroy()
            self.context = None
            raise
        finally:
            if self.context is not None:
                self.context.deadline = None


def mount(url: bytes, timeout_ms: int) -> Context:
    """A mounted context (blocking, bounded by the timeout); the server's refusal -> EIO."""
    try:
        return Context(url, timeout_ms)
    except OSError as error:
        code = errno.ETIMEDOUT if error.errno == errno.ETIMEDOUT else errno.EIO
        raise OSError(code, f"NFS server unavailable: {error.strerror}") from error


class ContextPool:
    def __init__(self, url: bytes, size: int, timeout_ms: int) -> None:
        self.size = size
        self.timeout_ms = timeout_ms
        self._workers = [Worker(url, timeout_ms, f"nfs-{index}") for index in range(size)]
        self._idle = list(self._workers)
        self._available = trio.Semaphore(size)
        self._closed = False

    @property
    def counters(self) -> list[CallCounter]:
        return [worker.counter for worker in self._workers]

    @property
    def connected(self) -> int:
        """How many contexts are mounted now."""
        return sum(worker.context is not None for worker in self._workers)

    async def run(self, call: Callable[[Context], T]) -> T:
        """``call(context)`` in the thread of a context nobody else is using.

        Like ``trio.to_thread.run_sync``, a started call is not abandoned on
        cancellation: the context stays busy until libnfs returns (bounded by
        the RPC timeout).  Waiting for a free context counts against the request's
        deadline (:mod:`deadline`): ETIMEDOUT if none frees up in time.
        """
        when = deadline(self.timeout_ms / 1000)
        with trio.move_on_at(trio_deadline(when)) as waiting:
            await self._available.acquire()
        if waiting.cancelled_caught:
            raise OSError(errno.ETIMEDOUT, "no NFS context was free before the request's deadline")
        try:
            if self._closed:
                raise OSError(errno.EIO, "NFS backend is closed")
            # Most recently used first: its connection and thread are warm.
            worker = self._idle.pop()
            try:
                return await _wait_for(worker, call, when)
            finally:
                self._idle.append(worker)
        finally:
            self._available.release()

    def close(self) -> None:
        """Unmount every context (the core released everything; calls are done)."""
        self._closed = True
        for worker in self._workers:
            worker.stop(self.timeout_ms / 1000 + 1)


async def _wait_for(worker: Worker, call: Callable[[Context], T], when: float) -> T:
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()

    def reply(result: outcome.Outcome) -> None:
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)

    worker.submit((call, reply, when))
    return await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
