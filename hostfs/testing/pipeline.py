"""Keep a fixed number of pre-built requests in flight on a device's rings, in a tight loop.

A benchmark front-end must cost far less per request than the device it
measures, so nothing is built in the loop: every request chain is laid out
once in guest RAM (:meth:`DriverQueue.build`) and only its head is published
again (virtio 1.2 §2.7.13).  Kicks follow ``avail_event`` and interrupts
``used_event`` (§2.7.10, VIRTIO_RING_F_EVENT_IDX) as Linux's driver does;
completions are seen either by sleeping on the call eventfds (``spin=False``,
a guest taking interrupts) or by polling the used rings (``spin=True``).

A :class:`Sequence` is one operation: chains sent one after another, each
after the previous one's reply (CREATE, RELEASE, UNLINK), with a hook that
copies what a reply returned into the next request (the file handle), and
maybe a chain sent after the last reply and not waited for (the FORGET the
guest's kernel sends on the hiprio queue once the inode is gone).
"""

from __future__ import annotations

import select
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hostfs.fuse import abi
from hostfs.testing.driver_queue import DriverQueue, Submitted
from hostfs.vhost.virtqueue import RING_HEADER, USED_ELEM

Fixup = Callable[[memoryview], None]
"""Called with guest RAM after a step's reply, before the next step is published."""


class Stall(Exception):
    """No completion within the timeout while requests were in flight."""


class RequestFailed(Exception):
    """A reply carried an error: the benchmark measured the wrong thing."""


@dataclass(slots=True)
class Step:
    """One pre-built chain and where its ``fuse_out_header`` lands."""

    chain: Submitted
    reply_offset: int | None
    """Offset of the out header in guest RAM (the first writable buffer); None when the
    request has no reply (FORGET)."""
    fixup: Fixup | None = None
    in_flight: bool = False


@dataclass(slots=True)
class Sequence:
    """An operation: its steps on one queue, sent one after another."""

    queue: DriverQueue
    steps: list[Step]
    detached: tuple[DriverQueue, Step] | None = None
    """Published (on its own queue) when the last step is answered, its fixup run just
    before; not waited for, unless the next operation would need it again."""
    step: int = 0
    waiting: bool = False
    started_ns: int = 0


@dataclass
class PipelineResult:
    operations: int
    seconds: float
    latencies_ns: list[int]
    frontend_busy_ns: int
    """Time the loop spent handling completions and publishing (its own cost)."""
    frontend_cpu_s: float
    kicks: int
    interrupts: int
    requests: int = 0
    waits: int = 0
    """Operations that waited for their detached request before starting again."""

    @property
    def rate(self) -> float:
        return self.operations / self.seconds

    @classmethod
    def merge(cls, parts: list[PipelineResult]) -> PipelineResult:
        """Runs one after another as one: a long run cut into pieces, with untimed work
        (FORGETs) in between."""
        total = cls(0, 0.0, [], 0, 0.0, 0, 0)
        for part in parts:
            total.operations += part.operations
            total.seconds += part.seconds
            total.latencies_ns += part.latencies_ns
            total.frontend_busy_ns += part.frontend_busy_ns
            total.frontend_cpu_s += part.frontend_cpu_s
            total.kicks += part.kicks
            total.interrupts += part.interrupts
            total.requests += part.requests
            total.waits += part.waits
        return total

    def percentile_us(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ns)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000

    @property
    def frontend_us_per_request(self) -> float:
        return self.frontend_busy_ns / 1000 / max(self.requests, 1)


