"""The one place hostfs reads trio's private run state, for waits taken in its place.

Two waits sleep in the kernel instead of in trio's event loop when nothing else
would run: an idle ring on its kick fd (hostfs.vhost.kernel_wait) and an NFS
call on its socket (hostfs.backends.nfs.idle).  Both need trio's epoll fd,
readable whenever anything trio watches is ready (epoll(7): "Is the epoll file
descriptor itself poll/epoll/selectable? Yes"), so that such a sleep ends the
moment trio has work.  Trio offers no public handle on its epoll (it has
``current_kqueue`` and ``current_iocp`` for the other platforms), and its public
``current_statistics()`` costs 2.7 us here against 0.2 us for the run queue and
next deadline read straight from its run state, and as much again for the scan of
a dozen tasks (a serving daemon's) that :func:`runnable` adds.  The host mount's
engines ask a part of the same question (is any other task in the run queue?)
before every poll of their device.

:func:`running_loop` reads that state as trio 0.35 lays it out and answers None
when any part is missing (another trio, another platform): the callers then
wait in trio, as they would without this module.
"""

from __future__ import annotations

import math
import select
from collections.abc import Callable
from typing import Any

import trio

try:
    from trio._core import _run as _trio_run
except ImportError:  # pragma: no cover - another trio layout: always wait in trio
    _trio_run = None  # type: ignore[assignment]

_CONTEXT: Any = getattr(_trio_run, "GLOBAL_RUN_CONTEXT", None)
"""Trio's thread-local run state: ``.runner`` is the loop running in this thread."""

_TASKS_READABLE = hasattr(getattr(_trio_run, "Task", None), "_next_send_fn")
"""What :func:`runnable` reads of a task scheduled in the current pass: a slot of
trio's Task class, so asked once here, not of every task on every call (a
generator over all tasks in each NFS call's "is the loop idle?")."""


def running_loop() -> Any | None:
    """The trio loop running in this thread (its ``Runner``), if it has every part read here."""
    runner: Any = getattr(_CONTEXT, "runner", None)
    epoll = getattr(getattr(runner, "io_manager", None), "_epoll", None)
    if not isinstance(epoll, select.epoll):
        return None
    if not all(hasattr(runner, part) for part in ("runq", "tasks", "deadlines", "current_time")):
        return None
    return runner if _TASKS_READABLE else None


def is_running(loop: Any) -> bool:
    """Whether ``loop`` (from :func:`running_loop`) is still the one running in this thread:
    a later ``trio.run`` has another epoll, maybe on the same fd number."""
    return getattr(_CONTEXT, "runner", None) is loop


def epoll_fd(loop: Any) -> int:
    """The epoll descriptor ``loop`` sleeps in."""
    return int(loop.io_manager._epoll.fileno())


def runnable(loop: Any) -> bool:
    """Whether any task besides the caller is to run in ``loop``: in its run queue, or
    still to run in the current scheduler pass.

    trio takes the whole run queue into a batch of its own before it runs any of it
    (``unrolled_run``), so a task woken in the same pass as the caller, and run after
    it, is in no run queue (nor in ``current_statistics().tasks_runnable``).  Such a
    task has its ``_next_send_fn`` set (``Runner.reschedule``) until trio steps it;
    the caller's own is cleared before it runs.  Missed, a ring slept in the kernel
    with another ring's request waiting behind it until a kick of its own or 100 ms
    (hostfs.vhost.kernel_wait): with two request queues at depth 32, p99 latency
    2-4 ms and waits of 100 ms.
    """
    if loop.runq:
        return True
    for task in loop.tasks:  # noqa: SIM110 - a loop, not any(): no generator per call
        if task._next_send_fn is not None:
            return True
    return False


def idle_seconds(loop: Any) -> float:
    """How long ``loop`` would sleep now: 0 with a task :func:`runnable`, else until its
    next deadline (inf with none, as trio's own ``seconds_to_next_deadline``)."""
    if runnable(loop):
        return 0.0
    deadline = loop.deadlines.next_deadline()
    if deadline == math.inf:
        return math.inf  # nothing scheduled: no clock to read
    return float(deadline - loop.current_time())


def runnable_counter() -> Callable[[], int]:
    """A function answering how many tasks wait in the run queue of the loop running
    now: trio's ``current_statistics().tasks_runnable``, read straight from its run
    queue (0.05 us against 2.6 us); the public call where the run state is not as this
    module knows it.

    The engines ask before polling their device (hostfs.devfuse.session,
    hostfs.uring.session).  The run queue only, not :func:`runnable`: their poll lasts
    at most 50 us, so a task still to run in this pass waits no longer than that,
    while skipping the poll for it sends the worker through epoll.  (Asking
    :func:`runnable` instead measured devfuse create 0.88-0.90x in two bench-local
    runs, but identical engine code spans 0.93-1.14x between runs there: unproven
    either way, so the engines were left as they were.)"""
    loop = running_loop()
    if loop is None:
        return lambda: trio.lowlevel.current_statistics().tasks_runnable
    counter: Callable[[], int] = loop.runq.__len__
    return counter
