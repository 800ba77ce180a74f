"""The NFS backend's node tree when the server reuses a removed file's fileid (no server)."""

from __future__ import annotations

import stat

from hostfs.backends.nfs.nodes import NodeTree

FILE = stat.S_IFREG | 0o644


def test_a_reused_fileid_with_another_filehandle_is_a_new_node() -> None:
    tree = NodeTree(1, stat.S_IFDIR | 0o755)
    removed = tree.found(tree.root, b"old", 7, FILE, b"fh-old")
    tree.removed(tree.root, b"old")
    new = tree.found(tree.root, b"new", 7, FILE, b"fh-new")
    assert new is not removed and new.filehandle == b"fh-new" and new.path == b"/new"
    # The core forgets the removed file later; the new one stays the fileid's node.
    tree.forget(removed)
    assert tree.found(tree.root, b"new", 7, FILE, b"fh-new") is new


def test_a_name_replaced_behind_our_back_is_a_new_node() -> None:
    tree = NodeTree(1, stat.S_IFDIR | 0o755)
    old = tree.found(tree.root, b"name", 7, FILE, b"fh-old")
    new = tree.found(tree.root, b"name", 7, FILE, b"fh-new")
    assert new is not old and new.path == b"/name" and not old.links


def test_another_name_of_a_file_that_lost_its_known_name_finds_its_node() -> None:
    """A hard link's second name, looked up after the first was removed: same filehandle."""
    tree = NodeTree(1, stat.S_IFDIR | 0o755)
    node = tree.found(tree.root, b"one", 7, FILE, b"fh")
    tree.removed(tree.root, b"one")
    assert tree.found(tree.root, b"two", 7, FILE, b"fh") is node
    assert node.path == b"/two"


def test_without_filehandles_a_fileid_that_lost_its_last_name_is_presumed_reused() -> None:
    tree = NodeTree(1, stat.S_IFDIR | 0o755)
    removed = tree.found(tree.root, b"old", 7, FILE, None)
    tree.removed(tree.root, b"old")
    assert tree.found(tree.root, b"new", 7, FILE, None) is not removed
