"""How long a ring looks at its avail index before it sleeps on the kick fd.

Sleeping costs a request far more than its own work: the ring asks for a kick
(``avail_event``), the driver kicks (a VM exit in a real guest), the kick fd wakes
trio's epoll, a scheduler pass runs the ring's task.  Measured with
scripts/bench-device (GETATTR at queue depth 1, the driver answering at once):
hostfs spends 73 us of CPU per request there against 17 us per request at depth
32, where one wake serves many.  A driver that answers within a few
microseconds sends its next request while the ring still looks: no kick, no
wake.

The rule is QEMU's adaptive polling of an AioContext (util/aio-posix.c,
``adjust_polling_time``; an IOThread's ``poll-max-ns`` defaults to 32768,
``IOTHREAD_POLL_MAX_NS_DEFAULT``): start at 0; a request that came after the
window but within the maximum grows the window (4 us, then doubled); one that
came later than the maximum resets it to 0 (QEMU's ``poll-shrink`` 0).  A ring
that waits long between requests (a guest under emulation, an idle guest) thus
stops polling after one long wait and spends no CPU on it.  No I/O here: the
ring measures, this decides.
"""

from __future__ import annotations

POLL_MAX_NS = 65536
"""The longest window: twice QEMU's IOTHREAD_POLL_MAX_NS_DEFAULT (32768, iothread.c),
because a wake costs hostfs more than it costs QEMU: polling pays while the window is
shorter than the CPU a sleep and a wake take, 56 us here (73 us per request at depth
1, 17 at depth 32).  Measured, scripts/bench-device's GETATTR at depth 1 (its driver
answers an interrupt in 35-60 us): 11.2k requests/s with no polling, 10.2k with a
32 us maximum (the window mostly just misses), 22.5k with 64 us, 19.4k with 100 us.
``hostfs serve --poll-max-ns``; 0 turns polling off."""
POLL_START_NS = 4000
"""QEMU's first window ("start polling at 4 microseconds", ``adjust_polling_time``); it
then doubles (``poll-grow`` 0 means 2) up to the maximum."""

POLL_LIMIT_NS = 10_000_000
"""The most ``--poll-max-ns`` takes: a ring never polls more than 10 ms before sleeping
(QEMU takes any value; beyond this a queue spins for nothing a guest would notice)."""


class AdaptivePoll:
    """The current polling window of one ring, in nanoseconds."""

    __slots__ = ("max_ns", "window_ns")

    def __init__(self, max_ns: int = POLL_MAX_NS) -> None:
        self.max_ns = max_ns
        self.window_ns = 0

    def observe(self, waited_ns: int) -> None:
        """The last wait (polling included) took ``waited_ns`` until a request came."""
        if waited_ns <= self.window_ns:
            return  # the window caught it: keep it
        if waited_ns > self.max_ns:
            self.window_ns = 0
        elif self.window_ns < self.max_ns:
            self.window_ns = min(self.max_ns, self.window_ns * 2 or POLL_START_NS)
