"""Dropping CAP_FSETID around a call: out inside, back after, in this thread only."""

from __future__ import annotations

import threading

import pytest

from hostfs.devfuse.capabilities import CAP_FSETID, get_capabilities, without_capability

BIT = 1 << CAP_FSETID


def effective() -> bool:
    return bool(get_capabilities()[0].effective & BIT)


def test_the_capability_is_out_inside_and_back_after() -> None:
    if not effective():
        pytest.fail("the suite runs as root, with CAP_FSETID")
    with without_capability(CAP_FSETID):
        assert not effective()
    assert effective()


def test_it_comes_back_when_the_body_fails() -> None:
    with pytest.raises(OSError), without_capability(CAP_FSETID):
        assert not effective()
        raise OSError("the ioctl failed")
    assert effective()


def test_other_threads_keep_it_meanwhile() -> None:
    """A thread running already keeps its own sets (one started inside the block
    would inherit the lowered ones: clone copies the creator's credentials)."""
    seen: list[bool] = []
    dropped, looked = threading.Event(), threading.Event()

    def other() -> None:
        dropped.wait()
        seen.append(effective())
        looked.set()

    thread = threading.Thread(target=other)
    thread.start()
    with without_capability(CAP_FSETID):
        dropped.set()
        looked.wait()
        assert not effective()
    thread.join()
    assert seen == [True]


def test_nested_drops_restore_in_order() -> None:
    with without_capability(CAP_FSETID):
        with without_capability(CAP_FSETID):  # already out: nothing to do, nothing to undo
            assert not effective()
        assert not effective()
    assert effective()
