"""A FUSE session's states and transitions, all in one place (h11's rule).

::

    AWAITING_INIT --INIT agreed--> RUNNING --DESTROY--> AWAITING_INIT
                  <--INIT, kernel major newer: answered, still waiting
                                   RUNNING --INIT agreed--> RUNNING

Only INIT is served while awaiting it; anything else gets EIO, as libfuse
(fuse_session_process_buf) and virtiofsd answer.  INIT is served while running
too: QEMU reboots a guest without resetting the device, so a new INIT starts a
new session (``FileSystem.init()`` ends the old one).  DESTROY returns to
awaiting INIT: a guest may mount the same device again.  What each opcode gets
in each state is :data:`ADMITTED`; the moves are :data:`TRANSITIONS`.
"""

from __future__ import annotations

import enum
import errno

from hostfs.fuse.abi import Opcode


class SessionState(enum.Enum):
    AWAITING_INIT = enum.auto()
    RUNNING = enum.auto()


class SessionEvent(enum.Enum):
    AGREED = "INIT agreed a protocol"
    DESTROYED = "DESTROY"


ADMITTED: dict[SessionState, frozenset[int] | None] = {
    SessionState.AWAITING_INIT: frozenset({Opcode.INIT}),
    SessionState.RUNNING: None,
}
"""The opcodes served in each state (None: every one the dispatch table has); any other
gets :data:`REFUSED_ERRNO`."""

REFUSED_ERRNO = errno.EIO
"""What a request the state does not admit gets (libfuse: EIO before INIT)."""

TRANSITIONS: dict[tuple[SessionState, SessionEvent], SessionState] = {
    (SessionState.AWAITING_INIT, SessionEvent.AGREED): SessionState.RUNNING,
    (SessionState.RUNNING, SessionEvent.AGREED): SessionState.RUNNING,
    (SessionState.RUNNING, SessionEvent.DESTROYED): SessionState.AWAITING_INIT,
}
"""(state, event) -> next state; DESTROY while awaiting INIT is not admitted, so not here."""


class SessionStateError(Exception):
    """An event the session's state does not allow: a bug of the dispatcher's, not the guest's."""


class Session:
    __slots__ = ("_admitted", "state")

    def __init__(self) -> None:
        self.state = SessionState.AWAITING_INIT
        self._admitted = ADMITTED[self.state]

    def admits(self, opcode: int) -> bool:
        """Whether a request with ``opcode`` may be served now (once per request: one
        identity test while running)."""
        admitted = self._admitted
        return admitted is None or opcode in admitted

    def _go(self, event: SessionEvent) -> None:
        try:
            self.state = TRANSITIONS[self.state, event]
        except KeyError:
            raise SessionStateError(f"{event.value} while {self.state.name}") from None
        self._admitted = ADMITTED[self.state]

    def agreed(self) -> None:
        """INIT settled a protocol."""
        self._go(SessionEvent.AGREED)

    def destroyed(self) -> None:
        """DESTROY: wait for the next INIT."""
        self._go(SessionEvent.DESTROYED)
