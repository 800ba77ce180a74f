"""Serve the host kernel's FUSE client on /dev/fuse with hostfs's own codec.

The kernel speaks the same wire protocol here as a guest's virtiofs driver,
so this runs the exact byte path of a VM at native speed.  A fixed set of
worker tasks each own one buffer big enough for any request; they take turns
reading /dev/fuse (one read is one request), serve the request in place and
write the reply from the same buffer (one write is one reply).
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

import trio

from hostfs.core.filesystem import FileSystem
from hostfs.devfuse.mount import mount, open_device, unmount
from hostfs.fuse.dispatcher import Dispatcher
from hostfs.fuse.init import SessionConfig
from hostfs.fuse.stats import log_on_signal

log = logging.getLogger(__name__)


class _Unmounted(Exception):
    """/dev/fuse said ENODEV: the file system was unmounted or the connection aborted."""


class DevFuseSession:
    """One mounted FUSE connection: the device fd and the workers that serve it."""

    def __init__(self, fd: int, dispatcher: Dispatcher, config: SessionConfig) -> None:
        self.fd = fd
        self.dispatcher = dispatcher
        self.config = config
        self._read_turn = trio.Lock()

    async def _read(self, buffer: memoryview) -> int:
        """Wait for and read one request; raise :class:`_Unmounted` at the end."""
        while True:
            try:
                return os.readv(self.fd, [buffer])
            except BlockingIOError:
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
        async with self._read_turn:
            size = await self._read(buffer)
        length = await self.dispatcher.handle([buffer[:size]], [buffer])
        if length:
            self._write(buffer[:length])

    async def _worker(self) -> None:
        buffer = memoryview(bytearray(self.config.buffer_size))
        while True:
            await self.serve_one(buffer)

    async def serve(self) -> None:
        """Serve until cancelled or unmounted; INIT must have been answered already."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(log_on_signal, self.dispatcher.stats)
                for _ in range(self.config.concurrency):
                    nursery.start_soon(self._worker)
        except* _Unmounted:
            log.info("FUSE connection ended (unmounted from outside)")


async def serve_mount(
    fs: FileSystem,
    mountpoint: str,
    *,
    config: SessionConfig | None = None,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Mount ``fs`` at ``mountpoint`` through /dev/fuse and serve it.

    ``task_status.started()`` is called once the kernel's INIT has been
    answered, so the mount is usable.  Cancel to unmount (the caller turns
    SIGTERM/SIGINT into cancellation); an unmount from outside ends it
    normally.  Either way ``fs.destroy()`` runs last.  ``fs.start()`` is the
    caller's, before this.
    """
    config = config or SessionConfig()
    fd = open_device()
    mounted = False
    unmounted_outside = False
    try:
        mount(fd, mountpoint)
        mounted = True
        session = DevFuseSession(fd, Dispatcher(fs, config), config)
        log.info("mounted hostfs on %s (/dev/fuse fd %d)", mountpoint, fd)
        first = memoryview(bytearray(config.buffer_size))
        try:
            while not session.dispatcher.initialized:
                await session.serve_one(first)
        except _Unmounted:
            unmounted_outside = True
            return
        del first
        task_status.started()
        await session.serve()
        unmounted_outside = True
    finally:
        with trio.CancelScope(shield=True):
            if mounted and not unmounted_outside:
                await trio.to_thread.run_sync(unmount, mountpoint)
            trio.lowlevel.notify_closing(fd)
            os.close(fd)
            if mounted:
                await fs.destroy()
