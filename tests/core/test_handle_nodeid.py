"""A request naming one node with another node's handle gets EBADF, as from
virtiofsd's ``find_handle``, and leaves the handle as it was."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.types import Lock, SetattrChanges
from tests.support.core import ROOT


@dataclass
class Opened:
    file: int
    """The nodeid the open file ``fh`` is of."""
    fh: int
    other: int
    """Another file's nodeid, open too."""
    other_fh: int
    directory: int
    dir_fh: int


Call = Callable[[FileSystem, Opened], Awaitable[object]]

_LOCK = Lock(0, 9, fcntl.F_WRLCK, 1)

MISMATCHED: dict[str, Call] = {
    "read": lambda fs, o: fs.read(ROOT, o.other, o.fh, 0, [memoryview(bytearray(4))]),
    "write": lambda fs, o: fs.write(ROOT, o.other, o.fh, 0, [memoryview(b"x")]),
    "flush": lambda fs, o: fs.flush(ROOT, o.other, o.fh, 0),
    "release": lambda fs, o: fs.release(ROOT, o.other, o.fh),
    "fsync": lambda fs, o: fs.fsync(ROOT, o.other, o.fh, False),
    "fallocate": lambda fs, o: fs.fallocate(ROOT, o.other, o.fh, 0, 0, 4),
    "lseek": lambda fs, o: fs.lseek(ROOT, o.other, o.fh, 0, os.SEEK_DATA),
    "getattr": lambda fs, o: fs.getattr(ROOT, o.other, o.fh),
    "setattr": lambda fs, o: fs.setattr(ROOT, o.other, SetattrChanges(size=0), o.fh),
    "getlk": lambda fs, o: fs.getlk(ROOT, o.other, o.fh, 1, _LOCK),
    "setlk": lambda fs, o: fs.setlk(ROOT, o.other, o.fh, 1, _LOCK, wait=False),
    "copy_file_range in": lambda fs, o: fs.copy_file_range(
        ROOT, o.other, o.fh, 0, o.other, o.other_fh, 0, 1
    ),
    "copy_file_range out": lambda fs, o: fs.copy_file_range(
        ROOT, o.file, o.fh, 0, o.file, o.other_fh, 0, 1
    ),
    "readdir": lambda fs, o: fs.readdir(ROOT, o.file, o.dir_fh, 0, lambda *entry: True, plus=False),
    "releasedir": lambda fs, o: fs.releasedir(ROOT, o.file, o.dir_fh),
    "fsyncdir": lambda fs, o: fs.fsyncdir(ROOT, o.file, o.dir_fh, False),
    "a file fh as a directory's": lambda fs, o: fs.readdir(
        ROOT, o.file, o.fh, 0, lambda *entry: True, plus=False
    ),
}


async def _opened(fs: FileSystem) -> Opened:
    file, fh = await fs.create(ROOT, ROOT_NODEID, b"a", 0o600, os.O_RDWR)
    other, other_fh = await fs.create(ROOT, ROOT_NODEID, b"b", 0o600, os.O_RDWR)
    directory = await fs.mkdir(ROOT, ROOT_NODEID, b"d", 0o700)
    dir_fh = (await fs.opendir(ROOT, directory.nodeid, 0)).fh
    return Opened(file.nodeid, fh.fh, other.nodeid, other_fh.fh, directory.nodeid, dir_fh)


@pytest.mark.parametrize("call", MISMATCHED.values(), ids=MISMATCHED.keys())
async def test_a_handle_named_with_another_node_is_ebadf(fs, call: Call) -> None:
    opened = await _opened(fs)
    with pytest.raises(OSError) as raised:
        await call(fs, opened)
    assert raised.value.errno == errno.EBADF
    # Refused, not half-done: both handles still work with their own nodes.
    assert len(fs.files) == 2 and len(fs.dirs) == 1
    await fs.getattr(ROOT, opened.file, opened.fh)
    await fs.fsyncdir(ROOT, opened.directory, opened.dir_fh, False)


async def test_the_nodeid_of_an_fh_is_the_node_it_was_opened_on(fs) -> None:
    opened = await _opened(fs)
    assert fs.file_nodeid(opened.fh) == opened.file
    assert fs.dir_nodeid(opened.dir_fh) == opened.directory
    with pytest.raises(OSError) as raised:
        fs.file_nodeid(opened.dir_fh + 100)
    assert raised.value.errno == errno.EBADF
