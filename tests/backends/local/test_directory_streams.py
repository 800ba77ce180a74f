"""Directory streams of the local backend: getdents64 offsets, one fd per stream,
nothing else held between READDIRs however many streams a guest opens."""

from __future__ import annotations

import errno
import os
import tracemalloc

import pytest

from hostfs.core.filesystem import ROOT_NODEID
from tests.support.core import ROOT, open_fds

NAMES = 3000
STREAMS = 100


def fill(share: str, count: int) -> None:
    for i in range(count):
        os.close(os.open(os.path.join(share, f"entry-with-a-longish-name-{i:05d}"), os.O_CREAT))


async def read_page(fs, fh, offset=0, plus=False, room=4096):
    """One READDIR of ``room`` bytes (a fuse_dirent is 24 bytes + the name, 8-aligned)."""
    got = []

    def add(name, ino, dtype, next_offset, entry):
        nonlocal room
        size = (24 + len(name) + 7) & ~7
        if size > room:
            return False
        room -= size
        got.append((name, next_offset, entry))
        return True

    await fs.readdir(ROOT, ROOT_NODEID, fh, offset, add, plus)
    return got


async def read_all(fs, fh, plus=False, room=4096):
    names, offset = [], 0
    while page := await read_page(fs, fh, offset, plus, room):
        names += [name for name, _, _ in page]
        offset = page[-1][1]
    return names


async def test_many_streams_on_a_large_directory_hold_no_listing(fs, share):
    fill(share, NAMES)
    fds = open_fds()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        handles = [(await fs.opendir(ROOT, ROOT_NODEID, 0)).fh for _ in range(STREAMS)]
        for fh in handles:
            assert len(await read_page(fs, fh)) > 50
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A listing of 3000 names held per stream would be ~500 KiB each, 50 MiB in all.
    assert held < 1 << 20, f"{STREAMS} streams hold {held} bytes"
    assert open_fds() == fds + STREAMS  # one directory fd per stream
    for fh in handles:
        await fs.releasedir(ROOT, ROOT_NODEID, fh)
    assert open_fds() == fds


async def test_offsets_are_the_hosts_d_off_and_resume_without_seeking(fs, share, monkeypatch):
    fill(share, NAMES)
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    seeks = []
    real_lseek = os.lseek
    monkeypatch.setattr(
        os, "lseek", lambda fd, pos, how: seeks.append(pos) or real_lseek(fd, pos, how)
    )
    names = [name for name, _, _ in await read_page(fs, fh, room=1 << 20)]
    assert sorted(names) == sorted([*os.listdir(os.fsencode(share)), b".", b".."])
    assert seeks == []  # every entry read was sent: each READDIR starts where the fd stands
    # In page-sized replies the entries read but not sent are read again from the
    # last one sent: every seek goes to an offset the stream gave.
    given = set()
    offset = 0
    while page := await read_page(fs, fh, offset):
        given.update(next_offset for _, next_offset, _ in page)
        offset = page[-1][1]
    assert seeks[0] == 0 and set(seeks[1:]) <= given
    seeks.clear()
    # The offsets are getdents64's d_off: the host's own listing resumes at them.
    first = await read_page(fs, fh, room=200)
    fd = os.open(share, os.O_RDONLY | os.O_DIRECTORY)
    try:
        real_lseek(fd, first[-1][1], os.SEEK_SET)
        rest = os.listdir(fd)
    finally:
        os.close(fd)
    resumed = await read_page(fs, fh, first[-1][1], room=1 << 20)
    assert [os.fsdecode(name) for name, _, _ in resumed] == rest
    assert seeks == [0, first[-1][1]]  # a rewind and a jump back, nothing more


async def test_dots_come_from_the_host_and_carry_no_lookup(fs, share):
    fill(share, 3)
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    page = await read_page(fs, fh, plus=True)
    entries = {name: entry for name, _, entry in page}
    assert entries[b"."] is None and entries[b".."] is None
    assert all(entries[name] is not None for name in entries if name not in (b".", b".."))
    assert len(fs.nodes) == 1 + 3


@pytest.mark.parametrize("offset", [1 << 63, (1 << 64) - 1, 12345, 1 << 62])
async def test_offsets_a_stream_never_gave_get_an_errno_or_an_end(fs, share, offset):
    fill(share, 10)
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    try:
        page = await read_page(fs, fh, offset)
    except OSError as error:
        assert error.errno == errno.EINVAL
    else:
        assert len(page) <= 12
    assert len(await read_all(fs, fh)) == 12  # the stream still lists from the start


async def test_out_of_range_offset_is_einval(fs):
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    with pytest.raises(OSError) as raised:
        await read_page(fs, fh, 1 << 64)
    assert raised.value.errno == errno.EINVAL


async def test_destroy_closes_every_stream(fs, share):
    fds = open_fds()
    for _ in range(10):
        await fs.opendir(ROOT, ROOT_NODEID, 0)
    assert open_fds() == fds + 10
    await fs.destroy()
    assert open_fds() == fds


async def test_a_listing_under_way_when_its_stream_is_released_gets_ebadf(fs, share):
    fill(share, 300)
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    stream = fs.dirs.find(fh).stream
    listing = await fs.backend.readdir(stream, 0)
    next(listing)
    await fs.releasedir(ROOT, ROOT_NODEID, fh)
    other = os.open(share, os.O_RDONLY | os.O_DIRECTORY)  # may take the released number
    try:
        with pytest.raises(OSError) as raised:
            list(listing)
        assert raised.value.errno == errno.EBADF
    finally:
        os.close(other)
