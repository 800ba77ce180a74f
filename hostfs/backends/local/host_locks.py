"""Guest locks as the host's own: OFD record locks and flock(2) on the shared files.

The core's lock tables (hostfs.core.locks) live in one daemon: a second hostfs
on the same directory, or a host process, never sees them.  Here every guest
lock owner gets an open file description of its own per file, and its locks
are the host kernel's: POSIX record locks as open-file-description locks
(``F_OFD_SETLK``/``F_OFD_GETLK``, fcntl(2)), which belong to the description
and not to the daemon process, so two owners of one daemon still conflict;
flock(2) locks as flock on a description per (file, owner).  Another hostfs,
a host process's fcntl/lockf (classic POSIX locks conflict with OFD locks) or
flock, and the guest then contend for the same locks.

The FUSE rules stay the core's: an owner's record locks on a file go at its
FLUSH (:meth:`HostLocks.release_posix`), a flock at the RELEASE that carries
FUSE_RELEASE_FLOCK_UNLOCK, everything at session end; closing a description
is what releases its locks, so the daemon's exit releases them all.

A conflicting lock is never waited for in the kernel: a blocking
``F_OFD_SETLKW`` in a worker thread could not be cancelled by trio (FUSE
INTERRUPT, a ring stop, SIGTERM), so SETLKW and a blocking flock retry the
non-blocking call with SQLite's own back-off, in the request's task, which
any cancel scope ends.  A host process blocked in ``F_SETLKW`` is woken by the
kernel at once and may overtake a polling guest: waiting is not FIFO across
the two.  OFD locks have no deadlock detection (fs/locks.c), so there is no
EDEADLK here either.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Callable, Iterator

import trio

from hostfs import procfd
from hostfs.backends.local.fd_budget import FdBudget
from hostfs.core.locks import OFFSET_MAX, validate
from hostfs.core.types import Lock

FLOCK = struct.Struct("hhqqi4x")
"""``struct flock`` (fcntl(2), x86-64 and aarch64): l_type, l_whence, l_start, l_len, l_pid."""

BACK_OFF = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05, 0.1)
"""Seconds between retries of a waiting lock, then the last one for good: SQLite's
busy handler (``sqliteDefaultBusyCallback``), which makes the same trade between a
prompt grant and the calls a long wait costs (10 a second once past 0.4 s)."""

MAX_WAITERS = 256
"""Waiting locks one daemon keeps retrying at once; beyond, SETLKW fails with
ENOLCK (fcntl(2): "too many segment locks open").  Each costs 10 non-blocking
calls a second once past its first 0.4 s: measured here (2 shared cores), 256
waiters take 7.8% of one CPU, 1024 take 29-33%, which a hostile guest could
otherwise hold for good.  Real lock users wait on few locks at once (SQLite
never blocks in the kernel: its busy handler retries F_SETLK itself)."""

_DESCRIPTION_FLAGS = os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
"""O_NONBLOCK: an open that would break a host process's lease fails at once
(EWOULDBLOCK, fcntl(2) "Leases") instead of blocking the event loop for up to
``lease-break-time``; it changes nothing else for a description used only to lock."""

_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)
_READ_MODES = (os.O_RDONLY, os.O_RDWR)
_BUSY = (errno.EAGAIN, errno.EACCES)
"""What F_OFD_SETLK (and F_SETLK) answer for a conflict (fcntl(2))."""


def _error(code: int, why: str = "") -> OSError:
    return OSError(code, why or os.strerror(code))


def _to_flock(lock_type: int, start: int, end: int) -> bytes:
    """fuse_file_lock's inclusive range as struct flock's start and length (0: to EOF).
    l_pid must be 0 for OFD locks (fcntl(2))."""
    length = 0 if end == OFFSET_MAX else end - start + 1
    return FLOCK.pack(lock_type, os.SEEK_SET, start, length, 0)


def _from_flock(data: bytes) -> Lock:
    l_type, _, start, length, pid = FLOCK.unpack(data)
    end = OFFSET_MAX if length == 0 else start + length - 1
    return Lock(start, end, l_type, pid)


def _delays() -> Iterator[float]:
    yield from BACK_OFF
    while True:
        yield BACK_OFF[-1]


class _Description:
    """One owner's open file description of one file, and who is using it now."""

    __slots__ = ("fd", "pid", "released", "users")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pid = 0
        """The guest pid of the owner's last lock, for GETLK replies of other owners."""
        self.users = 0
        """Waits retrying on ``fd``: it is closed only once they are done."""
        self.released: int | None = None
        """The errno a wait still retrying gets once the owner's locks were released."""


