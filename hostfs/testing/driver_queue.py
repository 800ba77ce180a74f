"""The driver side of a split virtqueue, as the Linux virtio_ring driver fills it.

Virtio 1.2 §2.7.13 ("Supplying Buffers to The Device"): descriptors, then
the head into the available ring, then ``avail->idx``; the device answers in
the used ring.  Raw setters let tests build rings a real driver never would.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import trio

from hostfs.testing.guest_ram import GuestRam
from hostfs.vhost.fence import full_fence
from hostfs.vhost.virtqueue import (
    DESC,
    RING_HEADER,
    U16,
    USED_ELEM,
    VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
    avail_ring_size,
    desc_table_size,
    need_event,
    used_ring_size,
)

VRING_USED_F_NO_NOTIFY = 1

EVENTFD_VALUE = struct.Struct("<Q")
CALL_POLL_INTERVAL = 0.001


@dataclass(slots=True)
class Submitted:
    """A chain in flight: where its buffers are (guest address, size)."""

    head: int
    descriptors: list[int]
    writable: list[tuple[int, int]]
    reply: bytes | None = None
    """What the device wrote, once it returned the chain."""
    readable: list[tuple[int, int]] = field(default_factory=list)


class DriverQueue:
    """Queue ``index`` of ``size`` entries, its rings and kick/call eventfds in ``ram``:
    :meth:`submit` buffers as the driver does, :meth:`kick`, :meth:`collect` replies."""

    def __init__(self, ram: GuestRam, index: int, size: int) -> None:
        self.ram = ram
        self.index = index
        self.size = size
        self.desc_addr = ram.alloc(desc_table_size(size), 16)
        self.avail_addr = ram.alloc(avail_ring_size(size), 2)
        self.used_addr = ram.alloc(used_ring_size(size), 4)
        self.kick_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.call_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.err_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.avail_idx = 0
        self.kicked_avail_idx = 0
        """``avail->idx`` at the last :meth:`kick_if_needed` (Linux: new - ``num_added``)."""
        self.last_used_idx = 0
        self.interrupts = 0
        """Call eventfd signals seen by :meth:`wait_call`."""
        self._free = list(range(size))
        self._in_flight: dict[int, Submitted] = {}
        self._call_waiter = False

    def close(self) -> None:
        for fd in (self.kick_fd, self.call_fd, self.err_fd):
            os.close(fd)

    # -- building chains ------------------------------------------------------

    def write_desc(self, index: int, addr: int, length: int, flags: int, next_index: int) -> None:
        self.ram.write(
            self.desc_addr + DESC.size * index, DESC.pack(addr, length, flags, next_index)
        )

    def submit(
        self, readable: list[bytes], writable: list[int], *, indirect: bool = False
    ) -> Submitted:
        """Copy ``readable`` into fresh buffers, allocate ``writable`` sizes, make it available."""
        submitted = self.build(readable, writable, indirect=indirect)
        self._in_flight[submitted.head] = submitted
        self.publish(submitted.head)
        return submitted

    def build(
        self, readable: list[bytes], writable: list[int], *, indirect: bool = False
    ) -> Submitted:
        """Lay out a chain in fresh buffers and descriptors without making it available:
        a benchmark builds its requests once and publishes their heads as often as it likes
        (it then owns the descriptors; :meth:`collect` does not know the chain)."""
        buffers = [(self.ram.alloc(len(data), 8), len(data), 0) for data in readable]
        for (addr, _, _), data in zip(buffers, readable, strict=True):
            self.ram.write(addr, data)
        buffers += [(self.ram.alloc(size, 8), size, VRING_DESC_F_WRITE) for size in writable]
        written = [(addr, length) for addr, length, flags in buffers if flags]
        read = [(addr, length) for addr, length, flags in buffers if not flags]
        if indirect:
            table = self.ram.alloc(DESC.size * len(buffers), 16)
            for i, (addr, length, flags) in enumerate(buffers):
                more = VRING_DESC_F_NEXT if i + 1 < len(buffers) else 0
                self.ram.write(table + DESC.size * i, DESC.pack(addr, length, flags | more, i + 1))
            head = self._take()
            self.write_desc(head, table, DESC.size * len(buffers), VRING_DESC_F_INDIRECT, 0)
            descriptors = [head]
        else:
            descriptors = [self._take() for _ in buffers]
            for i, (addr, length, flags) in enumerate(buffers):
                last = i + 1 == len(buffers)
                next_index = 0 if last else descriptors[i + 1]
                more = 0 if last else VRING_DESC_F_NEXT
                self.write_desc(descriptors[i], addr, length, flags | more, next_index)
        return Submitted(descriptors[0], descriptors, written, readable=read)

    def resubmit(self, submitted: Submitted) -> None:
        """Make a returned chain available again, same buffers (writable ones zeroed):
        a long run needs no new guest RAM."""
        if submitted.head in self._in_flight:
            raise RuntimeError(f"queue {self.index}: chain {submitted.head} still in flight")
        for index in submitted.descriptors:
            self._free.remove(index)
        for addr, size in submitted.writable:
            self.ram.write(addr, bytes(size))
        submitted.reply = None
        self._in_flight[submitted.head] = submitted
        self.publish(submitted.head)

    def _take(self) -> int:
        if not self._free:
            raise RuntimeError(f"queue {self.index}: no free descriptors")
        return self._free.pop(0)

    def publish(self, head: int, advance: int = 1) -> None:
        """Put ``head`` in the available ring and move ``avail->idx`` by ``advance``."""
        slot = RING_HEADER + 2 * (self.avail_idx % self.size)
        self.ram.write(self.avail_addr + slot, U16.pack(head))
        self.avail_idx = (self.avail_idx + advance) & 0xFFFF
        self.ram.write_u16(self.avail_addr + 2, self.avail_idx)

    def set_used_event(self, value: int) -> None:
        """``used_event`` (VIRTIO_RING_F_EVENT_IDX): interrupt me when used idx passes it."""
        self.ram.write_u16(self.avail_addr + RING_HEADER + 2 * self.size, value)

    def set_avail_flags(self, flags: int) -> None:
        self.ram.write_u16(self.avail_addr, flags)

    def avail_event(self) -> int:
        return self.ram.read_u16(self.used_addr + RING_HEADER + USED_ELEM.size * self.size)

    def kick(self) -> None:
        os.write(self.kick_fd, EVENTFD_VALUE.pack(1))

    def kick_if_needed(self, event_idx: bool) -> bool:
        """Kick only if the device asked (Linux ``virtqueue_kick_prepare_split``): with
        EVENT_IDX, if ``avail->idx`` passed ``avail_event`` since the last call, else unless
        ``VRING_USED_F_NO_NOTIFY``.  The full barrier orders our ``avail->idx`` store before
        that load (the driver's ``virtio_mb``)."""
        full_fence()
        old, new = self.kicked_avail_idx, self.avail_idx
        self.kicked_avail_idx = new
        if event_idx:
            needed = need_event(self.avail_event(), new, old)
        else:
            flags = self.ram.read_u16(self.used_addr)
            needed = not flags & VRING_USED_F_NO_NOTIFY
        if needed:
            self.kick()
        return needed

    # -- completions ----------------------------------------------------------

    def used_idx(self) -> int:
        return self.ram.read_u16(self.used_addr + 2)

    def collect(self) -> list[Submitted]:
        """Chains the device returned since last time, their ``reply`` filled in."""
        done = []
        while self.last_used_idx != self.used_idx():
            slot = RING_HEADER + USED_ELEM.size * (self.last_used_idx % self.size)
            head, length = USED_ELEM.unpack(self.ram.read(self.used_addr + slot, USED_ELEM.size))
            self.last_used_idx = (self.last_used_idx + 1) & 0xFFFF
            submitted = self._in_flight.pop(head)
            self._free.extend(submitted.descriptors)
            reply = b"".join(self.ram.read(addr, size) for addr, size in submitted.writable)
            submitted.reply = reply[:length]
            done.append(submitted)
        # virtqueue_enable_cb: with EVENT_IDX, interrupt me for the next one.
        self.set_used_event(self.last_used_idx)
        return done

    def enable_interrupts(self) -> bool:
        """Ask for an interrupt at the next used chain; False if one came already
        (Linux ``virtqueue_enable_cb``: write ``used_event``, full barrier, look again).
        Only when this returns True may the driver sleep on the call fd."""
        self.set_used_event(self.last_used_idx)
        full_fence()
        return self.used_idx() == self.last_used_idx

    @staticmethod
    def consume(fd: int) -> int:
        """Read an eventfd's counter (0 if it was not signalled)."""
        try:
            return EVENTFD_VALUE.unpack(os.read(fd, EVENTFD_VALUE.size))[0]
        except BlockingIOError:
            return 0

    async def wait_call(self) -> None:
        """Until the device signals the call eventfd, or briefly if another task waits on it
        (trio lets one task wait per fd); the timeout also catches a missed interrupt."""
        if self._call_waiter:
            await trio.sleep(CALL_POLL_INTERVAL)
            return
        self._call_waiter = True
        try:
            with trio.move_on_after(CALL_POLL_INTERVAL * 50):
                await trio.lowlevel.wait_readable(self.call_fd)
            self.interrupts += self.consume(self.call_fd)
        finally:
            self._call_waiter = False
