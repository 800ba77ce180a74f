"""More SETLKW waiters on one virtqueue than the queue serves at once.

Each queue serves ``SessionConfig.concurrency`` requests at a time; a waiting
SETLKW lends its place (hostfs.fuse.parking), so the unlock that wakes every
waiter is still read and answered.
"""

from __future__ import annotations

import fcntl

import trio

from hostfs.core.filesystem import ROOT_NODEID
from hostfs.fuse import abi
from hostfs.fuse.abi import Opcode
from hostfs.fuse.init import SessionConfig

WAITERS = SessionConfig().concurrency + 8
WHOLE_FILE = (0, 0x7FFFFFFFFFFFFFFF)


def lock_args(fh: int, owner: int, lock_type: int) -> bytes:
    return abi.LK_IN.pack(fh, owner, *WHOLE_FILE, lock_type, 1, 0, 0)


async def test_waiters_beyond_the_queue_limit_all_get_the_lock(client):
    nodeid, fh = await client.create(ROOT_NODEID, b"contended")
    client.indirect = True  # one ring descriptor per request, as the driver does under load
    await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 1, fcntl.F_WRLCK))
    granted = []

    async def waiter(owner: int) -> None:
        await client.ok(Opcode.SETLKW, nodeid, lock_args(fh, owner, fcntl.F_WRLCK))
        granted.append(owner)
        await client.ok(Opcode.SETLK, nodeid, lock_args(fh, owner, fcntl.F_UNLCK))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for owner in range(100, 100 + WAITERS):
                nursery.start_soon(waiter, owner)
            await trio.sleep(0.5)  # every waiter is parked in the lock table
            assert granted == []
            await client.ok(Opcode.SETLK, nodeid, lock_args(fh, 1, fcntl.F_UNLCK))
    assert sorted(granted) == list(range(100, 100 + WAITERS))
