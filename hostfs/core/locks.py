"""POSIX record locks (fcntl(2)) and flock(2) locks, kept by the core itself.

virtiofsd answers ENOSYS to GETLK/SETLK/SETLKW.  Taking the host's own fcntl
locks would not do either: they belong to the host process, so every guest
process would be the same owner.  So the core keeps one table per lock kind,
keyed by FUSE nodeid, whose owners are the ``lock_owner`` ids FUSE sends
(``fuse_lk_in.owner``, ``fuse_flush_in.lock_owner``,
``fuse_release_in.lock_owner``).  Both tables do no I/O; trio is used only to
park a SETLKW until it can be granted.

FORGET drops nothing here: the kernel forgets only an inode no open file
refers to, and every lock (and parked SETLKW) is held through an open file,
so an honest FORGET finds none.  Nodeids are never reused, so what a lying
guest leaves behind cannot reach another file; it counts against MAX_LOCKS
and goes at session end, as the locks of a guest that never sends FLUSH.

Ranges are inclusive ``[start, end]`` as in ``struct fuse_file_lock``, with
``end == OFFSET_MAX`` meaning "to end of file".
"""

from __future__ import annotations

import errno
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import trio

from hostfs.core.types import Lock

OFFSET_MAX = 0x7FFF_FFFF_FFFF_FFFF
"""The kernel's ``OFFSET_MAX``: the ``end`` of a lock that runs to end of file."""

MAX_LOCKS = 100_000
"""Default bound on the locks one table holds (POSIX ranges, flock holders);
the guest is untrusted and each SETLK of a disjoint range, or flock of another
open file, costs memory.  Beyond it SETLK fails with ENOLCK ("too many segment
locks open", fcntl(2); "out of memory for allocating lock records", flock(2))."""

_LOCK_TYPES = (fcntl.F_RDLCK, fcntl.F_WRLCK, fcntl.F_UNLCK)


class _Range(NamedTuple):
    start: int
    end: int
    type: int
    pid: int


@dataclass(slots=True, eq=False)
class _Waiter:
    """A parked SETLKW; the task that frees the way grants it and sets ``event``."""

    owner: int
    request: _Range
    event: trio.Event = field(default_factory=trio.Event)
    error: OSError | None = None


def _error(code: int) -> OSError:
    return OSError(code, errno.errorcode[code])


def _conflict(a: _Range, b: _Range) -> bool:
    """Overlapping, and at least one is a write lock: read locks are shared (fcntl(2))."""
    return a.start <= b.end and b.start <= a.end and fcntl.F_WRLCK in (a.type, b.type)


class _WaitQueues:
    """FIFO queues of parked requests, per key.

    Waiters are granted by whoever frees the way, earliest first, inside that
    same call: the grant order does not depend on trio's scheduling order, and
    a woken waiter has nothing left to race for.
    """

    def __init__(self) -> None:
        self._queues: dict[int, list[_Waiter]] = {}

    def _grantable(self, key: int, waiter: _Waiter) -> bool:
        raise NotImplementedError

    def _grant(self, key: int, waiter: _Waiter) -> None:
        raise NotImplementedError

    async def _wait(self, key: int, waiter: _Waiter) -> None:
        """Park until granted.  Cancellation (FUSE INTERRUPT) only dequeues: a
        waiter holds nothing, so the table is as if the request never came."""
        self._queues.setdefault(key, []).append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if not waiter.event.is_set():
                self._dequeue(key, waiter)
            raise
        if waiter.error is not None:
            raise waiter.error

    def _dequeue(self, key: int, waiter: _Waiter) -> None:
        queue = self._queues[key]
        queue.remove(waiter)
        if not queue:
            del self._queues[key]

    def _wake(self, key: int) -> None:
        """Grant parked requests on ``key``, earliest first, until none fits.

        Rescans from the head after each grant: a grant that turns the
        waiter's own write lock into a read lock can let an earlier one in.
        """
        queue = self._queues.get(key, [])
        while waiter := next((w for w in queue if self._grantable(key, w)), None):
            self._dequeue(key, waiter)
            try:
                self._grant(key, waiter)
            except OSError as error:
                waiter.error = error
            waiter.event.set()

    def _abandon_all(self) -> None:
        """Fail every parked request with EINTR, as an interrupted wait."""
        for queue in self._queues.values():
            for waiter in queue:
                waiter.error = _error(errno.EINTR)
                waiter.event.set()
        self._queues.clear()


