"""Serve the host kernel's FUSE client over io_uring (Linux >= 6.14, fuse-io-uring.rst).

INIT still comes over /dev/fuse (hostfs.devfuse.session.mounted); the reply
offers FUSE_OVER_IO_URING.  Then every ring queue gets its entries: the kernel
has one queue per possible CPU (``qid`` = the CPU a request is sent from,
fuse_uring_task_to_queue) and holds new requests until each queue has one
(fuse_block_alloc, is_ring_ready).  An entry is a pair of buffers the kernel
writes a request into and reads its reply from; one SQE per entry is always
outstanding: REGISTER first, then COMMIT_AND_FETCH, which hands in the reply
and waits for the next request in the same buffers.  /dev/fuse keeps being
served: FORGET, BATCH_FORGET and INTERRUPT always come that way
(fuse_io_uring_ops), and all requests do if a registration fails (the kernel
then clears ``fc->io_uring``; this session says so in the log and goes on).

A pool of worker tasks serves the entries' requests, with the same dispatcher
as the /dev/fuse side, as hostfs.devfuse.session's workers do: whichever
worker runs reaps the completions and serves them itself, in place, so a
request costs no switch between tasks (one task per entry, woken per request,
measured 5.5k round trips/s against 8-10k with the pool's predecessor and
more without the switch).  The kernel copies a request into the entry from
this thread's task work (fuse_uring_send_in_task), so the process must keep
entering the kernel; trio's epoll wait does.  Teardown: the kernel completes
every outstanding entry with ENOTCONN when the connection ends
(fuse_uring_stop_queues); closing the ring cancels anything left.
"""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import errno
import logging
import mmap
import os
import time

import trio

from hostfs import trio_loop
from hostfs.core.filesystem import FileSystem
from hostfs.devfuse.session import CHECKPOINT_EVERY, POLL_NS, DevFuseSession, mounted
from hostfs.fuse import abi as fuse_abi
from hostfs.fuse import replies
from hostfs.fuse.init import PAGE_SIZE, SessionConfig
from hostfs.fuse.transport import Relay, Transport
from hostfs.uring import abi
from hostfs.uring.ring import Ring, address_of

log = logging.getLogger(__name__)

ENTRIES_PER_QUEUE = 8
"""Entries registered per queue: libfuse 3.18's default ring depth
(FUSE_DEFAULT_RING_QUEUE_DEPTH is 8).  A queue serves the CPU it is named after, so
this is how many requests from one CPU are in flight at once; a request that
parks (a lock wait) adds an entry instead of holding one of these."""

_SUBMISSIONS = 64
"""SQ size: each entry submits its own SQE at once, so a handful is plenty."""

_COMPLETIONS = 4096
"""CQ size (64 KiB): above any number of entries in flight (each has one SQE
outstanding), so completions never overflow into the kernel's backlog."""

_ENDED = frozenset({errno.ENOTCONN, errno.ECONNABORTED, errno.ECANCELED})
"""What the kernel completes entries with at teardown (fuse_uring_entry_teardown,
fuse_uring_cancel, io_uring's own cancellation)."""


def possible_cpus(text: str) -> int:
    """How many queues the kernel makes: ``num_possible_cpus()``, from the
    ``/sys/devices/system/cpu/possible`` list ("0-3", "0,2-5")."""
    count = 0
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def queue_count() -> int:
    with open("/sys/devices/system/cpu/possible") as possible:
        return possible_cpus(possible.read())


