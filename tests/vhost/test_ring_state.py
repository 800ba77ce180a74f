"""The ring lifecycle table (hostfs.vhost.ring_state) on its own, and as the device uses it."""

from __future__ import annotations

import pytest

from hostfs.vhost.ring_state import (
    TASK_ALIVE,
    TRANSITIONS,
    RingEvent,
    RingLifecycle,
    RingState,
    RingStateError,
)


def test_kick_starts_and_enables_without_protocol_features() -> None:
    ring = RingLifecycle(1)
    assert ring.state is RingState.STOPPED and not ring.enabled
    ring.kick(protocol_features=False)
    assert ring.state is RingState.STARTED and ring.enabled and ring.may_serve


def test_with_protocol_features_a_started_ring_waits_for_enable() -> None:
    ring = RingLifecycle(1)
    ring.kick(protocol_features=True)
    assert ring.state is RingState.STARTED and not ring.may_serve
    ring.enable(True)
    assert ring.may_serve


def test_enabled_is_kept_while_stopped() -> None:
    """vhost-user.rst: the enabled/disabled state is tracked even while the vring is stopped."""
    ring = RingLifecycle(1)
    ring.enable(True)
    ring.kick(protocol_features=True)
    assert ring.may_serve


def test_serve_stop_end_and_get_base() -> None:
    ring = RingLifecycle(1)
    ring.kick(protocol_features=False)
    ring.serve()
    assert ring.task_alive and ring.state is RingState.SERVING
    with pytest.raises(RingStateError, match="queue 1 is running"):
        ring.check_configurable()
    ring.stop()
    assert ring.state is RingState.STOPPING and ring.task_alive
    ring.ended()
    assert ring.state is RingState.STARTED and not ring.task_alive
    ring.check_configurable()
    ring.get_base()
    assert ring.state is RingState.STOPPED and not ring.may_serve


def test_a_broken_ring_is_not_served_until_the_next_kick() -> None:
    ring = RingLifecycle(1)
    ring.kick(protocol_features=False)
    ring.serve()
    ring.broke()
    assert ring.state is RingState.FAILING and ring.task_alive
    ring.ended()
    assert ring.state is RingState.BROKEN and not ring.may_serve
    ring.kick(protocol_features=False)
    assert ring.may_serve


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (state, event)
        for state in RingState
        for event in RingEvent
        if (state, event) not in TRANSITIONS
    ],
)
def test_every_transition_the_table_lacks_is_refused(state: RingState, event: RingEvent) -> None:
    ring = RingLifecycle(3)
    ring.state = state
    step = {
        RingEvent.KICK: lambda: ring.kick(protocol_features=False),
        RingEvent.SERVE: ring.serve,
        RingEvent.STOP: ring.stop,
        RingEvent.ENDED: ring.ended,
        RingEvent.BROKE: ring.broke,
        RingEvent.GET_BASE: ring.get_base,
    }[event]
    with pytest.raises(RingStateError, match="queue 3"):
        step()
    assert ring.state is state


def test_the_task_runs_exactly_in_the_states_that_stop_and_end_it() -> None:
    """A state with a live task is left by ENDED and not served again by SERVE."""
    for state in RingState:
        assert ((state, RingEvent.ENDED) in TRANSITIONS) == (state in TASK_ALIVE)
        if state in TASK_ALIVE:
            assert (state, RingEvent.SERVE) not in TRANSITIONS
            assert (state, RingEvent.GET_BASE) not in TRANSITIONS
