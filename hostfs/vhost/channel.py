"""vhost-user messages over a unix stream socket, with their SCM_RIGHTS fds.

Both ends use it: the device (``hostfs serve``) and the simulated front-end in
``hostfs.testing``.  Framing only; meaning lives in :mod:`hostfs.vhost.messages`.
"""

from __future__ import annotations

import array
import socket
from dataclasses import dataclass, field

import trio

from hostfs.vhost.memory import close_fds
from hostfs.vhost.messages import HEADER, MAX_FDS, Header, MessageError, decode_header

FD_SIZE = array.array("i").itemsize
FD_ANCILLARY_SIZE = socket.CMSG_SPACE(MAX_FDS * FD_SIZE)


class ChannelClosed(Exception):
    """The peer hung up (between messages, or in the middle of one)."""


@dataclass(slots=True)
class Message:
    header: Header
    payload: bytes
    fds: list[int] = field(default_factory=list)

    def take_fd(self) -> int | None:
        """Ownership of the next fd passes to the caller; fds nobody takes are closed."""
        return self.fds.pop(0) if self.fds else None

    def close_fds(self) -> None:
        close_fds(self.fds)
        self.fds = []


def _fds_from_ancillary(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % FD_SIZE
            fds.extend(array.array("i", data[:usable]))
    return fds


async def _receive_exactly(sock: trio.socket.SocketType, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await sock.recv(size - len(data))
        if not chunk:
            raise ChannelClosed("peer closed the socket in the middle of a message")
        data += chunk
    return bytes(data)


async def receive_message(sock: trio.socket.SocketType) -> Message:
    """One message.  :class:`MessageError` means the stream cannot be trusted any more."""
    header_bytes, ancdata, msg_flags, _ = await sock.recvmsg(HEADER.size, FD_ANCILLARY_SIZE)
    fds = _fds_from_ancillary(ancdata)
    try:
        if not header_bytes:
            raise ChannelClosed("peer closed the socket")
        if msg_flags & socket.MSG_CTRUNC:
            raise MessageError(f"more than {MAX_FDS} fds with one message")
        if len(header_bytes) < HEADER.size:
            header_bytes += await _receive_exactly(sock, HEADER.size - len(header_bytes))
        header = decode_header(header_bytes)
        payload = await _receive_exactly(sock, header.size)
    except BaseException:
        close_fds(fds)
        raise
    return Message(header, payload, fds)


async def send_message(
    sock: trio.socket.SocketType, data: bytes, fds: list[int] | None = None
) -> None:
    """Send a complete message; ``fds`` ride with its first byte."""
    view = memoryview(data)
    if fds:
        sent = await sock.sendmsg(
            [view], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        )
        view = view[sent:]
    while view:
        sent = await sock.send(view)
        view = view[sent:]
