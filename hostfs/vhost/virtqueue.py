"""The device side of a split virtqueue, over guest memory, with no I/O.

Virtio 1.2 §2.7 ("Split Virtqueues"), layout in ``linux/virtio_ring.h``:
the descriptor table (``struct vring_desc``), the available ring the driver
fills (``struct vring_avail`` + ``used_event``) and the used ring the device
fills (``struct vring_used`` + ``avail_event``).  Every value read from the
rings is the guest's and is checked; a violation raises :class:`RingError`
and the caller marks the queue broken.

Memory ordering (virtio 1.2 §2.7.13.3 and §2.7.14, QEMU hw/virtio/virtio.c):
the barriers QEMU needs against the driver on another CPU are here, beside
the code; the full ones are :func:`~hostfs.vhost.fence.full_fence`.
"""

from __future__ import annotations

import struct

from hostfs.vhost.dirty_log import DirtyLog
from hostfs.vhost.fence import full_fence
from hostfs.vhost.memory import GuestMemory, GuestMemoryError
from hostfs.vhost.ring_index import u16_fields

VIRTIO_RING_F_INDIRECT_DESC = 1 << 28
VIRTIO_RING_F_EVENT_IDX = 1 << 29

VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_DESC_F_INDIRECT = 4
VRING_AVAIL_F_NO_INTERRUPT = 1

MAX_QUEUE_SIZE = 32768
"""Virtio 1.2 §2.7: "The maximum Queue Size value is 32768"."""

MAX_INDIRECT_DESCRIPTORS = 1024
"""Entries we accept in one indirect table: QEMU's ``VIRTQUEUE_MAX_SIZE``
caps a request at the same number of buffers."""

DESC = struct.Struct("<QIHH")
"""``struct vring_desc``: addr, len, flags, next."""
_DESC_SIZE = DESC.size
U16 = struct.Struct("<H")
USED_ELEM = struct.Struct("<II")
"""``struct vring_used_elem``: id (head index), len (bytes written)."""

RING_HEADER = 4
"""``flags`` + ``idx`` at the start of both the available and the used ring."""


def desc_table_size(size: int) -> int:
    return DESC.size * size


def avail_ring_size(size: int) -> int:
    """``struct vring_avail`` with its trailing ``used_event`` (present with or without EVENT_IDX
    in every driver we know; we only read it when EVENT_IDX is on)."""
    return RING_HEADER + 2 * size + 2


def used_ring_size(size: int) -> int:
    return RING_HEADER + USED_ELEM.size * size + 2


def need_event(event_idx: int, new_idx: int, old_idx: int) -> bool:
    """``vring_need_event()``: did ``new_idx`` pass ``event_idx`` since ``old_idx``?"""
    return (new_idx - event_idx - 1) & 0xFFFF < (new_idx - old_idx) & 0xFFFF


class RingError(Exception):
    """The driver broke the ring rules; the queue cannot be trusted any more."""


class Chain:
    """One descriptor chain: device-readable buffers first, then device-writable ones.

    Compared and hashed by identity: it is one request in flight.  A plain class with
    slots, not a dataclass: its generated ``__init__`` with a default factory per field
    cost 4% of :meth:`SplitQueue.pop_all` per request.
    """

    __slots__ = ("head", "readable", "writable", "writable_gpa")

    def __init__(
        self,
        head: int,
        readable: list[memoryview],
        writable: list[memoryview],
        writable_gpa: list[tuple[int, int]] | None,
    ) -> None:
        self.head = head
        self.readable = readable
        self.writable = writable
        self.writable_gpa = writable_gpa
        """(guest address, length) of each device-writable descriptor, kept only while
        the dirty log is on (hostfs.vhost.dirty_log); None when it was off at the pop."""


def _release(readable: list[memoryview], writable: list[memoryview]) -> None:
    """``try`` rather than ``contextlib.suppress``: a suppress object per view was a
    sixth of a ring round trip's instructions (callgrind)."""
    for views in (readable, writable):
        for view in views:
            try:  # noqa: SIM105
                view.release()
            except BufferError:  # still exported (a reply being sent): freed with it
                pass


