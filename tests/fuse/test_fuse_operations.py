"""The dispatch table: every decoded opcode has a handler and the reverse, kinds fit."""

from __future__ import annotations

import inspect
import typing

import pytest

from hostfs.fuse import requests as rq
from hostfs.fuse.abi import Opcode
from hostfs.fuse.dispatcher import OPERATIONS, Dispatcher
from hostfs.fuse.operations import OperationTable, ReplyKind

UNSERVED = {
    Opcode.BMAP,
    Opcode.IOCTL,
    Opcode.POLL,
    Opcode.NOTIFY_REPLY,
    Opcode.SETUPMAPPING,
    Opcode.REMOVEMAPPING,
    Opcode.TMPFILE,
}
"""Answered ENOSYS: block maps and ioctls of a block device, polling, DAX windows, O_TMPFILE."""

PARAMETERS = {
    ReplyKind.NONE: ["self", "header", "request"],
    ReplyKind.BUFFER: ["self", "header", "request", "caller", "out", "limit"],
    ReplyKind.DATA: ["self", "header", "request", "caller", "writable"],
}


def test_every_opcode_is_served_or_knowingly_not() -> None:
    served = {operation.opcode for operation in OPERATIONS}
    assert served | UNSERVED == set(Opcode)
    assert not served & UNSERVED


def test_every_handler_is_in_the_table_and_every_entry_has_both() -> None:
    handlers = {
        function
        for name, function in vars(Dispatcher).items()
        if name.startswith("_on_") and inspect.isfunction(function)
    }
    registered = {operation.handler for operation in OPERATIONS}
    assert handlers == registered
    for operation in OPERATIONS:
        assert operation.decoder is getattr(rq, operation.decoder.__name__)


@pytest.mark.parametrize("operation", list(OPERATIONS), ids=lambda op: op.opcode.name)
def test_each_entry_is_consistent(operation) -> None:
    """The handler's signature is its reply kind's; the decoder makes a Request."""
    assert list(inspect.signature(operation.handler).parameters) == PARAMETERS[operation.reply]
    produced = typing.get_type_hints(operation.decoder)["return"]
    assert produced in typing.get_args(rq.Request)
    no_reply = {Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT}
    assert (operation.reply is ReplyKind.NONE) == (operation.opcode in no_reply)
    # A handler that answers nothing is a plain call; every other one may await.
    assert inspect.iscoroutinefunction(operation.handler) == (operation.reply is not ReplyKind.NONE)


def test_every_request_type_is_produced_by_a_decoder() -> None:
    produced = {typing.get_type_hints(op.decoder)["return"] for op in OPERATIONS}
    assert produced == set(typing.get_args(rq.Request))


def test_an_opcode_cannot_be_registered_twice() -> None:
    table = OperationTable()
    table.handles(Opcode.LOOKUP, rq.decode_lookup)(lambda: None)
    with pytest.raises(ValueError, match="LOOKUP"):
        table.handles(Opcode.LOOKUP, rq.decode_lookup)(lambda: None)
    assert table.get(Opcode.LOOKUP) is not None
    assert table.get(-1) is None and table.get(2**32 - 1) is None and table.get(Opcode.BMAP) is None
