"""The node table: FUSE nodeids, their lookup counts, and the backend objects behind them.

fuse.h: every LOOKUP, CREATE, MKNOD, MKDIR, SYMLINK, LINK and READDIRPLUS
entry that carries a nodeid adds one to that node's lookup count; FORGET and
BATCH_FORGET take counts away; at zero the node is gone and the backend object
it pinned is released.  The root (``FUSE_ROOT_ID`` = 1) is never forgotten.
"""

from __future__ import annotations

import errno
import logging
import stat as stat_module
from collections.abc import Callable
from dataclasses import dataclass

from hostfs.core.backend import BackendObject
from hostfs.core.types import Stat

log = logging.getLogger(__name__)

ROOT_NODEID = 1
"""``FUSE_ROOT_ID`` in fuse.h."""


@dataclass(slots=True, eq=False)
class Node:
    nodeid: int
    obj: BackendObject
    key: tuple[int, int]
    nlookup: int
    mode: int
    """The last ``st_mode`` the core saw: the file type never changes; the
    permission bits are a hint (e.g. whether a write may need to drop setuid)."""
    pins: int = 0
    """Open file and directory handles on this node: they use its backend object."""
    forgotten: bool = False
    """The kernel forgot it while handles were still open: released with the last one."""

    @property
    def is_dir(self) -> bool:
        return stat_module.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat_module.S_ISLNK(self.mode)


class NodeTable:
    """nodeid <-> backend object, deduplicated by the backend's (st_dev, st_ino).

    Hard links therefore share one nodeid, and a name renamed on the host
    does not disturb a node the kernel already holds.  Nodeids are never
    reused within one daemon, so every generation number is 0 (fuse.h allows
    that when (nodeid, generation) stays unique).

    A key can outlive its object: an NFS server reuses a removed file's fileid
    while the kernel still holds the removed file's node.  ``same_object``
    (:meth:`Backend.same_object`) tells; a node that turns out to be another
    object is *detached*: it leaves the by-key map but keeps its nodeid until
    the kernel forgets it, and the new object gets a node of its own.
    """

    GENERATION = 0

    def __init__(
        self,
        release: Callable[[BackendObject], None],
        same_object: Callable[[BackendObject, BackendObject], bool],
    ) -> None:
        self._release = release
        self._same_object = same_object
        self._by_id: dict[int, Node] = {}
        self._by_key: dict[tuple[int, int], Node] = {}
        self._next_nodeid = ROOT_NODEID + 1

    def __len__(self) -> int:
        return len(self._by_id)

    def set_root(self, obj: BackendObject, st: Stat) -> Node:
        root = Node(ROOT_NODEID, obj, (st.dev, st.ino), 1, st.mode)
        self._by_id[ROOT_NODEID] = root
        self._by_key[root.key] = root
        return root

    def get(self, nodeid: int) -> Node:
        try:
            return self._by_id[nodeid]
        except KeyError:
            raise OSError(errno.ESTALE, f"unknown nodeid {nodeid}") from None

    def find(self, dev: int, ino: int) -> Node | None:
        """The node mapped to (``dev``, ``ino``), if the core holds one."""
        return self._by_key.get((dev, ino))

    def remember(self, obj: BackendObject, st: Stat) -> Node:
        """Count one lookup of the object ``obj``/``st`` that a backend call returned."""
        key = (st.dev, st.ino)
        node = self._by_key.get(key)
        # The object the core handed the backend back (a repeat LOOKUP found by key,
        # filesystem._find) is its own: no backend call to tell.
        if node is not None and node.obj is not obj and not self._same_object(node.obj, obj):
            del self._by_key[key]
            node = None
        if node is None:
            node = Node(self._next_nodeid, obj, key, 1, st.mode)
            self._next_nodeid += 1
            self._by_id[node.nodeid] = node
            self._by_key[key] = node
        else:
            node.nlookup += 1
            node.mode = st.mode
            if obj is not node.obj:
                self._release(obj)
        return node

    def forget(self, nodeid: int, nlookup: int) -> None:
        node = self._by_id.get(nodeid)
        if node is None or nodeid == ROOT_NODEID:
            return
        node.nlookup -= nlookup
        if node.nlookup <= 0:
            del self._by_id[nodeid]
            self._drop_key(node)
            self._release_unless_pinned(node)

    def pin(self, node: Node) -> None:
        """A handle was opened on ``node``: its object lives at least as long."""
        node.pins += 1

    def unpin(self, node: Node) -> None:
        """A handle on ``node`` is closed; a node forgotten meanwhile is released now."""
        node.pins -= 1
        if not node.pins and node.forgotten:
            self._release(node.obj)

    def _release_unless_pinned(self, node: Node) -> None:
        """Release a node nobody can name any more, unless a handle still uses it.

        The kernel sends FORGET only for inodes no open file holds, but a guest
        may send it early; closing the object under an open handle would let
        that handle reach whatever reuses the descriptor number."""
        if node.pins:
            node.forgotten = True
        else:
            self._release(node.obj)

    def forget_all(self) -> None:
        """End of a session: every node but the root is gone."""
        for nodeid in [n for n in self._by_id if n != ROOT_NODEID]:
            node = self._by_id.pop(nodeid)
            self._drop_key(node)
            self._release_unless_pinned(node)

    # -- migration (hostfs.migration.snapshot) ------------------------------

    @property
    def next_nodeid(self) -> int:
        return self._next_nodeid

    def held(self) -> list[Node]:
        """Every node the kernel holds but the root."""
        return [node for nodeid, node in self._by_id.items() if nodeid != ROOT_NODEID]

    def adopt(self, nodeid: int, obj: BackendObject, st: Stat, nlookup: int) -> Node:
        """A node another daemon gave the kernel: same nodeid and lookup count.  A second
        node of one object (detached on the source) keeps its nodeid, not the key."""
        if nodeid in self._by_id or nodeid <= ROOT_NODEID:
            raise OSError(errno.EEXIST, f"nodeid {nodeid} is taken")
        node = Node(nodeid, obj, (st.dev, st.ino), nlookup, st.mode)
        self._by_id[nodeid] = node
        self._by_key.setdefault(node.key, node)
        self._next_nodeid = max(self._next_nodeid, nodeid + 1)
        return node

    def continue_from(self, next_nodeid: int) -> None:
        """Never hand out a nodeid the source daemon already gave (fuse.h: unique)."""
        self._next_nodeid = max(self._next_nodeid, next_nodeid)

    def _drop_key(self, node: Node) -> None:
        """Unmap ``node``'s key unless it was detached and the key names a newer node."""
        if self._by_key.get(node.key) is node:
            del self._by_key[node.key]
