"""The node table's bookkeeping when a backend reuses an inode number for a new object."""

from __future__ import annotations

import os

from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.nodes import NodeTable
from hostfs.core.types import Stat
from tests.support.core import ROOT


class Obj:
    """A backend object that knows which server object it stands for (like a filehandle)."""

    def __init__(self, identity: str) -> None:
        self.identity = identity


def stat(ino: int) -> Stat:
    return Stat(1, ino, 0o100644, 1, 0, 0, 0, 0, 0, 4096, 0, 0, 0)


def table(released: list[Obj]) -> NodeTable:
    nodes = NodeTable(released.append, lambda known, found: known.identity == found.identity)
    nodes.set_root(Obj("root"), Stat(1, 2, 0o040755, 2, 0, 0, 0, 0, 0, 4096, 0, 0, 0))
    return nodes


def test_the_same_object_again_counts_a_lookup_and_releases_the_duplicate() -> None:
    released: list[Obj] = []
    nodes = table(released)
    first, again = Obj("a"), Obj("a")
    node = nodes.remember(first, stat(7))
    assert nodes.remember(again, stat(7)) is node
    assert node.obj is first and node.nlookup == 2 and released == [again]


def test_a_new_object_under_a_known_key_detaches_the_old_node() -> None:
    released: list[Obj] = []
    nodes = table(released)
    removed, reused = Obj("removed"), Obj("new file")
    old = nodes.remember(removed, stat(7))
    new = nodes.remember(reused, stat(7))
    assert new.nodeid != old.nodeid and new.obj is reused and released == []
    # The detached node still answers by nodeid until the kernel forgets it ...
    assert nodes.get(old.nodeid) is old
    nodes.forget(old.nodeid, 1)
    assert released == [removed] and len(nodes) == 2
    # ... and its FORGET left the new node's key alone: lookups still find it.
    assert nodes.remember(Obj("new file"), stat(7)) is new
    assert new.nlookup == 2


def test_forget_all_releases_detached_nodes_too() -> None:
    released: list[Obj] = []
    nodes = table(released)
    removed, reused = Obj("removed"), Obj("new file")
    nodes.remember(removed, stat(7))
    nodes.remember(reused, stat(7))
    nodes.forget_all()
    assert released == [removed, reused] and len(nodes) == 1
    assert nodes.remember(Obj("later"), stat(7)).obj.identity == "later"


async def test_a_removed_file_the_kernel_holds_keeps_its_own_node(fs: FileSystem) -> None:
    """A removed file the kernel still holds keeps its node: no new file gets its
    nodeid, even where the host reuses its inode number.  A pinned node's fd keeps the
    inode (and its number) alive; a node known by handle holds no fd (a created file's
    never had one: backends/local/inodes.py, adopt_open), and the handle's generation
    tells the two inodes apart (Backend.same_object: NodeTable.remember detaches)."""
    removed, opened = await fs.create(ROOT, ROOT_NODEID, b"removed", 0o644, os.O_RDWR)
    await fs.release(ROOT, removed.nodeid, opened.fh)
    await fs.unlink(ROOT, ROOT_NODEID, b"removed")
    for i in range(50):
        entry, opened = await fs.create(ROOT, ROOT_NODEID, b"f%d" % i, 0o644, os.O_RDWR)
        await fs.release(ROOT, entry.nodeid, opened.fh)
        assert entry.nodeid != removed.nodeid
    assert fs.nodes.get(removed.nodeid).key == (removed.attr.dev, removed.attr.ino)
