"""A FUSE session's states and transitions, all in one place (h11's rule).

::

    AWAITING_INIT --INIT agreed--> RUNNING --DESTROY--> AWAITING_INIT
                  <--INIT, kernel major newer: answered, still waiting

Only INIT is served while awaiting it; anything else gets EIO, as libfuse
(fuse_session_process_buf) and virtiofsd answer.  INIT is served while running
too: QEMU reboots a guest without resetting the device, so a new INIT starts a
new session (``FileSystem.init()`` ends the old one).  DESTROY returns to
awaiting INIT: a guest may mount the same device again.
"""

from __future__ import annotations

import enum

from hostfs.fuse.abi import Opcode


class SessionState(enum.Enum):
    AWAITING_INIT = enum.auto()
    RUNNING = enum.auto()


class Session:
    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = SessionState.AWAITING_INIT

    def admits(self, opcode: int) -> bool:
        """Whether a request with ``opcode`` may be served now."""
        return self.state is SessionState.RUNNING or opcode == Opcode.INIT

    def agreed(self) -> None:
        """INIT settled a protocol."""
        self.state = SessionState.RUNNING

    def destroyed(self) -> None:
        """DESTROY: wait for the next INIT."""
        self.state = SessionState.AWAITING_INIT
