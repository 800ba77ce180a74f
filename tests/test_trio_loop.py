"""hostfs.trio_loop reads trio's run state, and answers None where it cannot."""

from __future__ import annotations

import math
import select
import socket
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from hostfs import trio_loop
from tests.support.passes import in_one_pass


async def test_the_running_loop_and_its_epoll_fd() -> None:
    loop = trio_loop.running_loop()
    assert loop is not None and trio_loop.is_running(loop)
    fd = trio_loop.epoll_fd(loop)
    # trio's own epoll: a descriptor it waits on shows up there as readable.
    probe = select.epoll()
    try:
        probe.register(fd, select.EPOLLIN)
        assert probe.poll(0) == []
        r, w = socket.socketpair()
        with r, w:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.lowlevel.wait_readable, r)
                await trio.testing.wait_all_tasks_blocked()
                w.send(b"x")  # no checkpoint: trio has not seen it yet
                assert probe.poll(1) == [(fd, select.EPOLLIN)]
    finally:
        probe.close()


async def test_idle_seconds_is_zero_with_a_task_runnable() -> None:
    loop = trio_loop.running_loop()
    assert trio_loop.idle_seconds(loop) == math.inf  # no deadline, nothing runnable
    with trio.move_on_after(30):
        assert 29 < trio_loop.idle_seconds(loop) <= 30
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0)
            assert trio_loop.idle_seconds(loop) == 0.0


async def test_the_runnable_counter_counts_the_run_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = trio_loop.runnable_counter()
    monkeypatch.setattr(trio_loop, "running_loop", lambda: None)
    public = trio_loop.runnable_counter()
    assert fast() == public() == 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0)
        nursery.start_soon(trio.sleep, 0)
        assert fast() == public() == 2


async def test_idle_seconds_is_zero_with_a_task_still_to_run_in_this_pass() -> None:
    """Two tasks woken together run in one batch: the first to run must see the other."""
    loop = trio_loop.running_loop()
    seen = await in_one_pass(lambda: (trio_loop.idle_seconds(loop), trio_loop.runnable(loop)))
    assert seen[0] == (0.0, True)  # the other one was still to run
    assert seen[1][0] > 0 and not seen[1][1]  # nothing was


def test_outside_trio_there_is_no_loop() -> None:
    assert trio_loop.running_loop() is None


def test_a_later_run_is_another_loop() -> None:
    first = trio.run(_running)
    second = trio.run(_running)
    assert first is not second and not trio_loop.is_running(first)


async def _running() -> object:
    return trio_loop.running_loop()


@pytest.mark.parametrize("missing", ["runq", "tasks", "deadlines", "current_time", "io_manager"])
def test_another_trio_layout_is_no_loop(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    epoll = select.epoll()
    try:
        parts = {
            "runq": [],
            "tasks": set(),
            "deadlines": None,
            "current_time": None,
            "io_manager": SimpleNamespace(_epoll=epoll),
        }
        runner = SimpleNamespace(**parts)
        monkeypatch.setattr(trio_loop, "_CONTEXT", SimpleNamespace(runner=runner))
        assert trio_loop.running_loop() is runner
        delattr(runner, missing)
        assert trio_loop.running_loop() is None
    finally:
        epoll.close()


def test_a_trio_whose_tasks_lack_the_pass_marker_is_no_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def check() -> None:
        assert trio_loop.running_loop() is not None
        monkeypatch.setattr(trio_loop, "_TASKS_READABLE", False)
        assert trio_loop.running_loop() is None

    trio.run(check)
