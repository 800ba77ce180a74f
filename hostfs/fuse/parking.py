"""A request that waits without bound gives its transport slot back while it waits.

Each transport serves at most N requests at once: N devfuse workers, N limiter
tokens per virtqueue.  SETLKW and a blocking flock() wait for another request
(the unlock) that can only be read while a slot is free, so N waiters would
deadlock the session for good.  Such a request *parks*: its transport lends the
slot to a new request for as long as the wait lasts.

The transport says what its slot is through :data:`current_slot`, set in the
task that serves the request; the dispatcher parks around the wait.  A
transport that sets nothing serves such requests in place.

A parked wait can last forever, so a transport that must stop (a vhost-user
ring on GET_VRING_BASE, a reset, a disconnect) cannot wait for it.  It sets
:data:`current_waits` too and calls :meth:`ParkedWaits.end` when it stops: every
wait ends as if interrupted (EINTR, as a signal ends ``fcntl(F_SETLKW)``,
fcntl(2)), so the request is still answered, and ordinary requests finish.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Protocol

import trio


class Slot(Protocol):
    def lend(self) -> None:
        """Let another request use this slot from now on."""

    async def take_back(self) -> None:
        """Wait until this request may go on under the transport's limit again."""


class ParkedWaits:
    """The waits parked on one transport, so that it can end them when it stops."""

    def __init__(self) -> None:
        self._scopes: set[trio.CancelScope] = set()
        self.ended = False

    def __len__(self) -> int:
        return len(self._scopes)

    def add(self, scope: trio.CancelScope) -> None:
        """A wait parks; once the transport is stopping it ends at once."""
        self._scopes.add(scope)
        if self.ended:
            scope.cancel()

    def discard(self, scope: trio.CancelScope) -> None:
        self._scopes.discard(scope)

    def end(self) -> None:
        """End every parked wait, and any that parks from now on, with EINTR."""
        self.ended = True
        for scope in self._scopes:
            scope.cancel()


current_slot: ContextVar[Slot | None] = ContextVar("hostfs_transport_slot", default=None)
current_waits: ContextVar[ParkedWaits | None] = ContextVar("hostfs_parked_waits", default=None)


@contextlib.asynccontextmanager
async def parked() -> AsyncIterator[None]:
    """Around a wait without bound; raises EINTR if the transport ended the wait."""
    slot = current_slot.get()
    waits = current_waits.get()
    scope = trio.CancelScope()
    if waits is not None:
        waits.add(scope)
    if slot is not None:
        slot.lend()
    try:
        with scope:
            yield
    finally:
        if waits is not None:
            waits.discard(scope)
        if slot is not None:
            with trio.CancelScope(shield=True):
                await slot.take_back()
    if scope.cancelled_caught:
        raise OSError(errno.EINTR, "wait ended: the transport is stopping")