class SplitQueue:
    """Reads chains from the available ring and returns them on the used ring."""

    def __init__(
        self,
        memory: GuestMemory,
        size: int,
        desc: memoryview,
        avail: memoryview,
        used: memoryview,
        *,
        last_avail_idx: int = 0,
        event_idx: bool = False,
        indirect: bool = False,
    ) -> None:
        if not 0 < size <= MAX_QUEUE_SIZE:
            raise RingError(f"queue size {size} outside 1..{MAX_QUEUE_SIZE}")
        self.memory = memory
        self.size = size
        self._desc = desc
        self._avail = avail
        self._used = used
        # Indices, event fields and flags: one 16-bit access each (hostfs.vhost.ring_index).
        self._avail16 = u16_fields(avail)
        self._used16 = u16_fields(used)
        self.event_idx = event_idx
        self.indirect = indirect
        self.last_avail_idx = last_avail_idx & 0xFFFF
        # As libvhost-user does on SET_VRING_ADDR: the used index continues from the ring.
        self.used_idx = self._used16[1]
        self._signalled_used = self.used_idx
        self._used_event_field = (RING_HEADER + 2 * size) // 2
        self._avail_event_field = (RING_HEADER + USED_ELEM.size * size) // 2
        self.dirty_log: DirtyLog | None = None
        """Set while a migration logs the pages we write (VHOST_F_LOG_ALL)."""
        self.used_log_addr: int | None = None
        """The used ring's guest address, when its writes are logged (VHOST_VRING_F_LOG)."""

    def release(self) -> None:
        for view in (self._avail16, self._used16, self._desc, self._avail, self._used):
            view.release()

    # -- available ring ------------------------------------------------------

    def avail_idx(self) -> int:
        return self._avail16[1]

    def pending(self) -> int:
        """How many chains wait; more than the queue size means a corrupt ``avail->idx``."""
        count = (self._avail16[1] - self.last_avail_idx) & 0xFFFF
        if count > self.size:
            raise RingError(
                f"avail idx moved {count} past last seen {self.last_avail_idx} (queue size "
                f"{self.size})"
            )
        return count

    def pop_all(self) -> list[Chain]:
        """Every chain made available since the last call (virtio 1.2 §2.7.13).

        The ring entries and descriptors are read after ``avail->idx``: QEMU's
        ``smp_rmb()`` in ``virtqueue_split_pop``.  x86 does not reorder a load
        with a later load, and CPython runs the unpacks in program order.
        The heads come out in one or two slices of the ring (it may wrap), not
        one index computation each: the index math is once per batch.
        An empty ring (a ring looks twice before it sleeps, and polls) costs one
        comparison here, no further call.
        """
        if self._avail16[1] == self.last_avail_idx:
            return []
        count = self.pending()
        size = self.size
        first = self.last_avail_idx % size
        ring = self._avail16
        # ``ring[2 + i]`` is ``avail->ring[i]`` (RING_HEADER is two 16-bit fields).
        if count == 1:  # a guest at queue depth 1: no list of heads to build
            chain = self._read_chain(ring[2 + first])
            self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
            return [chain]
        heads = ring[2 + first : 2 + min(size, first + count)].tolist()
        if len(heads) < count:
            heads += ring[2 : 2 + count - len(heads)].tolist()
        chains = []
        read_chain = self._read_chain
        try:
            for head in heads:
                chains.append(read_chain(head))
        finally:
            # As far as chains were read: a broken one is not taken (the queue stops).
            self.last_avail_idx = (self.last_avail_idx + len(chains)) & 0xFFFF
        return chains

    def _read_chain(self, head: int) -> Chain:
        """Follow NEXT links (and at most one INDIRECT table, §2.7.5.3) from ``head``.

        The hot loop of the ring (callgrind): one unpack per descriptor, the range
        checked against the region it starts in straight from :attr:`GuestMemory.spans`
        (a whole range in one region is every descriptor a Linux driver makes), and
        :meth:`GuestMemory.buffers` only for a range that crosses regions or is not
        guest memory at all, which it refuses.
        """
        readable: list[memoryview] = []
        writable: list[memoryview] = []
        gpa: list[tuple[int, int]] | None = [] if self.dirty_log is not None else None
        memory = self.memory
        spans = memory.spans
        unpack = DESC.unpack_from
        table: memoryview | bytes = self._desc
        table_size = limit = self.size
        in_indirect = False
        index = head
        count = 0
        try:
            while True:
                if index >= table_size:
                    raise RingError(f"descriptor index {index} outside table of {table_size}")
                count += 1
                if count > limit:
                    raise RingError(f"chain from head {head} longer than {limit} (a loop?)")
                addr, length, flags, next_index = unpack(table, _DESC_SIZE * index)
                if flags & VRING_DESC_F_INDIRECT:
                    if not self.indirect:
                        raise RingError("indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC")
                    if in_indirect:
                        raise RingError("nested indirect descriptor")
                    if flags & VRING_DESC_F_NEXT:
                        raise RingError("descriptor with both INDIRECT and NEXT")
                    if length == 0 or length % DESC.size:
                        raise RingError(f"indirect table of {length} bytes")
                    table_size = length // DESC.size
                    if table_size > MAX_INDIRECT_DESCRIPTORS:
                        raise RingError(f"indirect table of {table_size} descriptors")
                    table = self._indirect_table(addr, length)
                    limit = table_size
                    in_indirect = True
                    index = 0
                    count = 0
                    continue
                if flags & VRING_DESC_F_WRITE:
                    into = writable
                    if gpa is not None:
                        gpa.append((addr, length))
                elif writable:
                    raise RingError("device-readable descriptor after a device-writable one")
                else:
                    into = readable
                if length:  # an empty buffer has no view (GuestMemory.buffers)
                    for start, end, view in spans:
                        if start <= addr and addr + length <= end:
                            offset = addr - start
                            into.append(view[offset : offset + length])
                            break
                    else:
                        into.extend(memory.buffers(addr, length))
                if not flags & VRING_DESC_F_NEXT:
                    return Chain(head, readable, writable, gpa)
                index = next_index
        except GuestMemoryError as error:
            _release(readable, writable)
            raise RingError(f"chain from head {head}: {error}") from error
        except RingError:
            _release(readable, writable)
            raise

    def _indirect_table(self, addr: int, length: int) -> memoryview | bytes:
        """The table in place if it lies in one region (a Linux driver's kmalloc'd table
        always does), else a copy of its pieces, which GuestMemory.read checks."""
        for start, end, view in self.memory.spans:
            if start <= addr and addr + length <= end:
                return view[addr - start : addr - start + length]
        return self.memory.read(addr, length)

    # -- used ring -----------------------------------------------------------

    def complete(self, chain: Chain, written: int) -> None:
        """Give a served chain back: drop our views of its buffers (a later unmap is then
        immediate), log its writes while a migration is on (VHOST_F_LOG_ALL), push it."""
        _release(chain.readable, chain.writable)
        if self.dirty_log is not None:
            self.log_writes(chain, written)
        self.push(chain.head, written)

    def log_writes(self, chain: Chain, written: int) -> None:
        """Mark the pages of the ``written`` bytes of ``chain`` and the used ring dirty."""
        log = self.dirty_log
        if log is None:
            return
        for addr, length in chain.writable_gpa or ():
            if written <= 0:
                break
            log.mark(addr, min(length, written))
            written -= length
        self.log_used_ring()

    def log_used_ring(self) -> None:
        if self.dirty_log is not None and self.used_log_addr is not None:
            self.dirty_log.mark(self.used_log_addr, used_ring_size(self.size))

    def push(self, head: int, written: int) -> None:
        """Return a chain: write the element, then publish it by moving ``used->idx``."""
        slot = RING_HEADER + USED_ELEM.size * (self.used_idx % self.size)
        USED_ELEM.pack_into(self._used, slot, head, written)
        # Virtio 1.2 §2.7.13.3 wants a write barrier here (QEMU's smp_wmb() in
        # virtqueue_split_flush) so the driver never sees the index before the element:
        # x86 keeps stores in order (TSO) and CPython runs the two pack_into calls in order.
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self._used16[1] = self.used_idx

    def should_notify(self) -> bool:
        """Whether the driver wants an interrupt for what was pushed since the last one
        (virtio 1.2 §2.7.10: ``used_event`` with EVENT_IDX, else ``VRING_AVAIL_F_NO_INTERRUPT``)."""
        old, new = self._signalled_used, self.used_idx
        if old == new:
            return False
        self._signalled_used = new
        # QEMU's smp_mb() at the top of virtio_split_should_notify: our used->idx store
        # must be visible before we load used_event / flags, or the driver, having just
        # written used_event and seen the old used->idx, sleeps and we skip the interrupt.
        full_fence()
        if self.event_idx:
            used_event = self._avail16[self._used_event_field]
            return need_event(used_event, new, old)
        return not self._avail16[0] & VRING_AVAIL_F_NO_INTERRUPT

    def request_kick(self) -> None:
        """Ask for a kick once the driver adds past what we have seen (``avail_event``, §2.7.10).

        The caller must then check :meth:`pending` again before it sleeps on the kick fd.
        Without EVENT_IDX we never set ``VRING_USED_F_NO_NOTIFY``, so nothing to undo.
        """
        if self.event_idx:
            self._used16[self._avail_event_field] = self.last_avail_idx
            if self.dirty_log is not None:
                self.log_used_ring()
            # QEMU's smp_mb() in virtio_queue_split_set_notification: avail_event must be
            # visible before the caller re-reads avail->idx, or a chain the driver adds in
            # between finds the old avail_event, is not kicked, and waits for ever.
            full_fence()