class LockTable(_WaitQueues):
    """POSIX record locks with the semantics of fcntl(2) F_GETLK/F_SETLK/F_SETLKW.

    Per key, each owner holds sorted, disjoint ranges; adjacent ranges of one
    type are merged, as the kernel does.  Owners are kept in the order they
    first took a lock, as in the kernel's per-inode list, so GETLK reports the
    same conflicting lock the kernel would.
    """

    def __init__(self, max_locks: int = MAX_LOCKS) -> None:
        super().__init__()
        self._held: dict[int, dict[int, list[_Range]]] = {}
        self._count = 0
        self._max_locks = max_locks

    def getlk(self, key: int, owner: int, lock: Lock) -> Lock:
        """F_GETLK: the first lock of another owner that would block ``lock``
        (with its holder's pid), else ``lock``'s range with type F_UNLCK."""
        request = validate(lock)
        if request.type == fcntl.F_UNLCK:
            raise _error(errno.EINVAL)
        for _, held in self._conflicts(key, owner, request):
            return Lock(held.start, held.end, held.type, held.pid)
        return Lock(request.start, request.end, fcntl.F_UNLCK, 0)

    async def setlk(self, key: int, owner: int, lock: Lock, wait: bool) -> None:
        """F_SETLK (``wait=False``: EAGAIN on conflict) or F_SETLKW (park until
        granted; EDEADLK if the owners it waits for wait, in turn, for it)."""
        request = validate(lock)
        if request.type == fcntl.F_UNLCK or not any(self._conflicts(key, owner, request)):
            self._replace(key, owner, request)
            self._wake(key)
            return
        if not wait:
            raise _error(errno.EAGAIN)
        if self._would_deadlock(key, owner, request):
            raise _error(errno.EDEADLK)
        await self._wait(key, _Waiter(owner, request))

    def held(self) -> Iterator[tuple[int, int, Lock]]:
        """(key, owner, lock) of every lock held, for migration."""
        for key, owners in self._held.items():
            for owner, ranges in owners.items():
                for held in ranges:
                    yield key, owner, Lock(held.start, held.end, held.type, held.pid)

    def release_owner(self, key: int, owner: int) -> None:
        """Drop every lock ``owner`` holds on ``key``: POSIX locks go when their
        owner closes any fd of the file (fcntl(2)), which FUSE reports as FLUSH."""
        self._replace(key, owner, _Range(0, OFFSET_MAX, fcntl.F_UNLCK, 0))
        self._wake(key)

    def release_all(self) -> None:
        """Session end (DESTROY, device reset): drop every lock and parked request."""
        self._held.clear()
        self._count = 0
        self._abandon_all()

    def _conflicts(self, key: int, owner: int, request: _Range) -> Iterator[tuple[int, _Range]]:
        """Locks of other owners that block ``request``, in kernel list order."""
        for other, ranges in self._held.get(key, {}).items():
            if other != owner:
                for held in ranges:
                    if held.start > request.end:
                        break
                    if _conflict(held, request):
                        yield other, held

    def _would_deadlock(self, key: int, owner: int, request: _Range) -> bool:
        """fcntl(2) EDEADLK: follow owners blocking ``request``, the owners their
        own parked requests wait for, and so on; reaching ``owner`` is a cycle."""
        parked: dict[int, list[tuple[int, _Waiter]]] = {}
        for parked_key, queue in self._queues.items():
            for waiter in queue:
                parked.setdefault(waiter.owner, []).append((parked_key, waiter))
        seen: set[int] = set()
        pending = [other for other, _ in self._conflicts(key, owner, request)]
        while pending:
            blocker = pending.pop()
            if blocker == owner:
                return True
            if blocker not in seen:
                seen.add(blocker)
                for parked_key, waiter in parked.get(blocker, []):
                    pending.extend(
                        other for other, _ in self._conflicts(parked_key, blocker, waiter.request)
                    )
        return False

    def _grantable(self, key: int, waiter: _Waiter) -> bool:
        return not any(self._conflicts(key, waiter.owner, waiter.request))

    def _grant(self, key: int, waiter: _Waiter) -> None:
        self._replace(key, waiter.owner, waiter.request)

    def _replace(self, key: int, owner: int, request: _Range) -> None:
        """Make ``owner``'s locks on ``request``'s range exactly ``request``: cut
        what overlaps (splitting a range in up to three), then merge adjacent
        ranges of one type.  F_UNLCK only cuts."""
        owners = self._held.get(key, {})
        old = owners.get(owner, [])
        kept: list[_Range] = []
        for held in old:
            if held.end < request.start or held.start > request.end:
                kept.append(held)
                continue
            if held.start < request.start:
                kept.append(held._replace(end=request.start - 1))
            if held.end > request.end:
                kept.append(held._replace(start=request.end + 1))
        if request.type != fcntl.F_UNLCK:
            kept.append(request)
        kept.sort()
        new: list[_Range] = []
        for held in kept:
            if new and new[-1].type == held.type and new[-1].end + 1 == held.start:
                new[-1] = new[-1]._replace(end=held.end)
            else:
                new.append(held)
        count = self._count - len(old) + len(new)
        if len(new) > len(old) and count > self._max_locks:
            raise _error(errno.ENOLCK)
        self._count = count
        if new:
            self._held.setdefault(key, owners)[owner] = new
        elif owner in owners:
            del owners[owner]
            if not owners:
                del self._held[key]


