"""The event loop's short poll for an expected reply (loop.py ``LoopRpc._poll``): it
reads the reply itself when nothing else wants to run, gives way at once when
another task does, and waits for the reply asleep, not reading in a loop."""

from __future__ import annotations

import select
import stat
import time
from collections.abc import AsyncIterator

import pytest
import trio

from hostfs.backends.nfs import loop
from hostfs.backends.nfs.libnfs_c import NfsStat64, lib
from hostfs.backends.nfs.loop import LoopRpc
from hostfs.backends.nfs.rpc3 import Request, getattr_request, root_filehandle
from tests.support.nfs_server import GaneshaServer


async def _sent(rpc_loop: LoopRpc) -> tuple[int, Request[NfsStat64]]:
    """A GETATTR3 of the export's root, sent on the loop's connection, not yet read."""
    context = await rpc_loop._connect(time.monotonic() + 10)
    rpc = lib.nfs_get_rpc_context(context.pointer)
    request: Request[NfsStat64] = getattr_request(root_filehandle(context))
    rpc_loop._pending.add(request)
    request.start(rpc)
    rpc_loop._service(rpc, select.POLLOUT)
    return rpc, request


@pytest.fixture
async def rpc_loop(nfs_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LoopRpc]:
    """A loop connection whose poll is long enough for any reply: an answer read must
    come from _poll's own reads, and a poll that stops stopped for another reason."""
    monkeypatch.setattr(loop, "REPLY_POLL_NS", 60 * 10**9)
    rpc_loop = LoopRpc(nfs_url.encode(), 10_000)
    yield rpc_loop
    rpc_loop.close()


async def test_poll_reads_the_reply_while_nothing_else_runs(rpc_loop: LoopRpc) -> None:
    rpc, request = await _sent(rpc_loop)
    assert rpc_loop._poll(rpc, request)
    assert request.done is not None
    assert stat.S_ISDIR(request.result().mode)  # the root's GETATTR3 reply


async def test_poll_gives_way_to_a_runnable_task(rpc_loop: LoopRpc) -> None:
    rpc, request = await _sent(rpc_loop)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0)  # runnable from now on
        assert not rpc_loop._poll(rpc, request)
        assert request.done is None  # no reply read: the poll stopped before any
    while request.done is None:  # the ordinary wait still gets it
        await rpc_loop._pump(rpc_loop._context, rpc, request)  # type: ignore[arg-type]
    request.result()


async def test_poll_sleeps_until_the_reply_can_be_read(
    nfs_url: str, nfs_server: GaneshaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the server paused no reply can come: the whole window is one wait in the
    kernel and the reads around it, where reading in a loop made thousands."""
    monkeypatch.setattr(loop, "REPLY_POLL_NS", 200 * 10**6)
    rpc_loop = LoopRpc(nfs_url.encode(), 10_000)
    try:
        await rpc_loop._connect(time.monotonic() + 10)
        reads: list[int] = []
        service = LoopRpc._service
        monkeypatch.setattr(rpc_loop, "_service", lambda *args: reads.append(service(*args)))
        nfs_server.pause()
        try:
            rpc, request = await _sent(rpc_loop)
            assert not rpc_loop._poll(rpc, request)
        finally:
            nfs_server.resume()
        assert request.done is None
        assert len(reads) <= 3  # the send, the wait's, perhaps one early wake-up
    finally:
        rpc_loop.close()