class _Descriptions:
    """(file, owner) -> description, for one lock kind; each description counts in the fd budget."""

    def __init__(self, fds: FdBudget) -> None:
        self._fds = fds
        self._by_key: dict[int, dict[int, _Description]] = {}

    def get(self, key: int, owner: int) -> _Description | None:
        return self._by_key.get(key, {}).get(owner)

    def others(self, key: int, owner: int) -> Iterator[_Description]:
        for other, description in self._by_key.get(key, {}).items():
            if other != owner:
                yield description

    def open(self, key: int, owner: int, handle: int, modes: tuple[int, ...]) -> _Description:
        """The owner's description, opened now through the guest's own handle (so the
        very inode it has open) with the first of ``modes`` the host allows."""
        description = self.get(key, owner)
        if description is None:
            description = _Description(self.open_fd(handle, modes))
            self._by_key.setdefault(key, {})[owner] = description
        return description

    def open_fd(self, handle: int, modes: tuple[int, ...]) -> int:
        for mode in modes[:-1]:
            try:
                return self._open(handle, mode)
            except (PermissionError, BlockingIOError):
                continue  # EACCES/EPERM, or a lease a write open would break
            except OSError as error:
                if error.errno not in (errno.EROFS, errno.ETXTBSY):
                    raise
        return self._open(handle, modes[-1])

    def _open(self, handle: int, mode: int) -> int:
        try:
            return self._fds.open(os.open, procfd.fd_path(handle), mode | _DESCRIPTION_FLAGS)
        except OSError as error:
            if error.errno == errno.ENFILE:
                raise _error(errno.ENOLCK, "the share's fd budget is spent") from None
            raise

    def close_fd(self, fd: int) -> None:
        self._fds.close(fd)

    def release(self, key: int, owner: int, unlock: Callable[[int], None], code: int) -> None:
        """Drop the owner's locks on ``key`` now; close the description once no wait uses it."""
        owners = self._by_key.get(key)
        if owners is None or owner not in owners:
            return
        description = owners.pop(owner)
        if not owners:
            del self._by_key[key]
        self._retire(description, unlock, code)

    def items(self) -> Iterator[tuple[int, int, _Description]]:
        for key, owners in self._by_key.items():
            for owner, description in owners.items():
                yield key, owner, description

    def release_all(self, unlock: Callable[[int], None]) -> None:
        for owners in self._by_key.values():
            for description in owners.values():
                self._retire(description, unlock, errno.EINTR)
        self._by_key.clear()

    def _retire(self, description: _Description, unlock: Callable[[int], None], code: int) -> None:
        description.released = code
        if description.users:
            unlock(description.fd)  # a wait still holds the fd: drop the locks now
        else:
            self._fds.close(description.fd)  # the last close releases its locks

    def finish_wait(self, description: _Description) -> None:
        description.users -= 1
        if description.released is not None and not description.users:
            self._fds.close(description.fd)


def _check_access(handle: int, lock_type: int) -> None:
    """fcntl(2): EBADF for a read lock on a file not open for reading, or a write lock
    on one not open for writing (the guest's kernel checks too; it is not trusted)."""
    mode = fcntl.fcntl(handle, fcntl.F_GETFL) & os.O_ACCMODE
    if lock_type == fcntl.F_WRLCK and mode not in _WRITE_MODES:
        raise _error(errno.EBADF, "a write lock needs a file open for writing")
    if lock_type == fcntl.F_RDLCK and mode not in _READ_MODES:
        raise _error(errno.EBADF, "a read lock needs a file open for reading")


def _handle_mode(handle: int) -> int:
    return fcntl.fcntl(handle, fcntl.F_GETFL) & os.O_ACCMODE


_FDINFO_TYPES = {b"READ": fcntl.F_RDLCK, b"WRITE": fcntl.F_WRLCK}


def fdinfo_locks(text: bytes) -> list[tuple[str, Lock]]:
    """The ``lock:`` lines of an fdinfo file: ``lock:\tN: OFDLCK ADVISORY  WRITE -1
    fe:00:123 10 EOF`` (fs/locks.c ``lock_get_status``) as (kind, lock)."""
    found = []
    for line in text.splitlines():
        if not line.startswith(b"lock:"):
            continue
        fields = line.split()
        if len(fields) < 8 or fields[2] == b"->" or fields[4] not in _FDINFO_TYPES:
            continue  # a waiter ("->"), or a lease
        start = int(fields[-2])
        end = OFFSET_MAX if fields[-1] == b"EOF" else int(fields[-1])
        found.append((fields[2].decode(), Lock(start, end, _FDINFO_TYPES[fields[4]])))
    return found


