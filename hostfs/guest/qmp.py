"""A QEMU Machine Protocol client over a unix socket, keeping a transcript.

QMP (QEMU's docs/interop/qmp-spec.rst): the server greets with ``{"QMP": ...}``;
the client must send ``qmp_capabilities`` first; then each ``{"execute": ...}``
gets one ``{"return": ...}`` or ``{"error": ...}``, and ``{"event": ...}`` lines
may come in between.  One JSON object per line.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import trio

from hostfs.guest.errors import GuestError

CONNECT_SECONDS = 10.0


class QmpError(GuestError):
    """QEMU answered a command with an error."""


class Qmp:
    """One QMP session; ``transcript`` holds every line, ``->`` sent and ``<-`` received."""

    def __init__(self, sock: trio.socket.SocketType, name: str) -> None:
        self._sock = sock
        self._buffer = b""
        self.name = name
        self.transcript: list[str] = []

    @classmethod
    async def connect(cls, path: Path, name: str, transcript: list[str] | None = None) -> Qmp:
        """Connect (QEMU may still be creating the socket) and leave capabilities mode."""
        with trio.fail_after(CONNECT_SECONDS):
            while True:
                sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    await sock.connect(str(path))
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    sock.close()
                    await trio.sleep(0.1)
        qmp = cls(sock, name)
        if transcript is not None:
            qmp.transcript = transcript
        await qmp._receive()  # the greeting
        await qmp.execute("qmp_capabilities")
        return qmp

    def close(self) -> None:
        self._sock.close()

    async def execute(self, command: str, **arguments: Any) -> Any:
        """The command's ``return`` value; QmpError for an ``error``."""
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        line = json.dumps(message)
        self.transcript.append(f"{self.name} -> {line}")
        data = memoryview(line.encode() + b"\r\n")
        while data:
            data = data[await self._sock.send(data) :]
        while True:
            reply = await self._receive()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise QmpError(f"{command}: {reply['error'].get('desc', reply['error'])}")

    async def _receive(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            data = await self._sock.recv(65536)
            if not data:
                raise GuestError(f"QMP ({self.name}): QEMU closed the connection")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        text = line.decode(errors="replace").strip()
        self.transcript.append(f"{self.name} <- {text}")
        value: dict[str, Any] = json.loads(text)
        return value
