"""Serve the host kernel's FUSE client on /dev/fuse with hostfs's own codec.

The kernel speaks the same wire protocol here as a guest's virtiofs driver,
so this runs the exact byte path of a VM at native speed.  A fixed set of
worker tasks each own one buffer big enough for any request.  Each reads
/dev/fuse without waiting while requests are queued (one read is one
request; they take turns waiting when it is empty), serves the request in
place and writes the reply from the same buffer (one write is one reply).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import AsyncIterator

import trio

from hostfs import trio_loop
from hostfs.core.filesystem import FileSystem
from hostfs.devfuse.mount import DeviceBackings, mount, open_device, set_readahead, unmount
from hostfs.fuse.dispatcher import Dispatcher
from hostfs.fuse.init import SessionConfig
from hostfs.fuse.stats import log_on_signal
from hostfs.fuse.transport import Relay, Transport

log = logging.getLogger(__name__)


CHECKPOINT_EVERY = 32
"""Requests a worker serves back to back before it lets other tasks run (the io_uring
engine's workers too, hostfs.uring.session)."""

POLL_NS = 50_000
"""How long a worker keeps reading an empty /dev/fuse (the io_uring engine: its ring)
before it sleeps in epoll.

A caller doing one thing after another sends its next request within tens of
microseconds of our reply; sleeping in between costs a wake-up on every round
trip (an inter-processor interrupt and, on a VM, an exit).  50 us is the value
the kernel documents for socket busy polling (net.core.busy_read).  Polling
stops at once when another task is runnable, so it never delays other work.
"""


class _Unmounted(Exception):
    """/dev/fuse said ENODEV: the file system was unmounted or the connection aborted."""


class DevFuseSession:
    """One mounted FUSE connection: the device fd and the workers that serve it."""

    def __init__(self, fd: int, dispatcher: Dispatcher, config: SessionConfig) -> None:
        self.fd = fd
        self.dispatcher = dispatcher
        self.config = config
        self._wait_turn = trio.Lock()
        self._runnable = trio_loop.runnable_counter()
        self.ended = False
        """The kernel ended the connection (unmounted from outside, or aborted)."""
        self.transport = Transport("/dev/fuse", dispatcher)
        """The per-request plumbing every transport shares (hostfs.fuse.transport)."""

    async def _read(self, buffer: memoryview) -> int:
        """Read one request, waiting only when none is queued; raise :class:`_Unmounted`
        at the end.  Only one task may wait on the fd at a time: waiters take turns,
        after polling for a moment (see POLL_NS)."""
        poll_until = 0
        while True:
            try:
                return os.readv(self.fd, [buffer])
            except BlockingIOError:
                if not poll_until:
                    # Asked once per wait, not per read: no other task can become
                    # runnable while this one polls without yielding.
                    others = self._runnable()
                    poll_until = -1 if others else time.perf_counter_ns() + POLL_NS
                if time.perf_counter_ns() < poll_until:
                    continue
                async with self._wait_turn:
                    await trio.lowlevel.wait_readable(self.fd)
            except OSError as error:
                # ENOENT: the request was interrupted before we read it; read the next.
                if error.errno in (errno.ENOENT, errno.EINTR):
                    continue
                if error.errno == errno.ENODEV:
                    raise _Unmounted from None
                raise

    def _write(self, reply: memoryview) -> None:
        try:
            os.write(self.fd, reply)
        except OSError as error:
            # ENOENT: the kernel gave up on the request (interrupted); nothing to do.
            if error.errno == errno.ENODEV:
                raise _Unmounted from None
            if error.errno != errno.ENOENT:
                log.warning("writing a FUSE reply failed: %s", error)

    async def serve_one(self, buffer: memoryview) -> None:
        size = await self._read(buffer)
        length = await self.transport.serve([buffer[:size]], [buffer])
        if length:
            self._write(buffer[:length])

    async def _worker(self, nursery: trio.Nursery) -> None:
        """Serve requests back to back; when they keep coming without a wait, still
        checkpoint now and then so other workers, signals and cancellation get a turn.

        A request that parks (hostfs.fuse.parking) hands this worker's place to a
        new worker; this one ends with that request."""
        slot = Relay(lambda: nursery.start_soon(self._worker, nursery))
        self.transport.enter(slot)
        buffer = memoryview(bytearray(self.config.buffer_size))
        while not slot.lent:
            for _ in range(CHECKPOINT_EVERY):
                await self.serve_one(buffer)
                if slot.lent:
                    return
            await trio.lowlevel.checkpoint()

    async def serve_init(self) -> None:
        """Serve requests until INIT has agreed a protocol, or the connection ends."""
        first = memoryview(bytearray(self.config.buffer_size))
        try:
            while not self.dispatcher.initialized:
                await self.serve_one(first)
        except _Unmounted:
            self.ended = True

    async def serve(self) -> None:
        """Serve until cancelled or unmounted; INIT must have been answered already."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(log_on_signal, self.dispatcher.stats)
                for _ in range(self.config.concurrency):
                    nursery.start_soon(self._worker, nursery)
        except* _Unmounted:
            self.ended = True
            log.info("FUSE connection ended (unmounted from outside)")


@contextlib.asynccontextmanager
async def mounted(
    fs: FileSystem, mountpoint: str, config: SessionConfig
) -> AsyncIterator[DevFuseSession]:
    """Mount ``fs`` at ``mountpoint`` through /dev/fuse and answer the kernel's INIT.

    The session yielded is usable unless ``session.ended`` (unmounted before INIT).
    On exit: unmount unless the kernel ended the connection, close the device,
    then ``fs.destroy()``.  The io_uring engine mounts through this too: INIT
    always comes over /dev/fuse.
    """
    fd = open_device()
    is_mounted = False
    session: DevFuseSession | None = None
    try:
        mount(fd, mountpoint, allow_other=config.allow_other)
        is_mounted = True
        backings = DeviceBackings(fd) if config.passthrough else None
        session = DevFuseSession(fd, Dispatcher(fs, config, backings), config)
        log.info("mounted hostfs on %s (/dev/fuse fd %d)", mountpoint, fd)
        await session.serve_init()
        if config.readahead and not session.ended:
            why_not = set_readahead(mountpoint, config.readahead)
            if why_not:
                log.info("readahead left at the kernel's default: %s", why_not)
        yield session
    finally:
        with trio.CancelScope(shield=True):
            if is_mounted and not (session and session.ended):
                await trio.to_thread.run_sync(unmount, mountpoint)
            trio.lowlevel.notify_closing(fd)
            os.close(fd)
            if is_mounted:
                await fs.destroy()


async def serve_mount(
    fs: FileSystem,
    mountpoint: str,
    *,
    config: SessionConfig | None = None,
    task_status: trio.TaskStatus[DevFuseSession] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Mount ``fs`` at ``mountpoint`` through /dev/fuse and serve it (hostfs.fuse.engine).

    ``task_status.started(session)`` is called once the kernel's INIT has been
    answered, so the mount is usable.  Cancel to unmount (the caller turns
    SIGTERM/SIGINT into cancellation); an unmount from outside ends it
    normally.  Either way ``fs.destroy()`` runs last.  ``fs.start()`` is the
    caller's, before this.
    """
    async with mounted(fs, mountpoint, config or SessionConfig()) as session:
        if session.ended:
            return
        task_status.started(session)
        await session.serve()
