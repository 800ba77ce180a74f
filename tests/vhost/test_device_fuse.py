"""FUSE traffic from a simulated guest through a real vhost-user-fs device."""

from __future__ import annotations

import errno

import pytest
import trio

from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID, Opcode
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import FuseError, GuestFuseClient
from tests.vhost.conftest import Served


async def test_file_lifecycle(client: GuestFuseClient, served: Served) -> None:
    nodeid, fh = await client.create(ROOT_ID, b"a.txt")
    data = bytes(range(256)) * 40  # 10 KiB: three WRITE data descriptors
    assert await client.write(nodeid, fh, 0, data) == len(data)
    assert await client.read(nodeid, fh, 0, 16384) == data
    await client.release(nodeid, fh)
    assert (served.share / "a.txt").read_bytes() == data

    assert await client.lookup(ROOT_ID, b"a.txt") == nodeid
    await client.rename(ROOT_ID, b"a.txt", ROOT_ID, b"b.txt")
    dir_fh = await client.opendir(ROOT_ID)
    assert set(await client.readdir(ROOT_ID, dir_fh)) == {b".", b"..", b"b.txt"}
    await client.releasedir(ROOT_ID, dir_fh)
    await client.unlink(ROOT_ID, b"b.txt")
    with pytest.raises(FuseError) as error:
        await client.lookup(ROOT_ID, b"b.txt")
    assert error.value.errno == errno.ENOENT
    await client.forget(nodeid, 2)
    assert not (served.share / "b.txt").exists()


async def test_indirect_descriptors(guest: Frontend, served: Served) -> None:
    client = GuestFuseClient(guest, indirect=True)
    await client.init()
    nodeid, fh = await client.create(ROOT_ID, b"indirect")
    assert await client.write(nodeid, fh, 0, b"x" * 9000) == 9000
    assert await client.read(nodeid, fh, 0, 9000) == b"x" * 9000


async def test_request_queues_served_concurrently(
    client: GuestFuseClient, guest: Frontend, served: Served, monkeypatch
) -> None:
    """Both queues' WRITEs are in the FUSE handler at the same time (each first WRITE
    waits there until the other queue's arrives), and both files hold their data."""
    second = GuestFuseClient(guest, queue=2)
    second._unique = 1  # odd uniques: both clients share one FUSE session
    dispatcher = served.device.handler
    handle = dispatcher.handle
    waiting: dict[int, trio.Event] = {0: trio.Event(), 1: trio.Event()}

    async def meet_the_other_queue(readable, writable) -> int:
        _length, opcode, unique, *_ = abi.IN_HEADER.unpack_from(readable[0])
        if opcode == Opcode.WRITE:
            parity = unique % 2  # which client, so which queue
            waiting[parity].set()
            with trio.fail_after(5):  # the other queue is not served meanwhile: fail
                await waiting[1 - parity].wait()
        return await handle(readable, writable)

    monkeypatch.setattr(dispatcher, "handle", meet_the_other_queue)

    async def work(fuse: GuestFuseClient, name: bytes) -> None:
        nodeid, fh = await fuse.create(ROOT_ID, name)
        for i in range(20):
            await fuse.write(nodeid, fh, i * 100, name * 10)
        await fuse.release(nodeid, fh)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(work, client, b"queue1----")
        nursery.start_soon(work, second, b"queue2----")
    for name in (b"queue1----", b"queue2----"):
        assert (served.share / name.decode()).read_bytes() == name * 10 * 20
