"""``--inode-file-handles``: nodes held by file handle cost no fd, so a guest may
hold more of them than RLIMIT_NOFILE; a file system without handles (ramfs)
falls back to pinned O_PATH fds, said once in the log; ``mandatory`` refuses it."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import resource
import stat
import subprocess
from collections.abc import Iterator

import pytest

from hostfs.backends.local import LocalBackend
from hostfs.backends.local.fd_budget import CONTROL_PLANE_RESERVE, open_fd_count
from hostfs.cli import common
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from tests.support.core import ROOT, open_fds

GUEST_FDS = 40
"""What the lowered limit leaves for the guest's objects."""
FILES = 5 * GUEST_FDS
NO_HANDLES = "has no file handles"


def fill(directory: str, count: int) -> None:
    for i in range(count):
        os.close(os.open(os.path.join(directory, f"f{i}"), os.O_CREAT))


def file_system_type(path: str) -> str:
    return subprocess.run(
        ["stat", "-f", "-c", "%T", path], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def lowered_nofile() -> Iterator[None]:
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = open_fd_count() + CONTROL_PLANE_RESERVE + GUEST_FDS
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, saved[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)


@pytest.fixture
def ramfs(tmp_path) -> Iterator[str]:
    """A ramfs: it cannot export its inodes (no export_operations; tmpfs can)."""
    path = tmp_path / "ramfs"
    path.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(path)], check=True)
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


async def walk(fs: FileSystem, count: int, parent: int = ROOT_NODEID) -> list[int]:
    """Look up and stat f0 .. f<count-1>, holding every node (no FORGET)."""
    nodes = []
    for i in range(count):
        entry = await fs.lookup(ROOT, parent, b"f%d" % i)
        await fs.getattr(ROOT, entry.nodeid)
        nodes.append(entry.nodeid)
    return nodes


async def test_prefer_holds_more_nodes_than_the_fd_limit_allows(share, lowered_nofile):
    assert file_system_type(share) not in ("tmpfs", "ramfs")
    fill(share, FILES)
    fs = FileSystem(LocalBackend.from_path(share, rlimit_nofile=0, inode_file_handles="prefer"))
    await fs.start()
    try:
        fds = open_fds()
        nodes = await walk(fs, FILES)
        assert len(set(nodes)) == FILES
        hot = fs.backend._inodes.hot_limit
        assert 0 < hot < GUEST_FDS
        assert open_fds() == fds + hot  # only the most recent nodes hold an fd
        fh = (await fs.open(ROOT, nodes[-1], os.O_RDWR)).fh
        await fs.write(ROOT, nodes[-1], fh, 0, [memoryview(b"data")])
        await fs.release(ROOT, nodes[-1], fh)
        assert open_fds() == fds + hot
    finally:
        await fs.close()
    assert fs.backend._fds.held == 0
    with open(os.path.join(share, f"f{FILES - 1}"), "rb") as file:
        assert file.read() == b"data"


async def test_never_pins_an_fd_per_node(share, lowered_nofile):
    fill(share, FILES)
    fs = FileSystem(LocalBackend.from_path(share, rlimit_nofile=0, inode_file_handles="never"))
    await fs.start()
    try:
        with pytest.raises(OSError) as refused:
            await walk(fs, FILES)
        assert refused.value.errno == errno.ENFILE
    finally:
        await fs.close()


@pytest.mark.parametrize("hot_fds", [0, 1])
async def test_a_node_by_handle_keeps_its_identity(share, hot_fds):
    """Cold, a removed inode is freed and its handle stale; hot, its fd keeps it (as
    a pinned fd does) until it cools or is forgotten."""
    fill(share, 1)
    os.link(os.path.join(share, "f0"), os.path.join(share, "hard"))
    backend = LocalBackend.from_path(share, inode_file_handles="mandatory", hot_fds=hot_fds)
    fs = FileSystem(backend)
    await fs.start()
    try:
        node = (await fs.lookup(ROOT, ROOT_NODEID, b"f0")).nodeid
        assert (await fs.lookup(ROOT, ROOT_NODEID, b"hard")).nodeid == node
        os.unlink(os.path.join(share, "f0"))
        os.unlink(os.path.join(share, "hard"))
        if hot_fds:
            assert (await fs.getattr(ROOT, node)).attr.nlink == 0
        else:
            with pytest.raises(OSError) as gone:  # the inode is freed: its handle is stale
                await fs.getattr(ROOT, node)
            assert gone.value.errno == errno.ESTALE
        fill(share, 1)  # may reuse the inode number: a new node all the same
        assert (await fs.lookup(ROOT, ROOT_NODEID, b"f0")).nodeid != node
    finally:
        await fs.close()


async def test_a_mount_without_handles_pins_fds_and_says_so_once(share, tmp_path, caplog):
    """ramfs mounted inside the share: its nodes pin O_PATH fds, the share's do not."""
    inner = os.path.join(share, "inner")
    os.mkdir(inner)
    subprocess.run(["mount", "-t", "ramfs", "ramfs", inner], check=True)
    try:
        fill(inner, 10)
        fill(share, 10)
        caplog.set_level(logging.INFO, logger="hostfs.backends.local.inodes")
        fs = FileSystem(LocalBackend.from_path(share, inode_file_handles="prefer", hot_fds=0))
        await fs.start()
        try:
            inner_node = (await fs.lookup(ROOT, ROOT_NODEID, b"inner")).nodeid
            fds = open_fds()
            await walk(fs, 10)
            assert open_fds() == fds
            await walk(fs, 10, inner_node)
            assert open_fds() == fds + 10
            assert sum(NO_HANDLES in record.getMessage() for record in caplog.records) == 1
        finally:
            await fs.close()
        assert fs.backend._fds.held == 0
    finally:
        subprocess.run(["umount", "-l", inner], check=True)