class _Entry:
    """One ring entry: a page of headers, then the payload buffer, in one mapping.

    The kernel writes ``fuse_uring_req_header`` at offset 0 and the payload from
    :data:`_PAYLOAD`.  The session copies the in-header and ``op_in`` to just before
    the payload, so the dispatcher sees one contiguous request, and has it write the
    reply from 16 bytes before the payload: the body lands where the kernel reads it
    and only the 16-byte out-header is copied back into the headers."""

    __slots__ = (
        "area",
        "commit_sqe",
        "headers",
        "index",
        "iovecs",
        "memory",
        "out_header",
        "qid",
        "reply",
    )

    def __init__(self, index: int, qid: int, payload_size: int, device_fd: int) -> None:
        self.index = index
        self.qid = qid
        self.memory = mmap.mmap(-1, _PAYLOAD + payload_size)
        self.headers = memoryview(self.memory)[: abi.REQ_HEADER_SIZE]
        self.area = memoryview(self.memory)
        self.out_header = self.area[_REPLY_AT:_PAYLOAD]
        self.reply = [self.area[_REPLY_AT:]]
        """Where the dispatcher writes every reply: the same buffers each time."""
        base = address_of(self.memory)
        self.iovecs = (ctypes.c_uint64 * 4)(
            base, abi.REQ_HEADER_SIZE, base + _PAYLOAD, payload_size
        )
        """``struct iovec[2]``: headers, payload (FUSE_URING_IOV_SEGS)."""
        sqe = bytearray(abi.SQE_SIZE)
        abi.encode_uring_cmd(
            memoryview(sqe),
            device_fd,
            abi.CMD_COMMIT_AND_FETCH,
            index,
            abi.encode_cmd_req(qid),
        )
        self.commit_sqe = bytes(sqe)
        """This entry's COMMIT_AND_FETCH but for the ``commit_id`` (a copy and one
        store per reply instead of packing the whole SQE)."""

    def close(self) -> None:
        self.reply[0].release()
        for view in (self.out_header, self.headers, self.area):
            view.release()
        self.memory.close()


_PAYLOAD = PAGE_SIZE
"""Where an entry's payload starts in its mapping; the first page holds the headers
(288 bytes) and, at its end, the request's header and ``op_in`` (at most 168)."""

_REPLY_AT = _PAYLOAD - abi.OUT_HEADER_SIZE
"""Where a reply starts: its body lands on the payload, where the kernel reads it."""


