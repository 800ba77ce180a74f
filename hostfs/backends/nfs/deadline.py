"""One deadline per request: the URL's ``timeout=`` counts from when the request
reaches the backend, however many other requests wait with it.

Without it each RPC got the whole timeout from the moment it was queued, so a
request that first waited for a busy context (or for another request's
remount of a dead connection) and then sent its own RPC failed after two,
three... timeouts: 20, 25 and 30 s for ``timeout=10`` under a concurrent load
while the server was down.  Now a backend method sets the deadline once
(:func:`per_request`), and everything it waits for, a free context, a mount, each
RPC (libnfs's per-PDU timeout, ``rpc_queue_pdu``: set to what is left), runs
against it.  Nested backend calls share their caller's deadline.

The margin: libnfs expires a PDU in ``rpc_service``, which waiters call at
least every 100 ms (libnfs-raw.h), on ``CLOCK_MONOTONIC_COARSE`` (~4 ms), so a
request fails at most ~0.2 s after its deadline, plus the hop back to the loop.
"""

from __future__ import annotations

import errno
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import trio

MARGIN = 0.2
"""How late past its deadline a request may fail (see the module docstring)."""

_deadline: ContextVar[float | None] = ContextVar("nfs_request_deadline", default=None)
"""``time.monotonic()`` by which the current backend request must be answered."""

C = TypeVar("C", bound=type)


def deadline(timeout: float) -> float:
    """The current request's deadline, or one ``timeout`` from now outside a request."""
    current = _deadline.get()
    return current if current is not None else time.monotonic() + timeout


def remaining_ms(when: float) -> int:
    """Milliseconds left until ``when``; ETIMEDOUT if none are."""
    left = int((when - time.monotonic()) * 1000)
    if left <= 0:
        raise OSError(errno.ETIMEDOUT, "the NFS request ran out of time")
    return left


def trio_deadline(when: float) -> float:
    """``when`` on trio's clock (which has its own offset) for ``move_on_at``."""
    return trio.current_time() + (when - time.monotonic())


def per_request(timeout: Callable[[Any], float]) -> Callable[[C], C]:
    """Class decorator: each public coroutine method of the class sets the deadline
    (``timeout(self)`` seconds from its start) unless a caller already did."""

    def wrap(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)
        async def bounded(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _deadline.get() is not None:
                return await method(self, *args, **kwargs)
            token = _deadline.set(time.monotonic() + timeout(self))
            try:
                return await method(self, *args, **kwargs)
            finally:
                _deadline.reset(token)

        return bounded

    def decorate(cls: C) -> C:
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(value):
                setattr(cls, name, wrap(value))
        return cls

    return decorate
