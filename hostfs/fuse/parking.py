"""A request that waits without bound gives its transport slot back while it waits.

Each transport serves at most N requests at once: N devfuse workers, N limiter
tokens per virtqueue.  SETLKW and a blocking flock() wait for another request
(the unlock) that can only be read while a slot is free, so N waiters would
deadlock the session for good.  Such a request *parks*: its transport lends the
slot to a new request for as long as the wait lasts.

The transport says what its slot is through :data:`current_slot`, set in the
task that serves the request; the dispatcher parks around the wait.  A
transport that sets nothing serves such requests in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Protocol

import trio


class Slot(Protocol):
    def lend(self) -> None:
        """Let another request use this slot from now on."""

    async def take_back(self) -> None:
        """Wait until this request may go on under the transport's limit again."""


current_slot: ContextVar[Slot | None] = ContextVar("hostfs_transport_slot", default=None)


@contextlib.asynccontextmanager
async def parked() -> AsyncIterator[None]:
    slot = current_slot.get()
    if slot is None:
        yield
        return
    slot.lend()
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            await slot.take_back()
