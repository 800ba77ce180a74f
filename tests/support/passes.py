"""Tasks that trio runs in one scheduler pass, for tests of "is another task to run?"."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio
import trio.testing

T = TypeVar("T")


async def in_one_pass(step: Callable[[], T], tasks: int = 2) -> list[T]:
    """What ``step`` answered in each of ``tasks`` tasks woken together, in the order
    they ran: trio takes them into one batch, so while the first runs the others are
    in no run queue (hostfs.trio_loop.runnable)."""
    sleepers: list[trio.lowlevel.Task] = []
    answers: list[T] = []

    async def sleeper() -> None:
        sleepers.append(trio.lowlevel.current_task())
        await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)
        answers.append(step())

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        for task in sleepers:
            trio.lowlevel.reschedule(task)
    return answers
