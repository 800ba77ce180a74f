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

Each entry's request is served by its own task, with the same dispatcher as
the /dev/fuse side.  The kernel copies a request into the entry from this
thread's task work (fuse_uring_send_in_task), so the process must keep
entering the kernel; trio's epoll wait does.  Teardown: the kernel completes
every outstanding entry with ENOTCONN when the connection ends
(fuse_uring_stop_queues); closing the ring cancels anything left.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import logging
import mmap
import os
from collections.abc import Callable

import outcome
import trio

from hostfs.core.filesystem import FileSystem
from hostfs.devfuse.session import DevFuseSession, mounted
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
        "early",
        "headers",
        "index",
        "iovecs",
        "memory",
        "qid",
        "task",
    )

    def __init__(self, index: int, qid: int, payload_size: int) -> None:
        self.index = index
        self.qid = qid
        self.memory = mmap.mmap(-1, _PAYLOAD + payload_size)
        self.headers = memoryview(self.memory)[: abi.REQ_HEADER_SIZE]
        self.area = memoryview(self.memory)
        base = address_of(self.memory)
        self.iovecs = (ctypes.c_uint64 * 4)(
            base, abi.REQ_HEADER_SIZE, base + _PAYLOAD, payload_size
        )
        """``struct iovec[2]``: headers, payload (FUSE_URING_IOV_SEGS)."""
        self.task: trio.lowlevel.Task | None = None
        """The entry's task while it waits for a completion."""
        self.early: int | None = None
        """A completion that came while the task was not waiting."""

    def close(self) -> None:
        self.headers.release()
        self.area.release()
        self.memory.close()


_PAYLOAD = PAGE_SIZE
"""Where an entry's payload starts in its mapping; the first page holds the headers
(288 bytes) and, at its end, the request's header and ``op_in`` (at most 168)."""


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

    # -- entries --------------------------------------------------------------

    def _add_entry(self, qid: int) -> _Entry:
        """Register a new entry on queue ``qid`` and start its task."""
        assert self._nursery is not None
        entry = _Entry(len(self.entries), qid, self.payload_size)
        self.entries.append(entry)
        self._register(entry)
        self._nursery.start_soon(self._serve_entry, entry)
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
        abi.encode_uring_cmd(
            self.ring.sqe(),
            self.device.fd,
            abi.CMD_COMMIT_AND_FETCH,
            entry.index,
            abi.encode_cmd_req(entry.qid, commit_id),
        )
        self.ring.submit()

    async def _next(self, entry: _Entry) -> int:
        """Wait for this entry's completion; its ``res``.  One that came before the
        task waited (a registration answered at once, at start) is kept in the entry."""
        if entry.early is not None:
            early, entry.early = entry.early, None
            await trio.lowlevel.checkpoint()
            return early
        entry.task = trio.lowlevel.current_task()

        def abort(_: Callable[[], object]) -> trio.lowlevel.Abort:
            entry.task = None
            return trio.lowlevel.Abort.SUCCEEDED

        result: int = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    async def _serve_entry(self, entry: _Entry) -> None:
        """Serve the requests the kernel puts in ``entry`` until the connection ends.

        A request that parks lends the entry's place to a new entry on the same
        queue (a :class:`~hostfs.fuse.transport.Relay`), so lock waiters cannot use up
        a queue; the parked request's entry stays registered: the queue has one more."""
        transport = self.transport
        slot = self._entry_slot(entry.qid)
        area = entry.area
        headers = entry.headers
        while True:
            res = await self._next(entry)
            if res < 0:
                self._failed(entry, -res)
                return
            try:
                request = abi.decode_ring_request(headers)
            except ValueError as error:
                transport.requests += 1  # read, and answered: counted as any request is
                log.warning("io_uring entry %d: %s", entry.index, error)
                self._reply_error(entry, errno.EIO)
                continue
            start = _PAYLOAD - abi.IN_HEADER_SIZE - request.op_in_size
            area[start : start + abi.IN_HEADER_SIZE] = headers[: abi.IN_HEADER_SIZE]
            area[start + abi.IN_HEADER_SIZE : _PAYLOAD] = headers[
                abi.OP_IN_OFFSET : abi.OP_IN_OFFSET + request.op_in_size
            ]
            reply_at = _PAYLOAD - abi.OUT_HEADER_SIZE
            length = await transport.serve(
                [area[start : _PAYLOAD + request.payload_size]], [area[reply_at:]]
            )
            if length < abi.OUT_HEADER_SIZE:
                # Only opcodes that /dev/fuse carries go unanswered; never leave an entry.
                self._reply_error(entry, errno.EIO)
            else:
                abi.encode_ring_reply(
                    headers, area[reply_at:_PAYLOAD], length - abi.OUT_HEADER_SIZE
                )
                self._commit(entry, request.commit_id)
            if slot.lent:
                slot = self._entry_slot(entry.qid)

    def _entry_slot(self, qid: int) -> Relay:
        """An entry's place on queue ``qid``, entered in the task serving the entry."""
        slot = Relay(lambda: self._add_entry(qid))
        self.transport.enter(slot)
        return slot

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
        assert self._nursery is not None
        self._nursery.start_soon(self._serve_entry, entry)

    # -- completions ----------------------------------------------------------

    async def _reap(self) -> None:
        """Hand each completion to its entry's task; sleep in epoll when there is none.

        The ring is cooperative (IORING_SETUP_COOP_TASKRUN): the kernel's task work
        that fills an entry waits for this thread's next system call instead of
        interrupting it, and IORING_SQ_TASKRUN says when some is waiting.  No busy
        polling, unlike hostfs.devfuse.session: measured here (2 vCPUs, best of 3
        interleaved), polling the completion queue for 50 us made stat round trips
        slower (1.5k-3.6k/s against 2.9k-4.2k/s without), since the kernel fills
        the queue only once this thread enters it."""
        ring = self.ring
        entries = self.entries
        reschedule = trio.lowlevel.reschedule
        statistics = trio.lowlevel.current_statistics
        while True:
            if ring.task_work_pending():
                ring.run_task_work()
            completions = ring.completions()
            for index, res in completions:
                entry = entries[index]
                task = entry.task
                if task is None:
                    entry.early = res
                    continue
                entry.task = None
                reschedule(task, outcome.Value(res))
            if completions or statistics().tasks_runnable:
                await trio.lowlevel.checkpoint()
            else:
                await trio.lowlevel.wait_readable(ring.fd)

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
            log.info(
                "FUSE over io_uring: %d queues x %d entries of %d KiB",
                self.queues,
                ENTRIES_PER_QUEUE,
                self.payload_size >> 10,
            )
            nursery.start_soon(self._reap)
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