class FlockTable(_WaitQueues):
    """flock(2) locks: whole-file, shared or exclusive, owned by an open file.

    As in Linux, converting a lock is not atomic: the old lock is removed
    first, so a conversion that has to wait (or fails with EWOULDBLOCK) has
    given up the old lock.  There is no deadlock detection for flock.
    """

    def __init__(self, max_locks: int = MAX_LOCKS) -> None:
        super().__init__()
        self._held: dict[int, dict[int, int]] = {}
        self._count = 0
        self._max_locks = max_locks

    async def setlk(self, key: int, owner: int, lock: Lock, wait: bool) -> None:
        """SETLK/SETLKW with FUSE_LK_FLOCK: only ``lock.type`` matters (the
        kernel sends the whole range).  ``wait=False`` is LOCK_NB."""
        if lock.type not in _LOCK_TYPES:
            raise _error(errno.EINVAL)
        owners = self._held.get(key, {})
        if owners.get(owner) == lock.type:
            return
        self._drop(key, owner)
        waiter = _Waiter(owner, _Range(0, OFFSET_MAX, lock.type, lock.pid))
        blocked = lock.type != fcntl.F_UNLCK and not self._grantable(key, waiter)
        if lock.type != fcntl.F_UNLCK and not blocked:
            self._grant(key, waiter)
        self._drop_empty(key)
        self._wake(key)
        if blocked:
            if not wait:
                raise _error(errno.EWOULDBLOCK)
            await self._wait(key, waiter)

    def held(self) -> Iterator[tuple[int, int, int]]:
        """(key, owner, type) of every flock held, for migration."""
        for key, owners in self._held.items():
            for owner, lock_type in owners.items():
                yield key, owner, lock_type

    def release_owner(self, key: int, owner: int) -> None:
        """RELEASE with FUSE_RELEASE_FLOCK_UNLOCK: the open file is closed."""
        self._drop(key, owner)
        self._drop_empty(key)
        self._wake(key)

    def release_all(self) -> None:
        """Session end (DESTROY, device reset): drop every lock and parked request."""
        self._held.clear()
        self._count = 0
        self._abandon_all()

    def _drop(self, key: int, owner: int) -> None:
        if self._held.get(key, {}).pop(owner, None) is not None:
            self._count -= 1

    def _drop_empty(self, key: int) -> None:
        if key in self._held and not self._held[key]:
            del self._held[key]

    def _grantable(self, key: int, waiter: _Waiter) -> bool:
        return not any(
            other != waiter.owner and fcntl.F_WRLCK in (held, waiter.request.type)
            for other, held in self._held.get(key, {}).items()
        )

    def _grant(self, key: int, waiter: _Waiter) -> None:
        owners = self._held.setdefault(key, {})
        if waiter.owner not in owners:
            if self._count >= self._max_locks:
                self._drop_empty(key)
                raise _error(errno.ENOLCK)
            self._count += 1
        owners[waiter.owner] = waiter.request.type


def validate(lock: Lock) -> _Range:
    """The kernel checks these before sending; the guest's kernel is not trusted."""
    if lock.type not in _LOCK_TYPES or not 0 <= lock.start <= lock.end <= OFFSET_MAX:
        raise _error(errno.EINVAL)
    return _Range(lock.start, lock.end, lock.type, lock.pid)
