"""Listings the core keeps for backends without directory streams (NFS) are bounded
per session: the oldest are dropped, and a dropped stream lists again when read."""

from __future__ import annotations

import os

from hostfs.backends.local import LocalBackend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.snapshots import SNAPSHOT_ENTRIES
from tests.support.core import ROOT


class ListingBackend(LocalBackend):
    """The local backend as a backend that can only list a whole directory."""

    async def opendir(self, obj: int) -> None:
        return None


async def read(fs, fh, offset=0, count=None):
    got = []

    def add(name, ino, dtype, next_offset, entry):
        if count is not None and len(got) == count:
            return False
        got.append((name, next_offset))
        return True

    await fs.readdir(ROOT, ROOT_NODEID, fh, offset, add, False)
    return got


async def listing_fs(share: str) -> FileSystem:
    fs = FileSystem(ListingBackend.from_path(share))
    await fs.start()
    return fs


async def test_listings_held_across_streams_stay_under_the_limit(share):
    names = 3000
    for i in range(names):
        os.close(os.open(os.path.join(share, f"f{i:05d}"), os.O_CREAT))
    fs = await listing_fs(share)
    try:
        streams = 2 * SNAPSHOT_ENTRIES // names
        for _ in range(streams):
            fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
            assert len(await read(fs, fh, count=10)) == 10
        assert fs.snapshots.held <= SNAPSHOT_ENTRIES
        assert sum(d.entries is not None for d in fs.dirs._handles.values()) < streams
    finally:
        await fs.close()


async def test_a_dropped_listing_is_taken_again_and_the_stream_goes_on(share):
    for i in range(8):
        os.close(os.open(os.path.join(share, f"f{i}"), os.O_CREAT))
    fs = await listing_fs(share)
    try:
        fs.snapshots.limit = 10  # one listing: "." + ".." + 8 names
        first = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
        head = await read(fs, first, count=4)
        second = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
        await read(fs, second)
        assert fs.dirs.get(first, ROOT_NODEID).entries is None  # the oldest went
        assert fs.snapshots.held == 10
        tail = await read(fs, first, head[-1][1])
        assert sorted(name for name, _ in head + tail) == sorted(
            [b".", b".."] + [b"f%d" % i for i in range(8)]
        )
        await fs.releasedir(ROOT, ROOT_NODEID, second)
        assert fs.snapshots.held == 10  # first's listing, taken again
        await fs.releasedir(ROOT, ROOT_NODEID, first)
        assert fs.snapshots.held == 0
    finally:
        await fs.close()