@dataclass
class Pipeline:
    """Sequences kept in flight until ``duration`` seconds or ``operations`` are done."""

    sequences: list[Sequence]
    spin: bool = False
    timeout: float = 10.0
    think_s: float = 0.0
    """Seconds the driver waits after a reply before it sends the request that follows
    it: a guest under emulation (QEMU TCG) takes 0.1-1 ms between a reply and its next
    request, so a daemon's ring is idle, and sleeps, before every request."""
    _by_head: dict[tuple[int, int], tuple[Sequence, Step]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for sequence in self.sequences:
            for step in sequence.steps:
                self._by_head[sequence.queue.index, step.chain.head] = sequence, step
            if sequence.detached is not None:
                queue, step = sequence.detached
                self._by_head[queue.index, step.chain.head] = sequence, step

    def run(
        self, *, duration: float | None = None, operations: int | None = None
    ) -> PipelineResult:
        queues = list({id(s.queue): s.queue for s in self.sequences}.values())
        queues += [
            s.detached[0] for s in self.sequences if s.detached and s.detached[0] not in queues
        ]
        queues = list({id(queue): queue for queue in queues}.values())
        ram = queues[0].ram
        view = ram.view
        out_header = abi.OUT_HEADER
        used_elem = USED_ELEM
        by_head = self._by_head
        now = time.perf_counter_ns
        # Per queue: (queue, used ring offset of the element array, size).
        rings = [(q, ram.offset(q.used_addr) + RING_HEADER, q.size) for q in queues]
        poller = select.poll()
        for queue in queues:
            poller.register(queue.call_fd, select.POLLIN)
        latencies: list[int] = []
        done = requests = kicks = interrupts = busy = 0
        in_flight = len(self.sequences)
        running = in_flight
        """Sequences in the middle of an operation: not those waiting for a detached one."""
        detached = waits = 0
        cpu_start = time.process_time()
        start = now()
        deadline = start + int(duration * 1e9) if duration is not None else None
        stopping = False
        for sequence in self.sequences:
            sequence.step = 0
            sequence.started_ns = now()
            sequence.queue.publish(sequence.steps[0].chain.head)
        for queue in queues:
            kicks += queue.kick_if_needed(event_idx=True)
        while in_flight or detached:
            progressed = False
            for queue, elements, size in rings:
                used = queue.used_idx()
                if used == queue.last_used_idx:
                    continue
                began = now()
                published = False
                while queue.last_used_idx != used:
                    slot = elements + used_elem.size * (queue.last_used_idx % size)
                    head, _length = used_elem.unpack_from(view, slot)
                    queue.last_used_idx = (queue.last_used_idx + 1) & 0xFFFF
                    sequence, step = by_head[queue.index, head]
                    requests += 1
                    if step.in_flight:  # a detached request: nothing waits for it
                        step.in_flight = False
                        detached -= 1
                        if not sequence.waiting:
                            continue
                        sequence.waiting = False  # its operation ended meanwhile: go on
                    else:
                        if step.reply_offset is not None:
                            error = out_header.unpack_from(view, step.reply_offset)[1]
                            if error:
                                raise RequestFailed(f"step {sequence.step}: errno {-error}")
                        if step.fixup is not None:
                            step.fixup(view)
                        sequence.step += 1
                        if sequence.step < len(sequence.steps):
                            if self.think_s:
                                time.sleep(self.think_s)
                            queue.publish(sequence.steps[sequence.step].chain.head)
                            published = True
                            continue
                        finished = now()
                        latencies.append(finished - sequence.started_ns)
                        done += 1
                        running -= 1
                        if deadline is not None and finished >= deadline:
                            stopping = True
                        if sequence.detached is not None and sequence.detached[1].in_flight:
                            sequence.waiting = True  # the last one's FORGET is still out
                            waits += 1
                            continue
                    if sequence.detached is not None:
                        side_queue, side = sequence.detached
                        if side.fixup is not None:
                            side.fixup(view)
                        side.in_flight = True
                        detached += 1
                        side_queue.publish(side.chain.head)
                        if side_queue is queue:
                            # Published while serving its own queue (the FORGET that came
                            # back freed a waiting sequence): kicked with this batch.
                            published = True
                        else:
                            kicks += side_queue.kick_if_needed(event_idx=True)
                    if stopping or (operations is not None and done + running >= operations):
                        # Another start would pass ``operations`` once the running ones end.
                        in_flight -= 1
                        continue
                    running += 1
                    sequence.step = 0
                    if self.think_s:
                        time.sleep(self.think_s)
                    sequence.started_ns = now()
                    if sequence.queue is queue:
                        queue.publish(sequence.steps[0].chain.head)
                        published = True
                    else:  # it waited for its detached request, which came back here
                        sequence.queue.publish(sequence.steps[0].chain.head)
                        kicks += sequence.queue.kick_if_needed(event_idx=True)
                if published:
                    kicks += queue.kick_if_needed(event_idx=True)
                queue.set_used_event(queue.last_used_idx)
                busy += now() - began
                progressed = True
            if progressed or not (in_flight or detached) or self.spin:
                if (
                    self.spin
                    and deadline is not None
                    and now() > deadline + int(self.timeout * 1e9)
                ):
                    raise Stall(f"{in_flight} operations still in flight")
                continue
            if not all([queue.enable_interrupts() for queue in queues]):
                continue
            events = poller.poll(self.timeout * 1000)
            if not events:
                raise Stall(f"no interrupt in {self.timeout} s, {in_flight} operations in flight")
            for fd, _ in events:
                interrupts += DriverQueue.consume(fd)
        seconds = (now() - start) / 1e9
        return PipelineResult(
            done,
            seconds,
            latencies,
            busy,
            time.process_time() - cpu_start,
            kicks,
            interrupts,
            requests,
            waits,
        )


def step(
    queue: DriverQueue,
    readable: list[bytes],
    writable: list[int],
    *,
    indirect: bool = True,
    fixup: Fixup | None = None,
) -> Step:
    """Build a chain whose first writable buffer (if any) gets the ``fuse_out_header``.

    Indirect by default, as Linux's virtio_ring lays out any request of more than
    one buffer when VIRTIO_RING_F_INDIRECT_DESC is offered.
    """
    chain = queue.build(readable, writable, indirect=indirect and len(readable + writable) > 1)
    reply = queue.ram.offset(chain.writable[0][0]) if chain.writable else None
    return Step(chain, reply, fixup)


def copy_field(source: int, target: int, fmt: struct.Struct) -> Fixup:
    """A fixup that copies one field (``fmt``) from guest RAM offset ``source`` to ``target``."""

    def fixup(view: memoryview) -> None:
        fmt.pack_into(view, target, *fmt.unpack_from(view, source))

    return fixup