def _read_fdinfo(fd: int) -> bytes:
    info = os.open(procfd.fdinfo_path(fd), os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(info, 1 << 16)
    finally:
        os.close(info)


def _unlock_records(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _to_flock(fcntl.F_UNLCK, 0, OFFSET_MAX))


def _unlock_flock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)


class HostLocks:
    """The local backend's locks, in the host kernel; the core keys them by nodeid.

    A record-lock description is opened read-write where the host allows it,
    so that one owner's read and write locks share it whichever of its files
    asked (the guest handle's own mode is checked first, as fcntl(2) says);
    where not (a file the daemon may not write, a read-only file system, a
    running executable, a lease) it takes the handle's mode.  While it is
    open, executing that file on the host fails with ETXTBSY, as it would
    while any process has it open for writing.
    """

    def __init__(self, fds: FdBudget, max_waiters: int = MAX_WAITERS) -> None:
        self._records = _Descriptions(fds)
        self._flocks = _Descriptions(fds)
        self._max_waiters = max_waiters
        self.waiting = 0
        """Waiting locks being retried now (bounded by ``max_waiters``)."""

    # -- POSIX record locks -------------------------------------------------

    def getlk(self, key: int, handle: int, owner: int, lock: Lock) -> Lock:
        """F_GETLK through the owner's description (its own locks never conflict),
        or a fresh one when it holds none.

        The holder's pid: the host reports -1 for an OFD lock (fcntl(2)), so for
        a lock of another owner of this daemon it is that owner's guest pid, as
        the core's own table reports; for a classic lock of a host process it is
        that pid as the daemon's pid namespace sees it (0 under the sandbox,
        which hides host processes); for a lock of another hostfs, 0.  The guest
        kernel maps what it gets into its own pid namespace (fuse's
        convert_fuse_file_lock), where a host pid means nothing, so a VM's
        GETLK says only *that* a lock is held elsewhere, and where.
        """
        request = validate(lock)
        if request.type == fcntl.F_UNLCK:
            raise _error(errno.EINVAL)
        query = _to_flock(request.type, request.start, request.end)
        description = self._records.get(key, owner)
        if description is not None:
            found = _from_flock(fcntl.fcntl(description.fd, fcntl.F_OFD_GETLK, query))
        else:
            fd = self._records.open_fd(handle, (_handle_mode(handle),))
            try:
                found = _from_flock(fcntl.fcntl(fd, fcntl.F_OFD_GETLK, query))
            finally:
                self._records.close_fd(fd)
        if found.type == fcntl.F_UNLCK:
            return Lock(request.start, request.end, fcntl.F_UNLCK, 0)
        pid = found.pid if found.pid > 0 else self._holder_pid(key, owner, found)
        return Lock(found.start, found.end, found.type, pid)

    def _holder_pid(self, key: int, owner: int, found: Lock) -> int:
        """The guest pid of the owner of this daemon whose description holds ``found``:
        the one that, asked the same, does not see ``found`` (its own locks never
        conflict).  0 when none does: the lock is another daemon's."""
        probe = _to_flock(fcntl.F_WRLCK, found.start, found.end)
        for description in self._records.others(key, owner):
            if description.released is not None:
                continue
            seen = _from_flock(fcntl.fcntl(description.fd, fcntl.F_OFD_GETLK, probe))
            if (seen.start, seen.end, seen.type) != (found.start, found.end, found.type):
                return description.pid
        return 0

    async def setlk(self, key: int, handle: int, owner: int, lock: Lock, wait: bool) -> None:
        """F_SETLK / F_SETLKW for ``owner`` on ``key``: EAGAIN on a conflict unless ``wait``."""
        request = validate(lock)
        if request.type == fcntl.F_UNLCK:
            description = self._records.get(key, owner)
            if description is not None:
                fcntl.fcntl(
                    description.fd,
                    fcntl.F_OFD_SETLK,
                    _to_flock(fcntl.F_UNLCK, request.start, request.end),
                )
            return
        _check_access(handle, request.type)
        modes = (os.O_RDWR, _handle_mode(handle))
        description = self._records.open(key, owner, handle, modes)
        arg = _to_flock(request.type, request.start, request.end)

        def attempt() -> bool:
            try:
                fcntl.fcntl(description.fd, fcntl.F_OFD_SETLK, arg)
            except OSError as error:
                if error.errno in _BUSY:
                    return False
                if error.errno == errno.EBADF:
                    # The description was opened in the mode of an earlier,
                    # read-only handle of this owner, and could not be read-write.
                    raise _error(
                        errno.EBADF, "the owner's host file is not open for writing"
                    ) from None
                raise
            description.pid = request.pid
            return True

        if not attempt():
            if not wait:
                raise _error(errno.EAGAIN)
            await self._wait(self._records, description, attempt)

    def release_posix(self, key: int, owner: int) -> None:
        """FLUSH: close(2) of any fd of the file drops the owner's record locks (fcntl(2));
        a SETLKW of that owner still waiting fails with EBADF, as a Linux F_SETLKW
        that races a close (fs/locks.c fcntl_setlk)."""
        self._records.release(key, owner, _unlock_records, errno.EBADF)

    # -- flock(2) -------------------------------------------------------------

    async def flock(self, key: int, handle: int, owner: int, lock: Lock, wait: bool) -> None:
        """SETLK/SETLKW with FUSE_LK_FLOCK: LOCK_SH, LOCK_EX or LOCK_UN on the owner's
        description (``wait=False`` is LOCK_NB: EWOULDBLOCK on a conflict).  Converting
        a held lock is the host's: not atomic (flock(2))."""
        if lock.type not in (fcntl.F_RDLCK, fcntl.F_WRLCK, fcntl.F_UNLCK):
            raise _error(errno.EINVAL)
        if lock.type == fcntl.F_UNLCK:
            description = self._flocks.get(key, owner)
            if description is not None:
                fcntl.flock(description.fd, fcntl.LOCK_UN)
            return
        # flock(2) needs no access mode: the handle's own always opens.
        description = self._flocks.open(key, owner, handle, (_handle_mode(handle),))
        operation = (fcntl.LOCK_SH if lock.type == fcntl.F_RDLCK else fcntl.LOCK_EX) | fcntl.LOCK_NB

        def attempt() -> bool:
            try:
                fcntl.flock(description.fd, operation)
            except BlockingIOError:
                return False
            return True

        if not attempt():
            if not wait:
                raise _error(errno.EWOULDBLOCK)
            await self._wait(self._flocks, description, attempt)

    def release_flock(self, key: int, owner: int) -> None:
        """RELEASE with FUSE_RELEASE_FLOCK_UNLOCK: the guest's open file is closed."""
        self._flocks.release(key, owner, _unlock_flock, errno.EBADF)

    # -- both -------------------------------------------------------------------

    def release_all(self) -> None:
        """Session end (DESTROY, device reset): every description goes, and its locks;
        a wait still retrying fails with EINTR."""
        self._records.release_all(_unlock_records)
        self._flocks.release_all(_unlock_flock)

    def held(self) -> tuple[list[tuple[int, int, Lock]], list[tuple[int, int, int]]]:
        """Every lock the guest's owners hold here, for migration: (key, owner, lock) record
        locks and (key, owner, type) flocks, as the host kernel lists each description's
        own locks in ``/proc/self/fdinfo`` (fs/locks.c ``show_fd_locks``)."""
        records = []
        for key, owner, description in self._records.items():
            for kind, lock in fdinfo_locks(_read_fdinfo(description.fd)):
                if kind == "OFDLCK":
                    records.append(
                        (key, owner, Lock(lock.start, lock.end, lock.type, description.pid))
                    )
        flocks = []
        for key, owner, description in self._flocks.items():
            for kind, lock in fdinfo_locks(_read_fdinfo(description.fd)):
                if kind == "FLOCK":
                    flocks.append((key, owner, lock.type))
        return records, flocks

    async def _wait(
        self, kind: _Descriptions, description: _Description, attempt: Callable[[], bool]
    ) -> None:
        """Retry ``attempt`` with back-off until it is granted; cancellable at every sleep."""
        if self.waiting >= self._max_waiters:
            raise _error(errno.ENOLCK, f"{self.waiting} lock requests are waiting already")
        self.waiting += 1
        description.users += 1
        try:
            for delay in _delays():
                await trio.sleep(delay)
                if description.released is not None:
                    raise _error(description.released, "the owner's locks were released")
                if attempt():
                    return
        finally:
            self.waiting -= 1
            kind.finish_wait(description)
