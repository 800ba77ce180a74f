"""READDIRPLUS replies that fail part-way: the lookups counted always match the
entries the kernel was told of, so every node it never learns of is released."""

from __future__ import annotations

import errno
import os

import pytest
import trio

from hostfs.backends.local import LocalBackend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from tests.support.core import ROOT, open_fds

NAMES = 10


class FailingLookups(LocalBackend):
    """Lookups fail with ``error`` from the ``fail_at``-th on (1-based), like a
    daemon out of fds; ``cancel`` instead cancels the request at that lookup."""

    fail_at = 0
    error = errno.EMFILE
    cancel: trio.CancelScope | None = None
    calls = 0

    async def lookup(self, parent, name):
        self.calls += 1
        if self.fail_at and self.calls >= self.fail_at:
            if self.cancel is not None:
                self.cancel.cancel()
                await trio.lowlevel.checkpoint()
            raise OSError(self.error, os.strerror(self.error))
        return await super().lookup(parent, name)


@pytest.fixture
async def failing(share):
    for i in range(NAMES):
        os.close(os.open(os.path.join(share, f"f{i}"), os.O_CREAT))
    fs = FileSystem(FailingLookups.from_path(share))
    await fs.start()
    yield fs
    await fs.close()


async def readdirplus(fs, fh, offset=0, fail_in_add_at=None):
    sent = []

    def add(name, ino, dtype, next_offset, entry):
        if fail_in_add_at is not None and len(sent) == fail_in_add_at:
            raise ValueError("the reply cannot be encoded")
        sent.append((name, next_offset, entry))
        return True

    await fs.readdir(ROOT, ROOT_NODEID, fh, offset, add, True)
    return sent


async def plain_readdir(fs, fh):
    sent = []
    await fs.readdir(
        ROOT, ROOT_NODEID, fh, 0, lambda n, i, t, o, e: sent.append((n, o)) or 1, False
    )
    return sent


def lookups(fs):
    return {n.nodeid: n.nlookup for n in fs.nodes._by_id.values() if n.nodeid != ROOT_NODEID}


async def test_an_error_after_some_entries_ends_the_reply_there(failing):
    fs = failing
    fs.backend.fail_at = 5
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    fds = open_fds()
    sent = await readdirplus(fs, fh)
    told = [entry for name, _, entry in sent if name not in (b".", b"..")]
    assert len(told) == 4
    assert lookups(fs) == {entry.nodeid: 1 for entry in told}
    assert open_fds() == fds + 4  # one O_PATH fd per node the kernel knows of
    # The kernel asks again from the last offset sent: the first entry fails.
    with pytest.raises(OSError) as raised:
        await readdirplus(fs, fh, sent[-1][1])
    assert raised.value.errno == errno.EMFILE
    assert len(lookups(fs)) == 4 and open_fds() == fds + 4
    # Once lookups work again, the listing goes on from there with every name.
    fs.backend.fail_at = 0
    rest = await readdirplus(fs, fh, sent[-1][1])
    names = {name for name, _, _ in sent + rest} - {b".", b".."}
    assert names == {b"f%d" % i for i in range(NAMES)}


async def test_an_error_on_the_first_entry_is_the_error(failing):
    fs = failing
    fs.backend.fail_at, fs.backend.error = 1, errno.EACCES
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    listing = await plain_readdir(fs, fh)
    # An offset whose next entry is a name to look up ("." and ".." need none).
    starts = [0] + [offset for _, offset in listing]
    start = next(starts[i] for i, (name, _) in enumerate(listing) if name not in (b".", b".."))
    with pytest.raises(OSError) as raised:
        await readdirplus(fs, fh, start)
    assert raised.value.errno == errno.EACCES
    assert lookups(fs) == {}


async def test_a_reply_that_cannot_be_sent_takes_back_every_lookup(failing):
    fs = failing
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    fds = open_fds()
    with pytest.raises(ValueError):
        await readdirplus(fs, fh, fail_in_add_at=6)
    assert lookups(fs) == {} and open_fds() == fds


async def test_a_cancelled_reply_takes_back_every_lookup(failing):
    fs = failing
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    fds = open_fds()
    with trio.CancelScope() as scope:
        fs.backend.fail_at, fs.backend.cancel = 4, scope
        await readdirplus(fs, fh)
    assert scope.cancelled_caught
    assert lookups(fs) == {} and open_fds() == fds