class UringSession:
    """The rings of one FUSE connection and the tasks serving their entries."""

    def __init__(self, ring: Ring, device: DevFuseSession, config: SessionConfig) -> None:
        self.ring = ring
        self.device = device
        self.dispatcher = device.dispatcher
        self.config = config
        self.queues = queue_count()
        self.payload_size = abi.max_payload(config.max_write, config.max_pages)
        self.entries: list[_Entry] = []
        self.transport = Transport("io_uring", self.dispatcher)
        """The rings' share of the per-request plumbing (hostfs.fuse.transport); the
        /dev/fuse side has its own (``device.transport``)."""
        self.fell_back = False
        """The kernel refused a registration and serves everything over /dev/fuse."""
        self._nursery: trio.Nursery | None = None
        self._runnable = trio_loop.runnable_counter()
        self._ready: collections.deque[tuple[int, int]] = collections.deque()
        """Completions reaped and not yet served: (entry index, res)."""
        self._asleep = False
        """A worker waits in epoll for the ring, so a commit is submitted by whoever
        makes it (no worker would otherwise)."""
        self._idle = trio.lowlevel.ParkingLot()
        """Workers with nothing to serve while another sleeps in epoll: the sleeper
        wakes one when it wakes, and a woken one that finds work and no sleeper wakes
        the next (:meth:`_fill`), so one watches the ring while the others serve."""

    # -- entries --------------------------------------------------------------

    def _add_entry(self, qid: int) -> _Entry:
        """Register a new entry on queue ``qid``; its requests come to the pool."""
        entry = _Entry(len(self.entries), qid, self.payload_size, self.device.fd)
        self.entries.append(entry)
        self._register(entry)
        return entry

    def _register(self, entry: _Entry) -> None:
        abi.encode_uring_cmd(
            self.ring.sqe(),
            self.device.fd,
            abi.CMD_REGISTER,
            entry.index,
            abi.encode_cmd_req(entry.qid),
            ctypes.addressof(entry.iovecs),
            abi.IOV_SEGS,
        )
        self.ring.submit()

    def _commit(self, entry: _Entry, commit_id: int) -> None:
        """Queue the reply's COMMIT_AND_FETCH.  Submitted with the next system call
        of any worker (one for every commit of a batch, and the task work they
        bring), and always before a worker may wait (:meth:`_serve`, :meth:`_fill`),
        or a reply could sit unsent while its caller's partner waits for it."""
        sqe = self.ring.sqe()
        sqe[:] = entry.commit_sqe
        abi.COMMIT_ID.pack_into(sqe, abi.COMMIT_ID_OFFSET, commit_id)
        if self._asleep:
            self.ring.submit()

    async def _worker(self) -> None:
        """Serve completions until cancelled; when none is queued, fetch more.

        A request that parks (hostfs.fuse.parking) lends this worker's place to a
        new worker and its entry's place on its queue to a new entry
        (a :class:`~hostfs.fuse.transport.Relay`); this worker ends with that request."""
        qid = 0  # the queue of the entry served now, read by the slot when it is lent
        slot = Relay(lambda: self._add_worker(qid))
        self.transport.enter(slot)
        ready = self._ready
        served = 0
        while True:
            if not ready:
                await self._fill()
                continue
            index, res = ready.popleft()
            entry = self.entries[index]
            qid = entry.qid
            await self._serve(entry, res)
            if slot.lent:
                return
            served += 1
            if served % CHECKPOINT_EVERY == 0:
                await trio.lowlevel.checkpoint()

    async def _serve(self, entry: _Entry, res: int) -> None:
        """Serve the request the kernel put in ``entry`` and queue its reply."""
        if res < 0:
            self._failed(entry, -res)
            return
        headers = entry.headers
        try:
            commit_id, op_in_size, payload_size = abi.decode_ring_request(headers)
        except ValueError as error:
            self.transport.requests += 1  # read, and answered: counted as any request is
            log.warning("io_uring entry %d: %s", entry.index, error)
            self._reply_error(entry, errno.EIO)
            return
        area = entry.area
        op_in_at = _PAYLOAD - op_in_size
        start = op_in_at - abi.IN_HEADER_SIZE
        area[start:op_in_at] = headers[: abi.IN_HEADER_SIZE]
        area[op_in_at:_PAYLOAD] = headers[abi.OP_IN_OFFSET : abi.OP_IN_OFFSET + op_in_size]
        if self.ring.unsubmitted:
            self.ring.submit()  # the handler may wait: no reply of a batch is held back
        length = await self.transport.serve([area[start : _PAYLOAD + payload_size]], entry.reply)
        if length < abi.OUT_HEADER_SIZE:
            # Only opcodes that /dev/fuse carries go unanswered; never leave an entry.
            self._reply_error(entry, errno.EIO)
        else:
            abi.encode_ring_reply(headers, entry.out_header, length - abi.OUT_HEADER_SIZE)
            self._commit(entry, commit_id)

    def _add_worker(self, qid: int) -> None:
        """A request parked in its worker: the pool gets one more worker and queue
        ``qid`` one more entry, so lock waiters cannot use up either."""
        self._add_entry(qid)
        assert self._nursery is not None
        self._nursery.start_soon(self._worker)

    def _reply_error(self, entry: _Entry, code: int) -> None:
        headers = entry.headers
        unique = abi.commit_id(headers)
        reply = memoryview(bytearray(abi.OUT_HEADER_SIZE))
        replies.out_header(reply, abi.OUT_HEADER_SIZE, -code, unique)
        abi.encode_ring_reply(headers, reply, 0)
        self._commit(entry, unique)

    def _failed(self, entry: _Entry, code: int) -> None:
        if code in _ENDED:
            return
        if code in (errno.EOPNOTSUPP, errno.EINVAL) and not self.transport.requests:
            if not self.fell_back:
                self.fell_back = True
                log.warning(
                    "the kernel refused FUSE over io_uring (%s): serving over /dev/fuse",
                    os.strerror(code),
                )
            return
        log.warning(
            "io_uring entry %d failed (%s); registering it again", entry.index, os.strerror(code)
        )
        self._register(entry)

    # -- completions ----------------------------------------------------------

    async def _fill(self) -> None:
        """Submit the queued commits, reap the completions into the ready queue; when
        there are none, poll for :data:`POLL_NS`, then sleep in epoll (one worker at
        a time: trio lets one task wait for an fd).

        The ring is cooperative (IORING_SETUP_COOP_TASKRUN): the kernel's task work
        that fills an entry waits for this thread's next system call instead of
        interrupting it, and IORING_SQ_TASKRUN in the SQ ring's flags says when some
        is waiting.  So one io_uring_enter both submits a batch's commits and runs
        the task work that brings the next requests.  When nothing else is
        runnable, the worker first polls that flag (shared memory, no system call),
        as hostfs.devfuse.session polls /dev/fuse: a caller doing one thing after
        another sends its next request within tens of microseconds, and sleeping in
        epoll in between costs a wake-up, epoll_ctl and epoll_wait on every round
        trip.  (Polling the completion queue instead, tried before, only slowed
        things: the kernel fills it only once this thread enters it.)"""
        ring = self.ring
        clock = time.perf_counter_ns
        runnable = self._runnable
        poll_until = 0
        while True:
            if ring.unsubmitted or ring.task_work_pending():
                ring.submit(get_events=True)
            completions = ring.completions()
            if completions:
                self._ready.extend(completions)
                return
            now = clock()
            poll_until = poll_until or now + POLL_NS
            if now < poll_until and not runnable():
                while not ring.wakes() and clock() < poll_until:
                    pass
                continue
            if self._asleep:
                # Another worker waits for the ring; wait for it to fill the queue.
                await self._idle.park()
                if self._ready and not self._asleep:
                    self._idle.unpark()  # this one serves: the next one watches the ring
                return
            self._asleep = True
            try:
                await trio.lowlevel.wait_readable(ring.fd)
            finally:
                self._asleep = False
                # A successor watches the ring while this one serves (a request may
                # wait); waking every idle worker instead cost one task switch per
                # worker on every wake-up.
                self._idle.unpark()
            poll_until = 0

    async def serve(self) -> None:
        """Register the entries, then serve rings and /dev/fuse until the connection ends."""
        if not self.dispatcher.protocol.flags & fuse_abi.OVER_IO_URING:
            self.fell_back = True
            log.warning("the kernel did not offer FUSE over io_uring: serving over /dev/fuse")
            await self.device.serve()
            return
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for qid in range(self.queues):
                for _ in range(ENTRIES_PER_QUEUE):
                    self._add_entry(qid)
            for _ in range(self.config.concurrency):
                nursery.start_soon(self._worker)
            log.info(
                "FUSE over io_uring: %d queues x %d entries of %d KiB",
                self.queues,
                ENTRIES_PER_QUEUE,
                self.payload_size >> 10,
            )
            try:
                await self.device.serve()
            finally:
                log.info(
                    "FUSE over io_uring: %d requests over the rings, %d over /dev/fuse",
                    self.transport.requests,
                    self.device.transport.requests,
                )
                nursery.cancel_scope.cancel()

    def close(self) -> None:
        for entry in self.entries:
            entry.close()


async def serve_mount(
    fs: FileSystem,
    mountpoint: str,
    *,
    config: SessionConfig | None = None,
    task_status: trio.TaskStatus[UringSession] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Mount ``fs`` at ``mountpoint`` and serve it over io_uring (hostfs.fuse.engine).

    The ring is made before mounting, so a kernel that refuses io_uring fails
    here with nothing mounted."""
    config = dataclasses.replace(config or SessionConfig(), over_io_uring=True)
    ring = Ring(_SUBMISSIONS, _COMPLETIONS)
    session: UringSession | None = None
    try:
        async with mounted(fs, mountpoint, config) as device:
            if device.ended:
                return
            session = UringSession(ring, device, config)
            task_status.started(session)
            await session.serve()
    finally:
        ring.close()
        if session is not None:
            session.close()
