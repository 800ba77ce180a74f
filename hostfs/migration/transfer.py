"""The device-state transfer of vhost-user.rst ("Migrating back-end state").

SET_DEVICE_STATE_FD hands the back-end one end of a pipe: for SAVE it writes its
state there and closes it, while the front-end reads to end of file; for LOAD
the front-end writes the state and closes its end, while the back-end reads.
Both sides run at once (a pipe holds 64 KiB), so the back-end's half runs in a
task of its own, started by SET_DEVICE_STATE_FD; CHECK_DEVICE_STATE waits for it
and reports whether the state was written, or read and applied, in full.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable

import trio

from hostfs.fuse.dispatcher import Dispatcher
from hostfs.migration import snapshot, state
from hostfs.migration.snapshot import MigrationError, OnError
from hostfs.vhost.messages import TransferDirection

log = logging.getLogger(__name__)

CHUNK = 1 << 16
"""Bytes per pipe read or write: the pipe's own capacity."""


class Transfer:
    """One SAVE or LOAD in progress; :meth:`result` is CHECK_DEVICE_STATE's answer."""

    def __init__(self) -> None:
        self._done = trio.Event()
        self.error: str | None = None
        self.resume: Callable[[], Awaitable[None]] | None = None
        """After a save: what the source does if its rings start again (the migration
        failed after all): take back the host locks it let go."""

    async def result(self) -> str | None:
        """None on success, else why it failed; waits for the transfer to end."""
        await self._done.wait()
        return self.error


class Migration:
    """The device's migration (hostfs.vhost.device.Migration) with one ``--migration-on-error``
    policy, for sessions that are ``hostfs.fuse.Dispatcher``s."""

    def __init__(self, policy: OnError) -> None:
        self.policy = policy

    def start(
        self, nursery: trio.Nursery, session: object, direction: TransferDirection, fd: int
    ) -> Transfer:
        if not isinstance(session, Dispatcher):
            os.close(fd)
            raise ValueError("this device's sessions cannot migrate")
        start = start_save if direction is TransferDirection.SAVE else start_load
        return start(nursery, session, fd, self.policy)


def start_save(nursery: trio.Nursery, session: Dispatcher, fd: int, policy: OnError) -> Transfer:
    """Write the session's state to ``fd`` (taken over, closed at the end)."""
    transfer = Transfer()
    stream = trio.lowlevel.FdStream(fd)

    async def save() -> None:
        try:
            saved = await snapshot.capture(session, policy)
            data = state.encode(saved)
            async with stream:
                for offset in range(0, len(data), CHUNK):
                    await stream.send_all(data[offset : offset + CHUNK])
            snapshot.release_host_locks(session.fs)
            transfer.resume = functools.partial(snapshot.retake_host_locks, session.fs, saved)
            log.info("migration: saved %d bytes of device state", len(data))
        except (MigrationError, state.StateError, OSError, trio.BrokenResourceError) as error:
            transfer.error = str(error) or type(error).__name__
            log.error("migration: saving the device state failed: %s", transfer.error)
        finally:
            await stream.aclose()
            transfer._done.set()

    nursery.start_soon(save)
    return transfer


def start_load(nursery: trio.Nursery, session: Dispatcher, fd: int, policy: OnError) -> Transfer:
    """Read a state from ``fd`` (taken over) to end of file and rebuild the session from it."""
    transfer = Transfer()
    stream = trio.lowlevel.FdStream(fd)

    async def load() -> None:
        try:
            chunks: list[bytes] = []
            size = 0
            async with stream:
                while data := await stream.receive_some(CHUNK):
                    size += len(data)
                    if size > state.MAX_STATE_SIZE:
                        # Closing makes the front-end's write fail: bounded work, no hang.
                        raise state.StateError(f"state longer than {state.MAX_STATE_SIZE} bytes")
                    chunks.append(data)
            await snapshot.restore(session, state.decode(b"".join(chunks)), policy)
            log.info("migration: loaded %d bytes of device state", size)
        except (MigrationError, state.StateError, OSError, trio.BrokenResourceError) as error:
            transfer.error = str(error) or type(error).__name__
            log.error("migration: loading the device state failed: %s", transfer.error)
        finally:
            await stream.aclose()
            transfer._done.set()

    nursery.start_soon(load)
    return transfer
