"""A FORGET that comes while handles are still open releases nothing they use.

The kernel forgets only inodes no open file holds, but a guest may send FORGET
early: closing the node's O_PATH descriptor under an open handle would let a
GETATTR or FSYNCDIR on that handle reach whatever reuses the descriptor number.
(``Inode.fd`` is the node's O_PATH fd, pinned with ``--inode-file-handles never``
or hot with ``prefer``; the backend sets it to -1 when it gives it back.)
"""

from __future__ import annotations

import os

from hostfs.core.filesystem import ROOT_NODEID
from tests.support.core import ROOT


async def test_forget_of_a_node_with_an_open_file_waits_for_its_release(fs):
    entry, opened = await fs.create(ROOT, ROOT_NODEID, b"f", 0o644, os.O_RDWR)
    inode = fs.files.find(opened.fh).node.obj
    pinned = inode.fd
    fs.forget(entry.nodeid, 1)  # early: the file is still open
    assert inode.fd == pinned
    # The handle still reads and writes its own file.
    assert await fs.write(ROOT, entry.nodeid, opened.fh, 0, [memoryview(b"own")]) == 3
    buffer = bytearray(3)
    assert await fs.read(ROOT, entry.nodeid, opened.fh, 0, [memoryview(buffer)]) == 3
    assert buffer == b"own"
    await fs.release(ROOT, entry.nodeid, opened.fh)
    assert inode.fd == -1  # given back with the last handle


async def test_forget_of_a_directory_with_an_open_stream_waits_for_releasedir(fs):
    entry = await fs.mkdir(ROOT, ROOT_NODEID, b"d", 0o755)
    opened = await fs.opendir(ROOT, entry.nodeid, os.O_RDONLY)
    inode = fs.dirs.find(opened.fh).node.obj
    pinned = inode.fd
    fs.forget(entry.nodeid, 1)
    assert inode.fd == pinned
    await fs.fsyncdir(ROOT, entry.nodeid, opened.fh, False)
    await fs.releasedir(ROOT, entry.nodeid, opened.fh)
    assert inode.fd == -1


async def test_a_node_forgotten_without_handles_is_released_at_once(fs):
    entry = await fs.mkdir(ROOT, ROOT_NODEID, b"d", 0o755)
    inode = fs.nodes.get(entry.nodeid).obj
    fs.forget(entry.nodeid, 1)
    assert inode.fd == -1
