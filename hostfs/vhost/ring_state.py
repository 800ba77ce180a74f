"""A vhost-user ring's lifecycle: every state and every transition in one table (h11's rule).

vhost-user.rst, "Ring states" ("Starting and stopping rings" before QEMU 7.1):
a ring has two properties.  It is *started* by SET_VRING_KICK (its fd, or the
NOFD flag for a polled ring) and *stopped* by GET_VRING_BASE; a stopped ring
"must not be processed at all".  It is *enabled* by SET_VRING_ENABLE 1 when
VHOST_USER_F_PROTOCOL_FEATURES was negotiated, else from its start; hostfs
processes only a started and enabled ring (a disabled one is stopped, not
drained without side effects: the Linux guest driver never fills one).  The
enabled property is kept while the ring is stopped, as the 2023 clarification
of that section says, so it is the :attr:`RingLifecycle.enabled` axis beside
the started one, :class:`RingState`::

    STOPPED --kick--> STARTED --serve--> SERVING --stop--> STOPPING --ended--> STARTED
       ^                 |                  |                 |
       |                 +--broke--> BROKEN <--ended-- FAILING <--broke--+
       +--------- get_base (from STARTED, BROKEN, STOPPED) -------------+

``kick`` of a BROKEN ring starts it again (a front-end restarts a broken queue
with a new SET_VRING_KICK), ``kick`` of a SERVING ring only swaps its fd.  A
transition the table lacks raises :class:`RingStateError`, which the device
answers as a refused message (REPLY_ACK failure).

The table is consulted on messages and when the serving task starts or ends,
never per request: the ring's loop only compares :attr:`RingLifecycle.state`
with SERVING once per drained batch.
"""

from __future__ import annotations

import enum


class RingState(enum.Enum):
    STOPPED = "stopped"
    """Not processed; SET_VRING_NUM/ADDR/BASE may configure it."""
    STARTED = "started"
    """SET_VRING_KICK came; served once enabled (and again after a stop by disable)."""
    SERVING = "serving"
    """Started and enabled: a task drains the ring on every kick."""
    STOPPING = "stopping"
    """GET_VRING_BASE or SET_VRING_ENABLE 0 asked it to stop; in-flight requests finish."""
    FAILING = "failing"
    """The guest broke it (SET_VRING_ERR signalled) while served; in-flight requests finish."""
    BROKEN = "broken"
    """The guest broke it: not served until the next SET_VRING_KICK."""


class RingEvent(enum.Enum):
    KICK = "SET_VRING_KICK"
    SERVE = "serving task started"
    STOP = "stop asked (GET_VRING_BASE, SET_VRING_ENABLE 0)"
    ENDED = "serving task ended"
    BROKE = "guest broke the ring"
    GET_BASE = "GET_VRING_BASE"


_S = RingState
_E = RingEvent

TRANSITIONS: dict[tuple[RingState, RingEvent], RingState] = {
    (_S.STOPPED, _E.KICK): _S.STARTED,
    (_S.STARTED, _E.KICK): _S.STARTED,
    (_S.BROKEN, _E.KICK): _S.STARTED,
    (_S.SERVING, _E.KICK): _S.SERVING,
    (_S.STOPPING, _E.KICK): _S.STOPPING,
    (_S.FAILING, _E.KICK): _S.FAILING,
    (_S.STARTED, _E.SERVE): _S.SERVING,
    (_S.SERVING, _E.STOP): _S.STOPPING,
    (_S.STOPPING, _E.STOP): _S.STOPPING,
    (_S.FAILING, _E.STOP): _S.FAILING,
    (_S.STOPPING, _E.ENDED): _S.STARTED,
    (_S.SERVING, _E.ENDED): _S.STARTED,  # cancelled: the connection's nursery ended
    (_S.FAILING, _E.ENDED): _S.BROKEN,
    (_S.STARTED, _E.BROKE): _S.BROKEN,
    (_S.SERVING, _E.BROKE): _S.FAILING,
    (_S.STOPPING, _E.BROKE): _S.FAILING,
    (_S.FAILING, _E.BROKE): _S.FAILING,
    (_S.BROKEN, _E.BROKE): _S.BROKEN,
    (_S.STOPPED, _E.GET_BASE): _S.STOPPED,
    (_S.STARTED, _E.GET_BASE): _S.STOPPED,
    (_S.BROKEN, _E.GET_BASE): _S.STOPPED,
}
"""(state, event) -> next state; anything else is a protocol error."""

TASK_ALIVE = frozenset({RingState.SERVING, RingState.STOPPING, RingState.FAILING})
"""States in which the ring's serving task runs (and its configuration is fixed)."""


class RingStateError(Exception):
    """A message or event the ring's state does not allow (the device refuses the message)."""


class RingLifecycle:
    """One ring's state and enabled axis; the device and the ring ask it, never assign."""

    __slots__ = ("enabled", "index", "state")

    def __init__(self, index: int) -> None:
        self.index = index
        self.state = RingState.STOPPED
        self.enabled = False
        """vhost-user.rst: "initialized in a disabled state"; kept while stopped."""

    def _go(self, event: RingEvent) -> None:
        try:
            self.state = TRANSITIONS[self.state, event]
        except KeyError:
            raise RingStateError(
                f"queue {self.index}: {event.value} while {self.state.value}"
            ) from None

    @property
    def task_alive(self) -> bool:
        return self.state in TASK_ALIVE

    @property
    def may_serve(self) -> bool:
        """Started and enabled, with no task yet: the device may start serving it."""
        return self.state is RingState.STARTED and self.enabled

    def check_configurable(self) -> None:
        """SET_VRING_NUM/ADDR/BASE: only a ring whose task is not running (vhost-user.rst
        gives them for a stopped ring; a started, disabled one takes them as well)."""
        if self.task_alive:
            raise RingStateError(f"queue {self.index} is running")

    def kick(self, protocol_features: bool) -> None:
        """SET_VRING_KICK: started; without VHOST_USER_F_PROTOCOL_FEATURES also enabled
        ("the ring starts directly in the enabled state")."""
        self._go(RingEvent.KICK)
        if self.state is RingState.STARTED and not protocol_features:
            self.enabled = True

    def enable(self, on: bool) -> None:
        """SET_VRING_ENABLE: the enabled axis, in any state."""
        self.enabled = on

    def serve(self) -> None:
        self._go(RingEvent.SERVE)

    def stop(self) -> None:
        self._go(RingEvent.STOP)

    def ended(self) -> None:
        self._go(RingEvent.ENDED)

    def broke(self) -> None:
        self._go(RingEvent.BROKE)

    def get_base(self) -> None:
        """GET_VRING_BASE, once the task (if any) has ended: stopped."""
        self._go(RingEvent.GET_BASE)
