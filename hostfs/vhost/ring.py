"""One vhost-user ring: what SET_VRING_* configured, and the task that serves it.

Its lifecycle (vhost-user.rst, "Ring states": started/stopped, enabled/disabled)
is :class:`~hostfs.vhost.ring_state.RingLifecycle`; this module moves it only where
the serving task starts, breaks and ends.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import trio

from hostfs.fuse.ratelimit import RateLimitedLog
from hostfs.fuse.transport import RequestHandler, Token, Transport
from hostfs.vhost.eventfd import EVENTFD_VALUE, close_fd, signal_eventfd
from hostfs.vhost.kernel_wait import KernelWait
from hostfs.vhost.memory import GuestMemory, GuestMemoryError
from hostfs.vhost.messages import VringAddr
from hostfs.vhost.polling import POLL_MAX_NS, AdaptivePoll
from hostfs.vhost.ring_state import RingLifecycle, RingState
from hostfs.vhost.virtqueue import (
    Chain,
    RingError,
    SplitQueue,
    avail_ring_size,
    desc_table_size,
    used_ring_size,
)

logger = logging.getLogger(__name__)
guest_errors = RateLimitedLog(logger)
"""A guest breaks a queue, or makes requests fail, as often as it likes (a front-end
restarts broken queues); tracebacks only at DEBUG."""

POLL_INTERVAL = 0.001
"""How often a ring without a kick fd (SET_VRING_KICK with NOFD) is polled."""


INLINE_BATCH = 64
"""Requests served in the ring's own task before it lets the other tasks run (the other
rings, the vhost-user socket): a guest that keeps its ring full must not starve them."""


POLL_SLICE_NS = 8000
"""Longest stretch a ring polls (hostfs.vhost.polling) without letting other tasks run:
a request kicked on another ring waits at most this long for the trio thread."""


def _always(readable: Sequence[memoryview]) -> bool:
    return True


class Ring:
    """A ring's configuration and, while it runs, its serving task."""

    def __init__(self, index: int, poll_max_ns: int = POLL_MAX_NS) -> None:
        self.index = index
        self.size = 0
        self.addr: VringAddr | None = None
        self.base = 0
        self.kick_fd: int | None = None
        self.call_fd: int | None = None
        self.err_fd: int | None = None
        self.lifecycle = RingLifecycle(index)
        self.queue: SplitQueue | None = None
        self.transport = Transport(f"queue {index}", errors=guest_errors)
        """The per-request plumbing every transport shares (hostfs.fuse.transport)."""
        self._wait_scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        """Set when the serving task ends: what :meth:`stop` waits for."""
        self._stopped.set()
        self.poll = AdaptivePoll(poll_max_ns)
        """How long the ring looks for a request before it sleeps (hostfs.vhost.polling)."""
        self._kernel_wait = KernelWait()
        """Where it sleeps when nothing else would run (hostfs.vhost.kernel_wait)."""

    @property
    def running(self) -> bool:
        """Whether the serving task runs (SERVING, STOPPING or FAILING)."""
        return self.lifecycle.task_alive

    @property
    def requests(self) -> int:
        """Chains this ring has answered since the device made it."""
        return self.transport.requests

    @property
    def parked_waits(self) -> int:
        """Requests of this ring parked in a lock wait now."""
        return len(self.transport.waits)

    def close_fds(self) -> None:
        self._kernel_wait.close()
        for fd in (self.kick_fd, self.call_fd, self.err_fd):
            close_fd(fd)
        self.kick_fd = self.call_fd = self.err_fd = None

    def replace_kick(self, fd: int | None) -> None:
        """A new kick fd (checked by :func:`~hostfs.vhost.eventfd.adopt_eventfd`), or polling."""
        old, self.kick_fd = self.kick_fd, fd
        self._wake()
        self._kernel_wait.close()
        close_fd(old)

    def _wake(self) -> None:
        """End a wait for a kick now: cancel a polling sleep; on a kick fd, kick it
        ourselves (cheaper than a cancel scope around every wait, which costs a
        request about 4 us).  A replaced kick fd needs neither: closing it ends the wait."""
        if self._wait_scope is not None:
            self._wait_scope.cancel()
        elif self.kick_fd is not None:
            signal_eventfd(self.kick_fd)

    def mark_broken(self, reason: str) -> None:
        """The guest broke this ring: stop serving it and tell the front-end (SET_VRING_ERR)."""
        guest_errors.log("broken queues", logging.ERROR, "queue %d broken: %s", self.index, reason)
        self.lifecycle.broke()
        if self.err_fd is not None:
            signal_eventfd(self.err_fd)

    def build_queue(self, memory: GuestMemory, event_idx: bool, indirect: bool) -> SplitQueue:
        """Locate the rings (front-end virtual addresses, SET_VRING_ADDR) in guest memory."""
        if self.addr is None or self.size == 0:
            raise RingError("ring started before SET_VRING_NUM and SET_VRING_ADDR")
        try:
            desc = memory.frontend_view(self.addr.desc_user_addr, desc_table_size(self.size))
            avail = memory.frontend_view(self.addr.avail_user_addr, avail_ring_size(self.size))
            used = memory.frontend_view(self.addr.used_user_addr, used_ring_size(self.size))
        except GuestMemoryError as error:
            raise RingError(str(error)) from error
        return SplitQueue(
            memory,
            self.size,
            desc,
            avail,
            used,
            last_avail_idx=self.base,
            event_idx=event_idx,
            indirect=indirect,
        )

    async def serve(
        self,
        queue: SplitQueue,
        handler: RequestHandler,
        concurrency: int,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Drain the ring on every kick until stopped; in-flight requests finish first.

        ``concurrency`` 0 handles one chain at a time in this task; N > 0 lets up to
        N chains run at once (``SessionConfig.concurrency``; not ``--thread-pool-size``,
        which is the local backend's worker threads).
        Requests parked in a lock wait (hostfs.fuse.parking) do not hold up a stop.
        """
        self.lifecycle.serve()
        self.queue = queue
        self.transport.begin(handler)
        self.transport.enter(None)  # inline requests wait in place; request tasks inherit
        self._stopped = trio.Event()
        # With "stopped" below: whether the guest's driver ever started the device.
        logger.info("queue %d started", self.index)
        task_status.started()
        limiter = trio.CapacityLimiter(concurrency) if concurrency else None
        try:
            async with trio.open_nursery() as nursery:
                await self._drain_loop(queue, handler, nursery, limiter)
        except Exception as error:
            # A bug of ours must not take the other queues and the connection down with it.
            guest_errors.log(
                "broken queues", logging.ERROR, "queue %d failed", self.index, trace=True
            )
            self.mark_broken(f"internal error: {error!r}")
        finally:
            self.base = queue.last_avail_idx
            queue.release()
            self.queue = None
            self.lifecycle.ended()
            self._stopped.set()
            # Which queues the guest used (Linux >= 6.11 picks one by CPU), for the log.
            logger.info("queue %d stopped: %d requests so far", self.index, self.requests)

    async def _drain_loop(
        self,
        queue: SplitQueue,
        handler: RequestHandler,
        nursery: trio.Nursery,
        limiter: trio.CapacityLimiter | None,
    ) -> None:
        may_yield = getattr(handler, "may_yield", _always)
        serve = self.transport.serve
        complete = queue.complete
        inline = 0
        poll = self.poll
        now = time.perf_counter_ns
        idle_since: int | None = None
        """When the ring last found nothing: a wait, polling included, starts there."""
        while self.lifecycle.state is RingState.SERVING:
            try:
                chains = queue.pop_all()
                if not chains and poll.window_ns and not (limiter and limiter.borrowed_tokens):
                    # Nothing of ours runs in a task (which the polling would hold up).
                    if idle_since is None:
                        idle_since = now()
                    chains = await self._poll(queue, idle_since + poll.window_ns)
                    if self.lifecycle.state is not RingState.SERVING:
                        break  # stopped during a turn it gave; it popped nothing then
                if chains and idle_since is not None:
                    poll.observe(now() - idle_since)
                    idle_since = None
                if not chains:
                    # Only now, about to sleep, ask for a kick, then look again
                    # (virtqueue_pop after virtio_queue_set_notification in QEMU): a
                    # chain added after the last pop but before avail_event moved is
                    # not kicked, so we must see it here, not sleep on the kick fd.
                    # While chains keep coming avail_event stays behind, and the
                    # driver kicks no one who is awake (QEMU's virtio_queue_set_
                    # notification(vq, 0) around its pop loop).
                    queue.request_kick()
                    chains = queue.pop_all()
            except RingError as error:
                self.mark_broken(str(error))
                return
            for chain in chains:
                if limiter is None or not may_yield(chain.readable):
                    # A request that cannot wait is served here and now: a task of its
                    # own would cost it a spawn and two scheduler passes (most of a
                    # LOOKUP's time), and it would not run any sooner.  No coroutine
                    # of ours around the transport's: a layer costs every request.
                    complete(chain, await serve(chain.readable, chain.writable))
                    inline += 1
                    if inline == INLINE_BATCH:
                        inline = 0
                        self._notify(queue)
                        await trio.lowlevel.checkpoint()
                else:
                    await limiter.acquire_on_behalf_of(chain)
                    nursery.start_soon(self._handle_concurrently, queue, chain, limiter)
            if chains:
                # One interrupt for every chain served here (virtio 1.2 §2.7.10 decides if
                # any).  With none popped there is nothing of this task's to announce: a
                # request task announces its own.
                self._notify(queue)
            else:
                inline = 0
                if idle_since is None:
                    idle_since = now()
                await self._wait_for_kick()

    async def _poll(self, queue: SplitQueue, until_ns: int) -> list[Chain]:
        """Look at ``avail->idx`` until ``until_ns`` (hostfs.vhost.polling); the chains
        that came, or none.  A turn for the other tasks (the other rings, the socket)
        every POLL_SLICE_NS: one ring's polling must not hold up another's requests."""
        now = time.perf_counter_ns
        last = queue.last_avail_idx
        while True:
            slice_end = min(until_ns, now() + POLL_SLICE_NS)
            while queue.avail_idx() == last:
                if now() >= slice_end:
                    break
            else:
                return queue.pop_all()
            if slice_end >= until_ns:
                return []
            await trio.lowlevel.checkpoint()
            if self.lifecycle.state is not RingState.SERVING:
                return []

    async def _handle_concurrently(
        self,
        queue: SplitQueue,
        chain: Chain,
        limiter: trio.CapacityLimiter,
    ) -> None:
        self.transport.enter(Token(limiter, chain))
        try:
            queue.complete(chain, await self.transport.serve(chain.readable, chain.writable))
        finally:
            limiter.release_on_behalf_of(chain)
        # Let every request finishing in this scheduler pass push first: one interrupt for all.
        await trio.lowlevel.checkpoint()
        self._notify(queue)

    def _notify(self, queue: SplitQueue) -> None:
        if queue.should_notify() and self.call_fd is not None:
            signal_eventfd(self.call_fd)

    async def _wait_for_kick(self) -> None:
        kick_fd = self.kick_fd
        if kick_fd is None:
            with trio.CancelScope() as self._wait_scope:
                await trio.sleep(POLL_INTERVAL)
            self._wait_scope = None
            return
        try:
            if not self._kernel_wait.wait(kick_fd):
                await trio.lowlevel.wait_readable(kick_fd)
            value = os.read(kick_fd, EVENTFD_VALUE.size)
        except (BlockingIOError, trio.ClosedResourceError):
            pass
        except OSError as error:
            self._kick_failed(str(error))
        else:
            if len(value) != EVENTFD_VALUE.size:
                # Readable forever: waiting again would spin a core.
                self._kick_failed(f"read {len(value)} bytes (end of file)")

    def _kick_failed(self, reason: str) -> None:
        self.mark_broken(f"kick fd: {reason}")

    async def stop(self) -> int:
        """GET_VRING_BASE: take no new chains, let in-flight ones finish, return the next index.

        A parked lock wait may never end, and QEMU waits for this reply to pause,
        stop or migrate the VM: such waits end now with EINTR, and those replies
        reach the used ring before the stop completes, so the guest sees them.
        """
        if self.lifecycle.task_alive:
            self.lifecycle.stop()
            self.transport.end_waits()
            self._wake()
            await self._stopped.wait()
        return self.base
