"""A node's path on the export, by which a migration's destination finds it again."""

from __future__ import annotations

import os

from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.types import Caller

ME = Caller(os.getuid(), os.getgid(), os.getpid())


async def test_a_node_is_named_by_its_path_until_it_is_unlinked(fs: FileSystem) -> None:
    directory = await fs.mkdir(ME, ROOT_NODEID, b"dir", 0o755)
    entry, opened = await fs.create(ME, directory.nodeid, b"file", 0o644, os.O_RDWR)
    node = fs.nodes.get(entry.nodeid)
    named = await fs.backend.path_of(node.obj)
    await fs.rename(ME, directory.nodeid, b"file", directory.nodeid, b"moved", 0)
    renamed = await fs.backend.path_of(node.obj)
    await fs.unlink(ME, directory.nodeid, b"moved")  # open: silly-renamed
    unlinked = await fs.backend.path_of(node.obj)
    await fs.release(ME, entry.nodeid, opened.fh)
    root = await fs.backend.path_of(fs.nodes.get(ROOT_NODEID).obj)
    assert (named, renamed, unlinked, root) == (b"dir/file", b"dir/moved", None, None)
