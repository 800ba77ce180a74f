"""The one dispatch table: opcode -> (decoder, handler, reply kind).

Adding an opcode is one entry here, made where its handler is defined
(``@OPERATIONS.handles(Opcode.X, decode_x)`` in :mod:`dispatcher`, the idiom of
``@handles(Request.X)`` in hostfs/vhost/device.py), plus its decoder and its
request type in :mod:`requests`.  Rust virtiofsd's server.rs likewise keeps one
``match`` from opcode to method.  An opcode without an entry is ENOSYS.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from hostfs.fuse.abi import MAX_OPCODE, Opcode
from hostfs.fuse.requests import Decoder


class ReplyKind(enum.Enum):
    """How a handler answers, which fixes its signature (``self`` is the Dispatcher):

    - NONE: ``(self, header, request)``, a plain function, not a coroutine (none of
      them waits, so none needs a coroutine or a cancel scope); no reply at all, not
      even an error (fuse.h: FORGET and BATCH_FORGET get none; an INTERRUPT's is
      optional);
    - BUFFER: ``(self, header, request, caller, out, limit) -> payload length``,
      the payload encoded at ``out[16:limit]``;
    - DATA: ``(self, header, request, caller, writable) -> reply length``; the
      core fills the reply buffers themselves (READ, zero-copy).
    """

    NONE = enum.auto()
    BUFFER = enum.auto()
    DATA = enum.auto()


class Operation(NamedTuple):
    opcode: Opcode
    decoder: Decoder
    handler: Callable[..., Any]
    reply: ReplyKind


class OperationTable:
    """Operations indexed by opcode; each opcode registered once."""

    def __init__(self) -> None:
        self._by_opcode: list[Operation | None] = [None] * (MAX_OPCODE + 1)

    def handles(
        self, opcode: Opcode, decoder: Decoder, reply: ReplyKind = ReplyKind.BUFFER
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register the decorated function as ``opcode``'s handler."""

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            if self._by_opcode[opcode] is not None:
                raise ValueError(f"{opcode.name} is registered twice")
            self._by_opcode[opcode] = Operation(opcode, decoder, handler, reply)
            return handler

        return register

    def get(self, opcode: int) -> Operation | None:
        """The operation for a guest-given opcode; None when hostfs has none."""
        return self._by_opcode[opcode] if 0 <= opcode <= MAX_OPCODE else None

    def __iter__(self) -> Iterator[Operation]:
        return (operation for operation in self._by_opcode if operation is not None)
