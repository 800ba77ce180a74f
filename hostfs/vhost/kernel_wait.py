"""Sleep on a ring's kick fd in the kernel instead of in trio's loop, when nothing else runs.

A guest under emulation (QEMU TCG) sends its next request 0.1-1 ms after a
reply, far past the ring's polling window (hostfs.vhost.polling), so every
request finds the ring asleep.  Asleep in trio, a kick costs a scheduler pass
on top of the kernel's wake-up: the event loop's epoll_wait returns, the event
is processed, the ring's task is rescheduled and resumed, and its next wait
re-arms the fd (EPOLLONESHOT, one more epoll_ctl).  Measured here with an
eventfd ping-pong against another process, 300 us between rounds: 10-12 us of
CPU per round in a bare epoll loop, 25-32 us in trio (0.35); kick to resumed
task 8-10 us against 15 us.

The ring waits in an epoll set of its own instead, which holds its kick fd and
trio's own epoll fd, both level-triggered.  An epoll fd is readable while
events wait in it (epoll(7): "Is the epoll file descriptor itself
poll/epoll/selectable? Yes"), so anything another task waits for ends the
wait: a vhost-user message, another ring's kick, trio's wake-up fd (a worker
thread's result, a signal).  Then the ring hands its wait to trio, which
finds the event still there.  The ring sleeps here only when trio has no
runnable task, and no longer than trio's next deadline, so no task is held
up; and at most MAX_WAIT_S, after which trio's wait takes over (an idle
guest's ring then costs nothing more).

Trio's run state is read through hostfs.trio_loop; where it cannot be, the
ring always waits in trio.  Callgrind, the eventfd ping-pong above: 60k
instructions a round in trio, 8k in a bare epoll loop, 29k with this wait when
it still asked trio's public ``current_statistics`` (the run state read directly
costs less).
In ``hostfs serve`` driven as such a guest does (scripts/bench-device
``--think-us 300``, depth 1, callgrind): GETATTR 213k -> 165k instructions per
request, LOOKUP 239k -> 197k; one system call less per request (no
epoll_ctl), which leaves the four Rust virtiofsd makes.
"""

from __future__ import annotations

import select
from typing import Any

from hostfs import trio_loop

MAX_WAIT_S = 0.1
"""Longest sleep here before trio's own wait takes over: far above a TCG guest's
0.1-1 ms between requests, so a busy guest's ring does not go back to trio for it."""


class KernelWait:
    """One ring's epoll set: its kick fd and the epoll fd of the trio loop it runs in."""

    __slots__ = ("_epoll", "_kick_fd", "_runner")

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None
        self._kick_fd: int | None = None
        self._runner: Any | None = None
        """The trio loop whose epoll the set holds (a later trio run has another one,
        maybe on the same fd number)."""

    def wait(self, kick_fd: int) -> bool:
        """Sleep until ``kick_fd`` is readable; True if it is and nothing else wants trio.

        False (nothing slept, or something else woke us, or the time ran out): the
        caller waits in trio, as it would without this."""
        epoll, runner = self._epoll, self._runner
        if epoll is None or kick_fd != self._kick_fd or not trio_loop.is_running(runner):
            epoll, runner = self._register(kick_fd)
            if epoll is None:
                return False
        timeout = min(trio_loop.idle_seconds(runner), MAX_WAIT_S)
        if timeout <= 0:
            return False  # a task is runnable or a deadline due: trio must run them
        events = epoll.poll(timeout, 2)
        return len(events) == 1 and events[0][0] == kick_fd

    def _register(self, kick_fd: int) -> tuple[select.epoll | None, Any]:
        """A fresh set for a new kick fd (the old one may be closed, its number reused)."""
        self.close()
        runner = trio_loop.running_loop()
        if runner is None:
            return None, None
        epoll = select.epoll(2)
        try:
            epoll.register(trio_loop.epoll_fd(runner), select.EPOLLIN)
            epoll.register(kick_fd, select.EPOLLIN)
        except (OSError, ValueError):  # a closed fd: trio's wait reports it
            epoll.close()
            return None, None
        self._epoll, self._kick_fd, self._runner = epoll, kick_fd, runner
        return epoll, runner

    def close(self) -> None:
        """Forget the set: the kick fd was replaced or closed."""
        if self._epoll is not None:
            self._epoll.close()
        self._epoll = self._kick_fd = self._runner = None
