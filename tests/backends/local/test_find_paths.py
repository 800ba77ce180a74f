"""Finding inodes by walking the share: migration's fallback for a node's path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostfs.backends.local import file_handles
from hostfs.backends.local.find_paths import find_paths


def key(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "deep").write_text("")
    (root / "top").write_text("")
    (root / "a" / "link").symlink_to(tmp_path)  # outside: never followed
    (tmp_path / "outside").write_text("")
    return root


def test_finds_files_and_directories_by_key(tree: Path) -> None:
    fd = os.open(tree, os.O_PATH | os.O_DIRECTORY)
    try:
        wanted = {key(tree / name): None for name in ("a/b/deep", "top", "a/b", "a/link")}
        found = find_paths(fd, wanted)
    finally:
        os.close(fd)
    assert found == {
        key(tree / "a/b/deep"): b"a/b/deep",
        key(tree / "top"): b"top",
        key(tree / "a/b"): b"a/b",
        key(tree / "a/link"): b"a/link",
    }


def test_never_leaves_the_share_nor_goes_past_its_bounds(tree: Path) -> None:
    fd = os.open(tree, os.O_PATH | os.O_DIRECTORY)
    try:
        outside = find_paths(fd, {key(tree.parent / "outside"): None})
        shallow = find_paths(fd, {key(tree / "a/b/deep"): None}, max_depth=2)
        few = find_paths(fd, {key(tree / "a/b/deep"): None}, max_entries=2)
    finally:
        os.close(fd)
    assert (outside, shallow, few) == ({}, {}, {})


def test_a_handle_must_match_as_well(tree: Path) -> None:
    fd = os.open(tree, os.O_PATH | os.O_DIRECTORY)
    try:
        handle = file_handles.name_to_handle(fd, b"top")
        other = file_handles.name_to_handle(fd, b"a")
        right = find_paths(fd, {key(tree / "top"): handle})
        wrong = find_paths(fd, {key(tree / "top"): other})  # an inode number reused
    finally:
        os.close(fd)
    assert (right, wrong) == ({key(tree / "top"): b"top"}, {})


async def test_path_of_names_a_node_until_it_is_unlinked(tmp_path: Path) -> None:
    from hostfs.backends.local.backend import LocalBackend

    share = tmp_path / "share"
    (share / "dir").mkdir(parents=True)
    (share / "dir" / "file").write_text("")
    backend = LocalBackend.from_path(str(share))
    try:
        root, _ = await backend.root()
        directory, _ = await backend.lookup(root, b"dir")
        obj, _ = await backend.lookup(directory, b"file")
        named = await backend.path_of(obj)
        (share / "dir" / "file").rename(share / "dir" / "moved")
        renamed = await backend.path_of(obj)
        (share / "dir" / "moved").unlink()
        unlinked = await backend.path_of(obj)
        (share / "dir" / "moved").write_text("")  # another file where it was
        replaced = await backend.path_of(obj)
        for held in (obj, directory, root):
            backend.forget(held)
    finally:
        await backend.close()
    assert (named, renamed, unlinked, replaced) == (b"dir/file", b"dir/moved", None, None)
