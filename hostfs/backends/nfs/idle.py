"""Waiting for one socket in the kernel while the event loop has nothing else to do.

When no task is runnable, trio itself would sleep in ``epoll_wait`` until some
descriptor it watches is ready or its next timer is due.  A task that expects
a reply on one socket can take that sleep in its place, in one ``select(2)``
on the socket *and* trio's own epoll descriptor (which is readable whenever
anything trio watches is ready), bounded by trio's next deadline: nothing the
loop would have done is delayed, and the reply costs no ``epoll_ctl``, no
cancel scope, no task switch (loop.py ``LoopRpc._poll``).

trio keeps its epoll object private (read through hostfs.trio_loop); where it
cannot be read (another trio, another platform), the wait is bounded by a short
window instead and other I/O waits for it.
"""

from __future__ import annotations

import select

import trio

from hostfs import trio_loop

FD_SETSIZE = 1024
"""glibc's ``fd_set`` size: ``select.select`` refuses a descriptor at or above it."""


def loop_state() -> tuple[float, int | None]:
    """How long the event loop would sleep now (0: another task is to run, in its run
    queue or still in this scheduler pass: hostfs.trio_loop.runnable), and its epoll
    descriptor, or None where trio does not wait in one we can see (then the run
    queue alone, from trio's public statistics)."""
    loop = trio_loop.running_loop()
    if loop is None:
        statistics = trio.lowlevel.current_statistics()
        return (0.0 if statistics.tasks_runnable else statistics.seconds_to_next_deadline), None
    fd = trio_loop.epoll_fd(loop)
    return trio_loop.idle_seconds(loop), (fd if fd < FD_SETSIZE else None)


def ready(fd: int, events: int, timeout_ns: int, loop: int | None) -> tuple[int, bool]:
    """The ``events`` (POLLIN, POLLOUT) ``fd`` is ready for within ``timeout_ns``, and
    whether the event loop (``loop``: :func:`loop_state`'s descriptor) has work meanwhile.

    ``select(2)``, because it takes microseconds where ``poll(2)`` and
    ``epoll_wait(2)`` take milliseconds; the kernel may add the thread's timer
    slack (50 us by default, ``prctl(PR_SET_TIMERSLACK)``).  For a descriptor
    above FD_SETSIZE: all the events at once, unwaited (the reads only meet EAGAIN).
    """
    if fd >= FD_SETSIZE:
        return events, False
    reading = (fd,) if loop is None else (fd, loop)
    writing = (fd,) if events & select.POLLOUT else ()
    readable, writable, _ = select.select(reading, writing, (), timeout_ns / 1e9)
    revents = (select.POLLIN if fd in readable else 0) | (select.POLLOUT if writable else 0)
    return revents, loop is not None and loop in readable
