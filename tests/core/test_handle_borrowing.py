"""A handle's backend resources stay open while a request still uses them.

RELEASE (and session end) forget the fh at once, but the backend close waits
for the last request that borrowed the handle: otherwise a READ queued for a
worker thread could run on a closed fd whose number a new open has reused.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Sequence

import pytest
import trio
import trio.lowlevel
import trio.testing

from hostfs.backends.local import LocalBackend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from tests.support.core import ROOT, open_fds


class GatedReads(LocalBackend):
    """Reads wait for ``reads_may_go``; releases are recorded."""

    def __init__(self, root_fd: int) -> None:
        super().__init__(root_fd)
        self.reads_may_go = trio.Event()
        self.released: list[int] = []

    async def read(self, handle: int, offset: int, buffers: Sequence[memoryview]) -> int:
        await self.reads_may_go.wait()
        return await super().read(handle, offset, buffers)

    async def release(self, handle: int) -> None:
        await trio.lowlevel.checkpoint()  # a close that can be cancelled, as an NFS one
        self.released.append(handle)
        await super().release(handle)


@pytest.fixture
async def gated(share) -> AsyncIterator[FileSystem]:
    core = FileSystem(GatedReads(os.open(share, os.O_PATH | os.O_DIRECTORY)))
    await core.start()
    yield core
    await core.close()


async def _file(fs: FileSystem, name: bytes, data: bytes) -> tuple[int, int]:
    entry, opened = await fs.create(ROOT, ROOT_NODEID, name, 0o600, os.O_RDWR)
    await fs.write(ROOT, entry.nodeid, opened.fh, 0, [memoryview(data)])
    return entry.nodeid, opened.fh


async def _read_into(fs: FileSystem, nodeid: int, fh: int, result: list[bytes]) -> None:
    buffer = memoryview(bytearray(16))
    count = await fs.read(ROOT, nodeid, fh, 0, [buffer])
    result.append(bytes(buffer[:count]))


async def test_release_waits_for_a_read_under_way(gated):
    backend = gated.backend
    nodeid, fh = await _file(gated, b"a", b"own data")
    result: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_into, gated, nodeid, fh, result)
        await trio.testing.wait_all_tasks_blocked()
        await gated.release(ROOT, nodeid, fh)
        assert backend.released == []  # the read still holds the fd
        with pytest.raises(OSError) as raised:
            await gated.flush(ROOT, nodeid, fh, 0)
        assert raised.value.errno == errno.EBADF  # the fh is gone for new requests
        await _file(gated, b"b", b"other")  # would take the fd number if it were free
        backend.reads_may_go.set()
    assert result == [b"own data"]
    assert len(backend.released) == 1


async def test_a_cancelled_borrower_still_closes_the_released_handle(gated):
    nodeid, fh = await _file(gated, b"a", b"data")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_into, gated, nodeid, fh, [])
        await trio.testing.wait_all_tasks_blocked()
        await gated.release(ROOT, nodeid, fh)
        nursery.cancel_scope.cancel()
    assert len(gated.backend.released) == 1


async def test_session_end_closes_idle_handles_now_and_borrowed_ones_after(gated):
    backend = gated.backend
    busy_nodeid, busy_fh = await _file(gated, b"busy", b"busy data")
    await _file(gated, b"idle", b"idle data")
    result: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_into, gated, busy_nodeid, busy_fh, result)
        await trio.testing.wait_all_tasks_blocked()
        await gated.destroy()
        assert len(backend.released) == 1 and len(gated.files) == 0
        backend.reads_may_go.set()
    assert result == [b"busy data"]
    assert len(backend.released) == 2


async def test_worker_pool_read_never_sees_a_reused_fd(share):
    for name, data in (("a", b"own data"), ("b", b"other")):
        with open(os.path.join(share, name), "wb") as file:
            file.write(data)
    backend = LocalBackend.from_path(share, thread_pool_size=2)
    fs = FileSystem(backend)
    await fs.start()
    try:
        nodeid = (await fs.lookup(ROOT, ROOT_NODEID, b"a")).nodeid
        other = (await fs.lookup(ROOT, ROOT_NODEID, b"b")).nodeid
        fh = (await fs.open(ROOT, nodeid, os.O_RDONLY)).fh
        fds = open_fds()
        # Both workers busy: the READ waits for a thread, holding only its fh.
        limiter = backend._limiter
        assert limiter is not None
        borrowers = [object(), object()]
        for borrower in borrowers:
            await limiter.acquire_on_behalf_of(borrower)
        result: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_into, fs, nodeid, fh, result)
            await trio.testing.wait_all_tasks_blocked()
            await fs.release(ROOT, nodeid, fh)
            await fs.open(ROOT, other, os.O_RDONLY)  # takes the lowest free fd number
            for borrower in borrowers:
                limiter.release_on_behalf_of(borrower)
        assert result == [b"own data"]
        assert open_fds() == fds  # a's fd closed, b's opened
    finally:
        await fs.close()
