"""The vhost-user socket: wait for a front-end, feed its messages to the device.

vhost-user.rst, "Communication": the back-end listens on a unix socket (or
is handed one, as virtiofsd's ``--fd``) and serves one front-end connection
at a time.
"""

from __future__ import annotations

import grp
import logging
import os
import signal
import socket
import stat

import trio

from hostfs.fuse.ratelimit import RateLimitedLog
from hostfs.vhost.channel import ChannelClosed, receive_message, send_message
from hostfs.vhost.device import VhostUserFsDevice
from hostfs.vhost.messages import MessageError

logger = logging.getLogger(__name__)
guest_errors = RateLimitedLog(logger)
"""With --reconnect a front-end can connect and send garbage in a loop."""

LISTEN_BACKLOG = 1
"""One front-end at a time, as virtiofsd."""


class SocketSetupError(Exception):
    """The socket cannot be created or used; the message is one line for the user."""


async def listen_on_path(path: str, group: str | None = None) -> trio.socket.SocketType:
    """Bind and listen at ``path`` (:func:`bind_listener`), as a trio socket."""
    return trio.socket.from_stdlib_socket(bind_listener(path, group))


def bind_listener(path: str, group: str | None = None) -> socket.socket:
    """Bind and listen at ``path``; a stale socket left by a dead daemon is replaced.

    ``group`` (``--socket-group``, as virtiofsd) gets the socket file and read/write on it.
    Blocking and thread-free (trio's bind may start a worker thread, and unshare(2) with
    CLONE_NEWUSER refuses a process that has one): ``hostfs serve`` binds before its sandbox.
    """
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _bind_umask(group):
            sock.bind(path)
        if group is not None:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        sock.listen(LISTEN_BACKLOG)
    except (OSError, KeyError) as error:
        sock.close()
        raise SocketSetupError(f"cannot listen on {path}: {error}") from error
    return sock


class _bind_umask:
    """With a socket group, the socket is created ``rw-rw----`` so that group may connect."""

    def __init__(self, group: str | None) -> None:
        self._mask = 0o117 if group is not None else None
        self._old = 0

    def __enter__(self) -> None:
        if self._mask is not None:
            self._old = os.umask(self._mask)

    def __exit__(self, *exc_info: object) -> None:
        if self._mask is not None:
            os.umask(self._old)


def socket_from_fd(fd: int) -> tuple[trio.socket.SocketType, bool]:
    """``--fd``: an inherited unix socket, listening or already connected; True if listening."""
    try:
        raw = socket.socket(fileno=fd)
    except OSError as error:
        raise SocketSetupError(f"fd {fd} is not a socket: {error}") from error
    if raw.family != socket.AF_UNIX or raw.type != socket.SOCK_STREAM:
        raw.detach()
        raise SocketSetupError(f"fd {fd} is not a unix stream socket")
    listening = bool(raw.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    raw.setblocking(False)
    return trio.socket.from_stdlib_socket(raw), listening


class VhostUserServer:
    """Serves front-ends one after another; ``shutdown()`` ends it gracefully."""

    def __init__(self, device: VhostUserFsDevice, *, reconnect: bool = False) -> None:
        self.device = device
        self.reconnect = reconnect
        self._shutting_down = False
        self._accept_scope: trio.CancelScope | None = None
        self._connection_scope: trio.CancelScope | None = None

    def shutdown(self) -> None:
        """Take no more messages or connections; in-flight requests still finish.

        Only the waits for a connection and for a message are cancelled, never
        the rings: they stop as on a disconnect, parked lock waits answered EINTR.
        """
        self._shutting_down = True
        for scope in (self._accept_scope, self._connection_scope):
            if scope is not None:
                scope.cancel()

    async def serve_listener(self, listener: trio.socket.SocketType) -> None:
        while not self._shutting_down:
            sock = await self._accept(listener)
            if sock is None:
                return
            logger.info("front-end connected")
            await self.serve_connection(sock)
            if not self.reconnect:
                return

    async def _accept(self, listener: trio.socket.SocketType) -> trio.socket.SocketType | None:
        """The next front-end, or None on shutdown."""
        with trio.CancelScope() as self._accept_scope:
            sock, _ = await listener.accept()
            return sock
        return None

    async def serve_connection(self, sock: trio.socket.SocketType) -> None:
        """Until the front-end hangs up (or shutdown); then reset the device."""
        try:
            async with trio.open_nursery() as nursery:
                self.device.attach(nursery)
                with trio.CancelScope() as self._connection_scope:
                    if self._shutting_down:
                        self._connection_scope.cancel()
                    await self._message_loop(sock)
                self._connection_scope = None
                with trio.CancelScope(shield=True):
                    await self.device.disconnect()
        finally:
            sock.close()
        logger.info("front-end disconnected")

    async def _message_loop(self, sock: trio.socket.SocketType) -> None:
        while True:
            try:
                message = await receive_message(sock)
            except ChannelClosed:
                return
            except MessageError as error:
                guest_errors.log(
                    "unusable connections",
                    logging.ERROR,
                    "unusable message stream, closing the connection: %s",
                    error,
                )
                return
            except OSError as error:
                logger.error("vhost-user socket: %s", error)
                return
            reply = await self.device.handle_message(message)
            if reply is not None:
                try:
                    await send_message(sock, reply)
                except OSError as error:
                    logger.error("vhost-user socket: %s", error)
                    return


async def shutdown_on_signals(server: VhostUserServer) -> None:
    """SIGTERM / SIGINT: a graceful stop, as virtiofsd."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            logger.info("%s: shutting down", signal.Signals(signum).name)
            server.shutdown()
            return