async def test_a_submount_with_handles_gets_a_mount_fd_of_its_own(share):
    inner = os.path.join(share, "inner")
    os.mkdir(inner)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", inner], check=True)
    try:
        fill(inner, 3)
        fs = FileSystem(LocalBackend.from_path(share, inode_file_handles="mandatory", hot_fds=0))
        await fs.start()
        try:
            inner_node = (await fs.lookup(ROOT, ROOT_NODEID, b"inner")).nodeid
            fds = open_fds()
            nodes = await walk(fs, 3, inner_node)
            assert open_fds() == fds
            attr = (await fs.getattr(ROOT, nodes[0])).attr
            assert attr.ino == os.stat(os.path.join(inner, "f0")).st_ino
        finally:
            await fs.close()
        assert fs.backend._fds.held == 0
    finally:
        subprocess.run(["umount", "-l", inner], check=True)


@pytest.mark.parametrize("mode", [{}, {"inode_file_handles": "prefer"}], ids=["default", "prefer"])
async def test_prefer_on_a_share_without_handles_pins_fds(ramfs, caplog, mode):
    fill(ramfs, 10)
    fs = FileSystem(LocalBackend.from_path(ramfs, **mode))
    await fs.start()
    try:
        fds = open_fds()
        await walk(fs, 10)
        assert open_fds() == fds + 10
        assert sum("no file handles" in record.getMessage() for record in caplog.records) == 1
    finally:
        await fs.close()


async def test_mandatory_on_a_share_without_handles_is_a_usage_error(ramfs):
    parser = argparse.ArgumentParser()
    common.add_filesystem_options(parser)
    args = parser.parse_args(["--shared-dir", ramfs, "--inode-file-handles", "mandatory"])
    fds = open_fds()
    with pytest.raises(common.UsageError) as refused:
        await common.open_filesystem(args)
    assert str(refused.value) == (
        "--inode-file-handles=mandatory: the share has no file handles "
        "(name_to_handle_at: Operation not supported)"
    )
    assert open_fds() == fds  # the share's fd is closed again


@pytest.mark.parametrize("mode", ["never", "prefer"])
async def test_a_repeat_lookup_of_a_held_node_is_a_stat(share, mode, monkeypatch):
    """A held node's repeat lookup needs no full lookup (open, fstat, name_to_handle_at,
    close): pinned or hot, its inode cannot have been freed; cold, the handle of the
    name (no open) says whether it is still the node's inode."""
    fill(share, 2)
    fs = FileSystem(LocalBackend.from_path(share, inode_file_handles=mode, hot_fds=1))
    await fs.start()
    full = []
    lookup = fs.backend.lookup

    async def counted(parent, name):
        full.append(name)
        return await lookup(parent, name)

    monkeypatch.setattr(fs.backend, "lookup", counted)
    try:
        node = (await fs.lookup(ROOT, ROOT_NODEID, b"f0")).nodeid
        assert (await fs.lookup(ROOT, ROOT_NODEID, b"f0")).nodeid == node
        old_f1 = (await fs.lookup(ROOT, ROOT_NODEID, b"f1")).nodeid  # f0 cools (one hot fd)
        assert (await fs.lookup(ROOT, ROOT_NODEID, b"f0")).nodeid == node
        assert full == [b"f0", b"f1"]
        await fs.getattr(ROOT, node)  # f0 hot again, f1 cold: its inode is freed on unlink
        os.unlink(os.path.join(share, "f1"))
        fill(share, 2)  # f1 anew: a new inode, on ext4 mostly with the old number
        assert (await fs.lookup(ROOT, ROOT_NODEID, b"f1")).nodeid != old_f1
        assert full == [b"f0", b"f1", b"f1"]
    finally:
        await fs.close()
    assert fs.backend._fds.held == 0


async def test_a_lookup_in_a_cold_directory_stats_the_name_itself(share):
    """A stat by name in a directory known by handle and cold (Inodes.stat with a name):
    the fd opened for it goes again, and a final symlink is not followed."""
    os.mkdir(os.path.join(share, "d"))
    os.symlink("missing", os.path.join(share, "d", "link"))
    fs = FileSystem(LocalBackend.from_path(share, inode_file_handles="mandatory", hot_fds=0))
    await fs.start()
    try:
        directory = (await fs.lookup(ROOT, ROOT_NODEID, b"d")).nodeid
        fds = open_fds()
        for _ in range(2):  # a new name, then a node the core holds (found by its key)
            entry = await fs.lookup(ROOT, directory, b"link")
            assert stat.S_ISLNK(entry.attr.mode)
            assert open_fds() == fds
        with pytest.raises(FileNotFoundError):
            await fs.lookup(ROOT, directory, b"nothing")
        assert open_fds() == fds
    finally:
        await fs.close()
