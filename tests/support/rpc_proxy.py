"""A TCP proxy between an NFS client and server that can lose one reply.

ONC RPC over TCP frames each message as records (RFC 5531 §11: a 4-byte mark,
high bit = last fragment, then the length).  A call's XID is its first word and
its procedure the sixth (§9 ``call_body``).  :meth:`RpcProxy.lose_reply` arms the
proxy: the next call of one of the given procedures reaches the server, which
does it, but its reply is dropped and the client's connection closed, as when a
connection breaks between the server's work and its answer.  Every call seen is
recorded, so a test can check that the client sent it again with the same XID.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

NFSPROC3 = {
    "CREATE": 8,
    "MKDIR": 9,
    "SYMLINK": 10,
    "MKNOD": 11,
    "REMOVE": 12,
    "RMDIR": 13,
    "RENAME": 14,
    "LINK": 15,
}
"""Procedure numbers (RFC 1813 §3.3)."""


@dataclass(frozen=True)
class Call:
    connection: int
    xid: int
    procedure: int


def _read(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def _record(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """(the raw bytes, the message) of one whole record, or None at EOF."""
    raw, message = b"", b""
    while True:
        mark = _read(sock, 4)
        if mark is None:
            return None
        (word,) = struct.unpack(">I", mark)
        fragment = _read(sock, word & 0x7FFFFFFF)
        if fragment is None:
            return None
        raw += mark + fragment
        message += fragment
        if word & 0x80000000:
            return raw, message


class RpcProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.calls: list[Call] = []
        self.lost: list[Call] = []
        """Calls whose reply was dropped."""
        self._armed: set[int] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_reply(self, *procedures: str) -> None:
        """Drop the reply to the next call of one of ``procedures`` (names of NFSPROC3)."""
        with self._lock:
            self._armed = {NFSPROC3[name] for name in procedures}

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._connections += 1
                number = self._connections
            doomed: set[int] = set()
            threading.Thread(
                target=self._calls, args=(number, client, server, doomed), daemon=True
            ).start()
            threading.Thread(
                target=self._replies, args=(client, server, doomed), daemon=True
            ).start()

    def _calls(
        self, number: int, client: socket.socket, server: socket.socket, doomed: set[int]
    ) -> None:
        while (record := _record(client)) is not None:
            raw, message = record
            xid, procedure = (
                struct.unpack(">I", message[:4])[0],
                struct.unpack(">I", message[20:24])[0],
            )
            call = Call(number, xid, procedure)
            with self._lock:
                self.calls.append(call)
                if procedure in self._armed:
                    self._armed = set()
                    self.lost.append(call)
                    doomed.add(xid)
            try:
                server.sendall(raw)
            except OSError:
                break
        _close(client, server)

    def _replies(self, client: socket.socket, server: socket.socket, doomed: set[int]) -> None:
        while (record := _record(server)) is not None:
            raw, message = record
            if struct.unpack(">I", message[:4])[0] in doomed:
                break  # the server did it; the client never hears so
            try:
                client.sendall(raw)
            except OSError:
                break
        _close(client, server)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
