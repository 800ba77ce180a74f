"""The objects the NFS backend hands to the core: records of (parent, name) links.

libnfs's synchronous API names objects by path, but a path is not an identity:
renaming a directory changes the path of everything below it, and hard links
give one object several paths.  So a node stores the *links* that lead to it
(parent node + name), and its path is computed on demand by walking parents.
Renaming a directory updates one link and every descendant follows for free.
Nodes are matched by NFS fileid (RFC 1813 §2.5 ``fileid3``), so a second name
of a hard-linked file finds the node the core already holds.  A fileid names a
file only while it exists: the server gives a removed file's fileid to the next
new file, whose filehandle differs (the old one is stale, ``NFS3ERR_STALE``), so
where both filehandles are known they decide whether a fileid is still the same
object.

Only the event loop thread touches this tree (workers receive finished paths),
so it needs no lock.
"""

from __future__ import annotations

import errno
import stat as stat_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hostfs.backends.nfs.libnfs_c import NfsStat64


class NfsNode:
    """One object on the export."""

    __slots__ = (
        "attrs", "attrs_at", "children", "filehandle", "held", "ino", "is_root", "links", "mode",
        "opened", "unstable",
    )  # fmt: skip

    def __init__(self, ino: int, mode: int, is_root: bool = False) -> None:
        self.is_root = is_root
        self.ino = ino
        self.mode = mode
        self.links: list[tuple[NfsNode, bytes]] = []
        self.held = True
        """The core holds it (between lookup and forget)."""
        self.children = 0
        """Indexed links that name this node as their parent."""
        self.filehandle: bytes | None = None
        """The NFS filehandle once a LOOKUP returned it: a handle names the object
        itself, so it survives renames (RFC 1813 §2.6 ``nfs_fh3``), and saves path walks."""
        self.unstable = False
        """Some handle WROTE (UNSTABLE, RFC 1813 §3.3.7) since the last COMMIT."""
        self.attrs: NfsStat64 | None = None
        """The newest attributes a reply carried (the backend decides how long they answer)."""
        self.attrs_at = 0
        """When the call that brought ``attrs`` was sent, or when they were dropped
        (monotonic ns): older news never replaces newer."""
        self.opened = 0
        """Open handles on it: an unlink then hides it instead (:mod:`silly`)."""

    @property
    def path(self) -> bytes:
        """The path of the first known link, relative to the export root ("/").

        A node that lost its last name (unlinked while open, or below a removed
        directory) has no path: ESTALE, as an NFS client says for a dead handle.
        """
        parts = []
        node = self
        while not node.is_root:
            if not node.links:
                raise OSError(errno.ESTALE, "object has no name left on the export")
            node, name = node.links[0]
            parts.append(name)
        return b"/" + b"/".join(reversed(parts))

    def child_path(self, name: bytes) -> bytes:
        base = self.path
        return (base if base != b"/" else b"") + b"/" + name

    def __repr__(self) -> str:
        # Logged on error paths, where the node may have lost its last name.
        try:
            where = repr(self.path)
        except OSError:
            where = "(removed)"
        return f"NfsNode(ino={self.ino}, path={where})"


