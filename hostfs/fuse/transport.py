"""What every transport does around one FUSE request, written once.

A transport moves FUSE requests between a peer and the dispatcher: the host
kernel over /dev/fuse (hostfs.devfuse.session) or its io_uring queues
(hostfs.uring.session), a guest's virtqueues (hostfs.vhost.ring).  How bytes
arrive and leave is each one's own; around every request they do the same
things, and those live here:

- **serve it** (:meth:`Transport.serve`): hand the request's buffers and the
  reply's to the handler (decode → dispatch → reply: hostfs.fuse.dispatcher,
  which also counts it per opcode in hostfs.fuse.stats), count it for this
  transport, and keep a bug of ours to that one request: a handler that raises,
  or says it wrote outside the reply's buffers, is logged and answered with
  nothing (0), so the transport gives its buffers back and goes on.  (Rust
  virtiofsd's ``Server::handle_message`` is the same one step, called by every
  queue's worker.)
- **run it in a place** (:meth:`Transport.enter`): each transport serves at most
  N requests at once, in N places: a devfuse worker, an io_uring entry, a
  virtqueue's limiter token.  A place is a :class:`~hostfs.fuse.parking.Slot`:
  the request that parks in a wait without bound (SETLKW, a blocking flock)
  lends it (hostfs.fuse.parking).  The two ways a place is lent are the two
  slots below: :class:`Relay` (a new place starts; the lent one ends with its
  request) and :class:`Token` (a counted token goes back and is taken again).
- **end its parked waits when it stops** (:meth:`Transport.end_waits`).

The hot path pays one call and one ``try`` per request: about 150 ns over
calling the handler directly (a no-op handler, best of 7 x 300,000), under 1 %
of the 20-50 us of daemon CPU a request costs (scripts/bench-device); the vhost
ring's own guard, which this replaces, cost more (its capacity sum ran for
every request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

from hostfs.fuse.parking import ParkedWaits, Slot, current_slot, current_waits
from hostfs.fuse.ratelimit import RateLimitedLog
from hostfs.fuse.scatter import total_length

_bugs = RateLimitedLog(logging.getLogger(__name__))
"""Where a transport that names no log of its own reports a failing handler."""


class RequestHandler(Protocol):
    """The FUSE dispatcher as a transport sees it (hostfs.fuse.dispatcher.Dispatcher).

    A handler may also have ``may_yield(readable) -> bool``: False for a request that
    finishes without yielding to the event loop (``Dispatcher.may_yield``); the vhost
    ring serves those in its own task.
    """

    async def handle(
        self, readable: Sequence[memoryview], writable: Sequence[memoryview]
    ) -> int: ...


class Transport:
    """One transport's side of a FUSE session: its handler, its count, its parked waits.

    ``name`` says which in the log ("/dev/fuse", "io_uring", "queue 1"); ``errors`` is
    the transport's own rate-limited log (a failing handler fails every request that
    reaches it, and a guest sends as many as it likes).
    """

    __slots__ = ("errors", "handler", "name", "requests", "waits")

    def __init__(
        self, name: str, handler: RequestHandler | None = None, errors: RateLimitedLog = _bugs
    ) -> None:
        self.name = name
        self.handler: RequestHandler = handler or _NotServing()
        """Set by :meth:`begin` where a transport outlives its sessions (a ring)."""
        self.errors = errors
        self.requests = 0
        """Requests served over this transport so far (the dispatcher counts per opcode)."""
        self.waits = ParkedWaits()
        """Its requests parked in a wait without bound now."""

    def begin(self, handler: RequestHandler) -> None:
        """Serve (again) for ``handler``: after :meth:`end_waits`, waits park afresh."""
        self.handler = handler
        self.waits = ParkedWaits()

    def enter(self, slot: Slot | None) -> None:
        """In the task that serves requests here: a wait parks through ``slot`` (None:
        it waits in place) and is ended by :meth:`end_waits`.  Tasks started from this
        one inherit both (contextvars)."""
        current_slot.set(slot)
        current_waits.set(self.waits)

    def end_waits(self) -> None:
        """The transport stops: every parked wait ends with EINTR (hostfs.fuse.parking)."""
        self.waits.end()

    async def serve(self, readable: Sequence[memoryview], writable: Sequence[memoryview]) -> int:
        """Serve one request; the reply's length, within ``writable`` (0: no reply)."""
        try:
            written = await self.handler.handle(readable, writable)
        except Exception:
            self.errors.log(
                "failed requests",
                logging.ERROR,
                "%s: request handler failed; answered with nothing",
                self.name,
                trace=True,
            )
            written = 0
        self.requests += 1
        if (
            written
            and (written < 0 or not writable or written > len(writable[0]))
            # A guest's reply, its header apart: against all buffers (total_length's
            # sum, without a call per request).
            and not 0 < written <= sum(map(len, writable))
        ):
            return self._bounded(written, writable)  # a bug
        return written

    def _bounded(self, written: int, writable: Sequence[memoryview]) -> int:
        """``written`` (which does not fit in ``writable``), logged and cut to fit."""
        capacity = total_length(writable)
        self.errors.log(
            "failed requests",
            logging.ERROR,
            "%s: handler wrote %d of %d bytes",
            self.name,
            written,
            capacity,
        )
        return min(max(written, 0), capacity)


class _NotServing:
    async def handle(self, readable: Sequence[memoryview], writable: Sequence[memoryview]) -> int:
        raise RuntimeError("a request before the transport began serving")


class Relay:
    """A place lent by starting another: a devfuse worker, an io_uring entry.

    ``start_successor`` starts the new place; the lent one ends after its request
    (the transport asks :attr:`lent`), so the count of free places stays the same.
    """

    __slots__ = ("_start_successor", "lent")

    def __init__(self, start_successor: Callable[[], object]) -> None:
        self._start_successor = start_successor
        self.lent = False

    def lend(self) -> None:
        self.lent = True
        self._start_successor()

    async def take_back(self) -> None:
        """Nothing to wait for: the successor keeps the place."""


class Token:
    """A place that is a limiter token, held on behalf of one request (a virtqueue's)."""

    __slots__ = ("borrower", "limiter")

    def __init__(self, limiter: trio.CapacityLimiter, borrower: object) -> None:
        self.limiter = limiter
        self.borrower = borrower

    def lend(self) -> None:
        self.limiter.release_on_behalf_of(self.borrower)

    async def take_back(self) -> None:
        await self.limiter.acquire_on_behalf_of(self.borrower)
