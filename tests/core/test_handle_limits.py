"""Per-session caps on open handles: beyond them OPEN, CREATE and OPENDIR get
ENFILE before the backend opens anything, so a refusal holds nothing."""

from __future__ import annotations

import errno
import os

import pytest

from hostfs.core.filesystem import ROOT_NODEID
from tests.support.core import ROOT, open_fds


async def test_handles_beyond_the_session_limit_get_enfile_and_hold_nothing(fs, share):
    fs.files.limit = fs.dirs.limit = 2
    entry, _ = await fs.create(ROOT, ROOT_NODEID, b"a", 0o600, os.O_RDWR)
    await fs.open(ROOT, entry.nodeid, os.O_RDONLY)
    await fs.opendir(ROOT, ROOT_NODEID, 0)
    await fs.opendir(ROOT, ROOT_NODEID, 0)
    fds = open_fds()
    for refused in (
        fs.open(ROOT, entry.nodeid, os.O_RDONLY),
        fs.create(ROOT, ROOT_NODEID, b"b", 0o600, os.O_RDWR),
        fs.opendir(ROOT, ROOT_NODEID, 0),
    ):
        with pytest.raises(OSError) as raised:
            await refused
        assert raised.value.errno == errno.ENFILE
    assert open_fds() == fds and os.listdir(share) == ["a"]
    assert len(fs.files) == len(fs.dirs) == 2
