"""Session states: only INIT before INIT; INIT again while running; DESTROY starts over."""

from __future__ import annotations

import pytest

from hostfs.fuse.abi import Opcode
from hostfs.fuse.session import ADMITTED, TRANSITIONS, Session, SessionState, SessionStateError


def test_states_and_transitions() -> None:
    session = Session()
    assert session.state is SessionState.AWAITING_INIT
    assert session.admits(Opcode.INIT) and not session.admits(Opcode.LOOKUP)
    assert not session.admits(9999)
    session.agreed()
    assert session.state is SessionState.RUNNING
    assert session.admits(Opcode.LOOKUP) and session.admits(Opcode.INIT)
    session.destroyed()
    assert session.state is SessionState.AWAITING_INIT
    assert not session.admits(Opcode.GETATTR)


def test_a_transition_the_table_lacks_is_refused() -> None:
    """DESTROY while awaiting INIT is not admitted, so the session never takes it."""
    session = Session()
    with pytest.raises(SessionStateError):
        session.destroyed()
    assert session.state is SessionState.AWAITING_INIT


def test_every_state_says_what_it_admits() -> None:
    for state in SessionState:
        assert state in ADMITTED
        assert any(key[0] is state for key in TRANSITIONS)
