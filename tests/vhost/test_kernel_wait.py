"""A ring sleeping in its own epoll set (hostfs.vhost.kernel_wait) holds no other task up."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import trio

from hostfs.vhost import kernel_wait
from hostfs.vhost.kernel_wait import KernelWait

ONE = (1).to_bytes(8, "little")
LATER_S = 0.05
"""How long a helper thread waits before it writes: the ring is asleep by then."""


@pytest.fixture
def eventfds() -> Iterator[list[int]]:
    fds = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(2)]
    yield fds
    for fd in fds:
        os.close(fd)


def write_later(*fds: int, delay: float = LATER_S) -> threading.Thread:
    """Another process's kicks, in this order, as a plain thread (no trio: it would wake
    trio itself)."""

    def write() -> None:
        for fd in fds:
            os.write(fd, ONE)

    timer = threading.Timer(delay, write)
    timer.start()
    return timer


async def test_a_kick_wakes_it(eventfds: list[int]) -> None:
    kick = eventfds[0]
    wait = KernelWait()
    timer = write_later(kick)
    assert wait.wait(kick)
    timer.join()
    wait.close()


async def test_io_of_another_task_hands_the_wait_to_trio(eventfds: list[int]) -> None:
    """Another task waits on its fd in trio: when that fd is ready, the wait ends and
    trio runs the other task, though a kick follows at once."""
    kick, other = eventfds
    wait = KernelWait()
    woke = trio.Event()

    async def other_task() -> None:
        await trio.lowlevel.wait_readable(other)
        woke.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        await trio.testing.wait_all_tasks_blocked()
        timer = write_later(other, kick)
        assert not wait.wait(kick)
        await woke.wait()
    timer.join()
    wait.close()


async def test_a_runnable_task_is_not_held_up(eventfds: list[int]) -> None:
    kick = eventfds[0]
    wait = KernelWait()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.lowlevel.checkpoint)
        assert not wait.wait(kick)  # the new task is runnable: no sleep at all
    wait.close()


async def test_a_ring_woken_in_the_same_pass_is_not_held_up(eventfds: list[int]) -> None:
    """Two rings kicked together run one after the other in one trio pass: the first must
    not sleep while the second is still to run (trio's event for it is already taken)."""
    kick = os.eventfd(0, os.EFD_NONBLOCK)
    wait = KernelWait()
    slept: list[bool] = []

    async def ring(fd: int) -> None:
        await trio.lowlevel.wait_readable(fd)
        if not slept:  # the first one to run: the other is still to run
            timer = write_later(kick)
            slept.append(wait.wait(kick))
            timer.join()

    try:
        async with trio.open_nursery() as nursery:
            for fd in eventfds:
                nursery.start_soon(ring, fd)
            await trio.testing.wait_all_tasks_blocked()
            for fd in eventfds:
                os.write(fd, ONE)
        assert slept == [False]  # not woken by the kick, 50 ms later
    finally:
        wait.close()
        os.close(kick)


async def test_a_deadline_ends_the_wait(
    eventfds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task sleeping in trio wakes on time: the wait lasts at most until its deadline,
    though a kick comes later."""
    monkeypatch.setattr(kernel_wait, "MAX_WAIT_S", 60.0)
    kick = eventfds[0]
    wait = KernelWait()
    timer = write_later(kick, delay=10 * LATER_S)
    with trio.move_on_after(LATER_S) as scope:
        assert not wait.wait(kick)  # it gave up at the deadline, before the kick
        await trio.sleep_forever()
    assert scope.cancelled_caught
    timer.join()
    wait.close()


async def test_a_replaced_kick_fd(eventfds: list[int]) -> None:
    """A new kick fd (SET_VRING_KICK again) is the one waited on, even on the old number."""
    kick = eventfds[0]
    wait = KernelWait()
    os.write(kick, ONE)
    assert wait.wait(kick)
    wait.close()
    os.close(kick)
    eventfds[0] = new = os.eventfd(0, os.EFD_NONBLOCK)
    timer = write_later(new)
    assert wait.wait(new)
    timer.join()
    wait.close()


def test_each_trio_run_has_its_own_loop(eventfds: list[int]) -> None:
    """The set follows the trio run it waits in (a later run's epoll may reuse the fd)."""
    kick = eventfds[0]
    wait = KernelWait()

    async def once() -> bool:
        # Trio's own tasks of a new run (its entry queue) are still to run at first.
        await trio.testing.wait_all_tasks_blocked()
        timer = write_later(kick)
        woke = wait.wait(kick)
        timer.join()
        os.read(kick, 8)
        return woke

    assert trio.run(once)
    assert trio.run(once)
    wait.close()
