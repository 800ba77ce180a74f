"""Session states: only INIT before INIT; INIT again while running; DESTROY starts over."""

from __future__ import annotations

from hostfs.fuse.abi import Opcode
from hostfs.fuse.session import Session, SessionState


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
