"""The core's lock tables against fcntl(2)/flock(2), and against the kernel itself.

The kernel comparisons use open file description locks (F_OFD_SETLK/GETLK):
two OFDs of one file conflict like two processes, so one process can play
several owners with ordinary file descriptors.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostfs.core.locks import OFFSET_MAX, FlockTable, LockTable
from hostfs.core.types import Lock

R, W, U = fcntl.F_RDLCK, fcntl.F_WRLCK, fcntl.F_UNLCK
KEY = 7
A, B, C, D = 101, 102, 103, 104
PROBE = 999
"""An owner that holds nothing: GETLK from it shows what everybody else holds."""


def layout(table: LockTable, upto: int = 120, owner: int = PROBE) -> list[tuple[int, int, int]]:
    """Every distinct lock a write GETLK by ``owner`` meets at offsets 0..upto."""
    seen: list[tuple[int, int, int]] = []
    for offset in range(upto + 1):
        found = table.getlk(KEY, owner, Lock(offset, offset, W))
        entry = (found.start, found.end, found.type)
        if found.type != U and entry not in seen:
            seen.append(entry)
    return seen


async def take(table: LockTable | FlockTable, owner: int, start: int, end: int, type_: int) -> None:
    await table.setlk(KEY, owner, Lock(start, end, type_, pid=owner), wait=False)


class TestPosixConflicts:
    async def test_read_locks_are_shared_and_write_locks_exclusive(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, R)
        await take(table, B, 5, 14, R)
        with pytest.raises(BlockingIOError):
            await take(table, B, 5, 5, W)
        with pytest.raises(BlockingIOError):
            await take(table, C, 9, 20, W)
        await take(table, C, 15, 20, W)

    async def test_getlk_reports_the_first_conflicting_lock_with_its_pid(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, R)
        await take(table, B, 20, OFFSET_MAX, W)
        assert table.getlk(KEY, C, Lock(0, 100, W)) == Lock(0, 9, R, A)
        assert table.getlk(KEY, C, Lock(0, 100, R)) == Lock(20, OFFSET_MAX, W, B)

    async def test_getlk_without_conflict_echoes_the_range_as_unlocked(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, W)
        assert table.getlk(KEY, A, Lock(0, 9, W)) == Lock(0, 9, U, 0)
        assert table.getlk(KEY, B, Lock(10, 19, W)) == Lock(10, 19, U, 0)
        assert table.getlk(KEY + 1, B, Lock(0, 9, W)) == Lock(0, 9, U, 0)

    @pytest.mark.parametrize(
        "lock", [Lock(5, 4, W), Lock(0, OFFSET_MAX + 1, W), Lock(-1, 3, R), Lock(0, 1, 42)]
    )
    async def test_malformed_requests_are_einval(self, lock: Lock) -> None:
        table = LockTable()
        with pytest.raises(OSError) as raised:
            await table.setlk(KEY, A, lock, wait=False)
        assert raised.value.errno == errno.EINVAL
        with pytest.raises(OSError):
            table.getlk(KEY, A, lock)

    def test_getlk_of_unlock_is_einval(self) -> None:
        with pytest.raises(OSError) as raised:
            LockTable().getlk(KEY, A, Lock(0, 1, U))
        assert raised.value.errno == errno.EINVAL

    async def test_table_full_is_enolck(self) -> None:
        table = LockTable(max_locks=2)
        await take(table, A, 0, 0, W)
        await take(table, B, 2, 2, W)
        with pytest.raises(OSError) as raised:
            await take(table, A, 4, 4, W)
        assert raised.value.errno == errno.ENOLCK
        await take(table, A, 1, 1, W)
        assert layout(table) == [(0, 1, W), (2, 2, W)]


class TestPosixSplitAndMerge:
    async def test_read_inside_own_write_splits_in_three(self) -> None:
        table = LockTable()
        await take(table, A, 0, 99, W)
        await take(table, A, 40, 59, R)
        assert layout(table) == [(0, 39, W), (40, 59, R), (60, 99, W)]

    async def test_unlock_of_a_middle_range_splits(self) -> None:
        table = LockTable()
        await take(table, A, 0, OFFSET_MAX, W)
        await take(table, A, 40, 59, U)
        assert layout(table) == [(0, 39, W), (60, OFFSET_MAX, W)]
        await take(table, B, 40, 59, W)

    async def test_adjacent_ranges_of_one_type_merge(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, R)
        await take(table, A, 20, 29, R)
        await take(table, A, 10, 19, R)
        assert layout(table) == [(0, 29, R)]
        await take(table, A, 30, 39, W)
        assert layout(table) == [(0, 29, R), (30, 39, W)]

    async def test_overlapping_same_type_merges_and_other_type_replaces(self) -> None:
        table = LockTable()
        await take(table, A, 0, 20, W)
        await take(table, A, 10, 30, W)
        assert layout(table) == [(0, 30, W)]
        await take(table, A, 25, 50, R)
        assert layout(table) == [(0, 24, W), (25, 50, R)]

    async def test_unlocking_what_is_not_held_is_fine(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, U)
        await take(table, A, 0, 9, R)
        await take(table, B, 0, 9, U)
        assert layout(table) == [(0, 9, R)]


class TestPosixUpgradeDowngrade:
    async def test_upgrade_denied_by_another_reader_keeps_the_read_lock(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, R)
        await take(table, B, 0, 9, R)
        with pytest.raises(BlockingIOError):
            await take(table, A, 0, 9, W)
        assert table.getlk(KEY, C, Lock(0, 9, W)).type == R
        table.release_owner(KEY, B)
        await take(table, A, 0, 9, W)
        assert layout(table) == [(0, 9, W)]

    async def test_downgrade_lets_readers_in(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, W)
        await take(table, A, 0, 9, R)
        await take(table, B, 0, 9, R)


class TestPosixWaiting:
    async def test_waiters_are_granted_in_order_when_locks_go(self) -> None:
        table = LockTable()
        await take(table, A, 0, 99, W)
        async with trio.open_nursery() as nursery:
            for owner, start, end, type_ in ((B, 0, 9, W), (C, 5, 5, W), (D, 50, 50, R)):
                nursery.start_soon(table.setlk, KEY, owner, Lock(start, end, type_, owner), True)
                await trio.testing.wait_all_tasks_blocked()
            assert layout(table) == [(0, 99, W)]
            table.release_owner(KEY, A)
            assert layout(table) == [(0, 9, W), (50, 50, R)]
            assert table.getlk(KEY, PROBE, Lock(0, 9, W)).pid == B
            await take(table, B, 0, 9, U)
            assert table.getlk(KEY, PROBE, Lock(0, 9, W)) == Lock(5, 5, W, C)

    async def test_waiter_granted_when_the_holder_downgrades(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, W)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(table.setlk, KEY, B, Lock(0, 9, R, B), True)
            await trio.testing.wait_all_tasks_blocked()
            await take(table, A, 0, 9, R)
        with pytest.raises(BlockingIOError):
            await take(table, C, 0, 0, W)
        await take(table, A, 0, 9, U)
        assert table.getlk(KEY, C, Lock(0, 9, W)) == Lock(0, 9, R, B)

    async def test_cancelled_waiter_leaves_nothing_behind(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, W)
        with trio.move_on_after(0.05) as scope:
            await table.setlk(KEY, B, Lock(0, 9, W, B), wait=True)
        assert scope.cancelled_caught
        await take(table, A, 0, 9, U)
        assert layout(table) == []
        await take(table, C, 0, 9, W)

    async def test_cancelled_waiter_does_not_hold_up_the_next(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, W)
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def cancellable() -> None:
                with scope:
                    await table.setlk(KEY, B, Lock(0, 9, W, B), wait=True)

            nursery.start_soon(cancellable)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(table.setlk, KEY, C, Lock(0, 9, W, C), True)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            table.release_owner(KEY, A)
        assert table.getlk(KEY, PROBE, Lock(0, 9, R)) == Lock(0, 9, W, C)

    async def test_simple_cycle_is_edeadlk(self) -> None:
        table = LockTable()
        await take(table, A, 0, 0, W)
        await table.setlk(KEY + 1, B, Lock(0, 0, W, B), wait=False)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(table.setlk, KEY + 1, A, Lock(0, 0, W, A), True)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(OSError) as raised:
                await table.setlk(KEY, B, Lock(0, 0, W, B), wait=True)
            assert raised.value.errno == errno.EDEADLK
            table.release_owner(KEY + 1, B)
        assert table.getlk(KEY + 1, B, Lock(0, 0, W)).pid == A

    async def test_waiting_on_a_waiter_is_no_deadlock(self) -> None:
        table = LockTable()
        await take(table, A, 0, 0, W)
        await take(table, B, 1, 1, W)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(table.setlk, KEY, A, Lock(1, 1, W, A), True)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(table.setlk, KEY, C, Lock(0, 1, R, C), True)
            await trio.testing.wait_all_tasks_blocked()
            table.release_owner(KEY, B)
            assert layout(table) == [(0, 1, W)]
            table.release_owner(KEY, A)
        assert layout(table) == [(0, 1, R)]

    async def test_release_owner_wakes_waiters_and_keeps_other_keys(self) -> None:
        table = LockTable()
        await take(table, A, 0, OFFSET_MAX, W)
        await table.setlk(KEY + 1, A, Lock(0, 0, W, A), wait=False)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(table.setlk, KEY, B, Lock(3, 3, R, B), True)
            await trio.testing.wait_all_tasks_blocked()
            table.release_owner(KEY, A)
        assert layout(table) == [(3, 3, R)]
        assert table.getlk(KEY + 1, B, Lock(0, 0, R)).pid == A

    async def test_session_end_fails_waiters_with_eintr(self) -> None:
        table = LockTable()
        await take(table, A, 0, 9, W)
        errors: list[int] = []

        async def waiter() -> None:
            with pytest.raises(OSError) as raised:
                await table.setlk(KEY, B, Lock(0, 9, W, B), wait=True)
            errors.append(raised.value.errno)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            table.release_all()
        assert errors == [errno.EINTR]
        assert layout(table) == []
        await take(table, C, 0, 9, W)


class TestFlock:
    async def test_shared_and_exclusive(self) -> None:
        table = FlockTable()
        await take(table, A, 0, OFFSET_MAX, R)
        await take(table, B, 0, OFFSET_MAX, R)
        with pytest.raises(BlockingIOError):
            await take(table, C, 0, OFFSET_MAX, W)
        table.release_owner(KEY, A)
        table.release_owner(KEY, B)
        await take(table, C, 0, OFFSET_MAX, W)

    async def test_conversion_alone_succeeds_both_ways(self) -> None:
        table = FlockTable()
        await take(table, A, 0, OFFSET_MAX, R)
        await take(table, A, 0, OFFSET_MAX, W)
        await take(table, A, 0, OFFSET_MAX, W)
        await take(table, A, 0, OFFSET_MAX, R)
        await take(table, B, 0, OFFSET_MAX, R)

    async def test_failed_conversion_has_dropped_the_old_lock(self) -> None:
        """flock(2): "the existing lock is first removed"."""
        table = FlockTable()
        await take(table, A, 0, OFFSET_MAX, R)
        await take(table, B, 0, OFFSET_MAX, R)
        with pytest.raises(BlockingIOError):
            await take(table, A, 0, OFFSET_MAX, W)
        await take(table, B, 0, OFFSET_MAX, W)

    async def test_waiters_in_order_and_cancellation(self) -> None:
        table = FlockTable()
        await take(table, A, 0, OFFSET_MAX, W)
        order: list[int] = []

        async def wait_for(owner: int, type_: int) -> None:
            await table.setlk(KEY, owner, Lock(0, OFFSET_MAX, type_), wait=True)
            order.append(owner)

        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def cancelled() -> None:
                with scope:
                    await wait_for(B, W)

            nursery.start_soon(cancelled)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(wait_for, C, W)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(wait_for, D, R)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            table.release_owner(KEY, A)
            await trio.testing.wait_all_tasks_blocked()
            assert order == [C]
            await take(table, C, 0, OFFSET_MAX, U)
        assert order == [C, D]

    async def test_table_full_is_enolck(self) -> None:
        table = FlockTable(max_locks=2)
        await take(table, A, 0, OFFSET_MAX, R)
        await take(table, B, 0, OFFSET_MAX, R)
        with pytest.raises(OSError) as raised:
            await take(table, C, 0, OFFSET_MAX, R)
        assert raised.value.errno == errno.ENOLCK
        await take(table, A, 0, OFFSET_MAX, U)  # a holder that goes makes room
        await take(table, C, 0, OFFSET_MAX, R)
        await take(table, C, 0, OFFSET_MAX, U)
        await take(table, B, 0, OFFSET_MAX, W)  # converting a held lock needs no room

    async def test_a_waiter_granted_into_a_full_table_gets_enolck(self) -> None:
        table = FlockTable(max_locks=1)
        await take(table, A, 0, OFFSET_MAX, W)
        async with trio.open_nursery() as nursery:
            errors: list[int] = []

            async def wait_for_lock() -> None:
                with pytest.raises(OSError) as raised:
                    await table.setlk(KEY, B, Lock(0, OFFSET_MAX, R, pid=B), wait=True)
                errors.append(raised.value.errno)

            nursery.start_soon(wait_for_lock)
            await trio.testing.wait_all_tasks_blocked()
            await take(table, A, 0, OFFSET_MAX, R)  # B could share, but no room
        assert errors == [errno.ENOLCK]

    async def test_unknown_type_is_einval_and_session_end_clears(self) -> None:
        table = FlockTable()
        with pytest.raises(OSError) as raised:
            await take(table, A, 0, OFFSET_MAX, 42)
        assert raised.value.errno == errno.EINVAL
        await take(table, A, 0, OFFSET_MAX, W)
        table.release_all()
        await take(table, B, 0, OFFSET_MAX, W)


_FLOCK = struct.Struct("hhqqi4x")
"""``struct flock`` on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid."""


def _flock(type_: int, start: int, end: int) -> bytes:
    length = 0 if end == OFFSET_MAX else end - start + 1
    return _FLOCK.pack(type_, os.SEEK_SET, start, length, 0)


def kernel_setlk(fd: int, type_: int, start: int, end: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(type_, start, end))
    except BlockingIOError:
        return False
    return True


def kernel_getlk(fd: int, type_: int, start: int, end: int) -> tuple[int, int, int]:
    found, _, start, length, _ = _FLOCK.unpack(
        fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(type_, start, end))
    )
    return found, start, OFFSET_MAX if length == 0 else start + length - 1


OWNERS = 3
LAST_BYTE = 12


@st.composite
def ranges(draw: st.DrawFn) -> tuple[int, int]:
    start = draw(st.integers(0, LAST_BYTE))
    return start, draw(st.one_of(st.integers(start, LAST_BYTE), st.just(OFFSET_MAX)))


posix_ops = st.lists(
    st.tuples(st.integers(0, OWNERS - 1), st.sampled_from([R, W, U]), ranges()),
    min_size=1,
    max_size=10,
)


@contextmanager
def open_descriptions(path: Path, count: int) -> Iterator[list[int]]:
    """``count`` open file descriptions of one file: ``count`` lock owners."""
    path.touch(exist_ok=True)
    fds = [os.open(path, os.O_RDWR) for _ in range(count)]
    try:
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=posix_ops)
async def test_posix_locks_answer_as_the_kernel_does(tmp_path: Path, ops) -> None:
    """Same grant/deny answers as the kernel, then the same GETLK answer from
    every owner at every offset (which shows splits and merges too)."""
    table = LockTable()
    with open_descriptions(tmp_path / "ofd", OWNERS) as fds:
        for owner, type_, (start, end) in ops:
            expected = kernel_setlk(fds[owner], type_, start, end)
            try:
                await table.setlk(KEY, owner, Lock(start, end, type_), wait=False)
                granted = True
            except BlockingIOError:
                granted = False
            assert granted == expected, (owner, type_, start, end)
            for prober, fd in enumerate(fds):
                for offset in range(LAST_BYTE + 2):
                    for probe in (R, W):
                        mine = table.getlk(KEY, prober, Lock(offset, offset, probe))
                        theirs = kernel_getlk(fd, probe, offset, offset)
                        assert (mine.type, mine.start, mine.end) == theirs, (prober, offset)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(st.tuples(st.integers(0, OWNERS - 1), st.sampled_from([R, W, U])), max_size=12))
async def test_flock_answers_as_the_kernel_does(tmp_path: Path, ops) -> None:
    table = FlockTable()
    operation = {R: fcntl.LOCK_SH, W: fcntl.LOCK_EX, U: fcntl.LOCK_UN}
    with open_descriptions(tmp_path / "flock", OWNERS) as fds:
        for owner, type_ in ops:
            try:
                fcntl.flock(fds[owner], operation[type_] | fcntl.LOCK_NB)
                expected = True
            except BlockingIOError:
                expected = False
            try:
                await table.setlk(KEY, owner, Lock(0, OFFSET_MAX, type_), wait=False)
                granted = True
            except BlockingIOError:
                granted = False
            assert granted == expected, (owner, type_)