class NodeTree:
    """Every node the core holds, plus the ancestors their paths go through."""

    def __init__(self, root_ino: int, root_mode: int) -> None:
        self.root = NfsNode(root_ino, root_mode, is_root=True)
        self._by_link: dict[tuple[NfsNode, bytes], NfsNode] = {}
        self._by_ino: dict[int, NfsNode] = {root_ino: self.root}

    def found(
        self, parent: NfsNode, name: bytes, ino: int, mode: int, filehandle: bytes | None
    ) -> NfsNode:
        """``parent/name`` is object ``ino`` (filehandle ``filehandle`` if known) now: return
        its node, recording the link and the filehandle."""
        key = (parent, name)
        node = self._by_link.get(key)
        if node is not None and node.ino == ino and _same(node, mode, filehandle):
            node.held = True
            node.mode = mode
            node.filehandle = filehandle or node.filehandle
            return node
        if node is not None:
            self._unlink(node, key)
        node = self._by_ino.get(ino)
        if node is None or not _same(node, mode, filehandle):
            # A node the fileid named before stays in the tree while the core holds it.
            node = NfsNode(ino, mode)
            self._by_ino[ino] = node
        elif stat_module.S_ISDIR(mode):
            # A directory has one name: it was moved behind our back.
            for link in list(node.links):
                self._unlink(node, link, drop=False)
        node.held = True
        node.mode = mode
        node.filehandle = filehandle or node.filehandle
        self._link(node, key)
        return node

    def child(self, parent: NfsNode, name: bytes) -> NfsNode | None:
        """The node ``parent/name`` leads to, if it is in the tree."""
        return self._by_link.get((parent, name))

    def linked(self, node: NfsNode, parent: NfsNode, name: bytes) -> None:
        """A new hard link ``parent/name`` to ``node``."""
        self.removed(parent, name)
        self._link(node, (parent, name))

    def removed(self, parent: NfsNode, name: bytes) -> None:
        """``parent/name`` is gone (unlink, rmdir, replaced by a rename)."""
        key = (parent, name)
        node = self._by_link.get(key)
        if node is not None:
            self._unlink(node, key)

    def moved(self, parent: NfsNode, name: bytes, new_parent: NfsNode, new_name: bytes) -> None:
        """``rename(parent/name, new_parent/new_name)`` succeeded."""
        if (parent, name) == (new_parent, new_name):
            return
        node = self._by_link.get((parent, name))
        self.removed(new_parent, new_name)
        if node is None:
            return
        index = node.links.index((parent, name))
        del self._by_link[(parent, name)]
        node.links[index] = (new_parent, new_name)
        self._by_link[(new_parent, new_name)] = node
        new_parent.children += 1
        parent.children -= 1
        self._maybe_drop(parent)

    def by_fileid(self, ino: int) -> NfsNode | None:
        """The node the tree has for fileid ``ino`` (compare filehandles to be sure)."""
        return self._by_ino.get(ino)

    def forget(self, node: NfsNode) -> None:
        """The core holds no more references: drop the node unless a descendant needs it."""
        if node is self.root:
            return
        node.held = False
        self._maybe_drop(node)

    def _link(self, node: NfsNode, key: tuple[NfsNode, bytes]) -> None:
        node.links.append(key)
        self._by_link[key] = node
        key[0].children += 1

    def _unlink(self, node: NfsNode, key: tuple[NfsNode, bytes], drop: bool = True) -> None:
        node.links.remove(key)
        del self._by_link[key]
        parent = key[0]
        parent.children -= 1
        if drop:
            self._maybe_drop(parent)

    def _maybe_drop(self, node: NfsNode) -> None:
        """Remove nodes that nobody holds, bottom-up, keeping their links for open paths."""
        while node is not self.root and not node.held and node.children == 0:
            if self._by_ino.get(node.ino) is node:
                del self._by_ino[node.ino]
            parents = [parent for parent, _ in node.links]
            for key in node.links:
                self._by_link.pop(key, None)
            for parent in parents:
                parent.children -= 1
            if len(parents) != 1:
                for parent in parents[1:]:
                    self._maybe_drop(parent)
                if not parents:
                    return
            node = parents[0]


def _same(node: NfsNode, mode: int, filehandle: bytes | None) -> bool:
    """Whether an object of type ``mode`` with filehandle ``filehandle``, found under ``node``'s
    fileid, is ``node``'s object.  Equal filehandles say so; where one is unknown
    (objects found by path), a node that still has a name is presumed to be, and
    one that lost its last name is presumed removed, its fileid reused."""
    if stat_module.S_IFMT(node.mode) != stat_module.S_IFMT(mode):
        return False
    if filehandle is not None and node.filehandle is not None:
        return filehandle == node.filehandle
    return bool(node.links)
