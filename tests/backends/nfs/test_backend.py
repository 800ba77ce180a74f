"""The NFS backend driven directly against a loopback ganesha: every Backend method."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

import pytest
import trio

from hostfs.backends import BackendUnavailable
from hostfs.backends.nfs import NfsBackend, open_nfs_backend
from hostfs.core.types import Caller, SetattrChanges
from tests.support.nfs_server import GaneshaServer

USER = Caller(1000, 1000, 1)


def buffer(data: bytes) -> memoryview:
    return memoryview(bytearray(data))


async def read_all(nfs: NfsBackend, handle: object, size: int, offset: int = 0) -> bytes:
    data = bytearray(size)
    got = await nfs.read(handle, offset, [memoryview(data)])
    return bytes(data[:got])


async def test_open_refuses_missing_export_unreachable_server_and_nfsv4(
    nfs_server: GaneshaServer,
) -> None:
    bad = [
        nfs_server.url.replace(str(nfs_server.export_dir), "/no/such/export"),
        nfs_server.url.replace(f"nfsport={nfs_server.nfs_port}", "nfsport=1"),
        nfs_server.url + "&version=4",
    ]
    for url in bad:
        start = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            await open_nfs_backend(url)
        assert time.monotonic() - start < 5
        assert "\n" not in str(info.value)


async def test_create_write_fsync_read(backend: NfsBackend, nfs_dir: Path) -> None:
    root, _ = await backend.root()
    node, attr, handle = await backend.create(root, b"f", os.O_RDWR, 0o640, USER)
    assert stat.S_IMODE(attr.mode) == 0o640 and (attr.uid, attr.gid) == (1000, 1000)
    assert await backend.write(handle, 0, [buffer(b"hello "), buffer(b"world")]) == 11
    await backend.fsync(handle, datasync=False)
    assert (nfs_dir / "f").read_bytes() == b"hello world"
    assert await read_all(backend, handle, 100) == b"hello world"
    assert (await backend.getattr(node, handle)).size == 11
    await backend.flush(handle)
    await backend.release(handle)
    handle = await backend.open(node, os.O_RDONLY, USER)
    first, second = bytearray(5), bytearray(100)
    assert await backend.read(handle, 0, [memoryview(first), memoryview(second)]) == 11
    assert bytes(first) + bytes(second[:6]) == b"hello world"
    await backend.release(handle)


async def test_create_existing_file_keeps_owner_and_excl_fails(
    backend: NfsBackend, nfs_dir: Path
) -> None:
    (nfs_dir / "mine").write_bytes(b"data")
    root, _ = await backend.root()
    node, attr, handle = await backend.create(root, b"mine", os.O_RDWR, 0o600, USER)
    assert attr.uid == os.getuid() and attr.size == 4
    await backend.release(handle)
    with pytest.raises(FileExistsError):
        await backend.create(root, b"mine", os.O_RDWR | os.O_EXCL, 0o600, USER)
    node, attr, handle = await backend.create(root, b"mine", os.O_RDWR | os.O_TRUNC, 0o600, USER)
    assert attr.size == 0 or (await backend.getattr(node, handle)).size == 0
    await backend.release(handle)


async def test_errors_map_to_errno(backend: NfsBackend) -> None:
    root, _ = await backend.root()
    directory, _ = await backend.mkdir(root, b"d", 0o755, USER)
    file, _, handle = await backend.create(directory, b"f", os.O_WRONLY, 0o644, USER)
    await backend.release(handle)
    cases = [
        (errno.ENOENT, lambda: backend.lookup(root, b"missing")),
        (errno.EEXIST, lambda: backend.mkdir(root, b"d", 0o755, USER)),
        (errno.ENOTEMPTY, lambda: backend.rmdir(root, b"d")),
        (errno.EISDIR, lambda: backend.open(directory, os.O_WRONLY, USER)),
        (errno.ENOTDIR, lambda: backend.lookup(file, b"x")),
        (errno.ENOTDIR, lambda: backend.rmdir(directory, b"f")),
        (errno.EINVAL, lambda: backend.rename(root, b"d", root, b"e", 1)),
        (errno.EOPNOTSUPP, lambda: backend.getxattr(file, b"user.x")),
        (errno.EOPNOTSUPP, lambda: backend.setxattr(file, b"user.x", b"1", 0, USER)),
        (errno.EOPNOTSUPP, lambda: backend.listxattr(file)),
        (errno.EOPNOTSUPP, lambda: backend.removexattr(file, b"user.x", USER)),
    ]
    for expected, call in cases:
        with pytest.raises(OSError) as info:
            await call()
        assert info.value.errno == expected, (expected, info.value)
    with pytest.raises(OSError) as info:
        await backend.unlink(root, b"d")
    assert info.value.errno in (errno.EISDIR, errno.EPERM)


async def test_rename_directory_moves_descendants(backend: NfsBackend) -> None:
    root, _ = await backend.root()
    a, _ = await backend.mkdir(root, b"a", 0o755, USER)
    b, _ = await backend.mkdir(a, b"b", 0o755, USER)
    leaf, _, handle = await backend.create(b, b"leaf", os.O_WRONLY, 0o644, USER)
    await backend.write(handle, 0, [buffer(b"x")])
    await backend.release(handle)
    other, _ = await backend.mkdir(root, b"other", 0o755, USER)
    await backend.rename(root, b"a", other, b"moved", 0)
    assert leaf.path == b"/other/moved/b/leaf"
    assert (await backend.getattr(leaf)).size == 1
    again, _ = await backend.lookup(other, b"moved")
    assert again is a
    with pytest.raises(FileNotFoundError):
        await backend.lookup(root, b"a")


async def test_rename_over_existing_file(backend: NfsBackend) -> None:
    root, _ = await backend.root()
    src, _, h1 = await backend.create(root, b"src", os.O_WRONLY, 0o644, USER)
    _, _, h2 = await backend.create(root, b"dst", os.O_WRONLY, 0o644, USER)
    for handle in (h1, h2):
        await backend.release(handle)
    await backend.rename(root, b"src", root, b"dst", 0)
    found, attr = await backend.lookup(root, b"dst")
    assert found is src and attr.ino != 0
    assert [entry.name for entry in await backend.listdir(root)] == [b"dst"]


async def test_hard_links_share_identity(backend: NfsBackend) -> None:
    root, _ = await backend.root()
    node, attr, handle = await backend.create(root, b"one", os.O_WRONLY, 0o644, USER)
    await backend.release(handle)
    linked, link_attr = await backend.link(node, root, b"two", USER)
    assert linked is node
    assert (link_attr.dev, link_attr.ino, link_attr.nlink) == (attr.dev, attr.ino, 2)
    found, found_attr = await backend.lookup(root, b"two")
    assert found is node and found_attr.ino == attr.ino
    await backend.unlink(root, b"one")
    assert (await backend.getattr(node)).nlink == 1


async def test_symlink_mknod_setattr_statfs_listdir(backend: NfsBackend, nfs_dir: Path) -> None:
    root, _ = await backend.root()
    link, attr = await backend.symlink(root, b"l", b"target/path", USER)
    assert stat.S_ISLNK(attr.mode) and attr.uid == 1000
    assert await backend.readlink(link) == b"target/path"
    _, attr = await backend.mknod(root, b"p", stat.S_IFIFO | 0o600, 0, USER)
    assert stat.S_ISFIFO(attr.mode)
    regular, attr = await backend.mknod(root, b"r", stat.S_IFREG | 0o604, 0, USER)
    assert stat.S_ISREG(attr.mode) and stat.S_IMODE(attr.mode) == 0o604
    changes = SetattrChanges(mode=0o4711, size=10, atime=1_000_000_000, mtime="now")
    attr = await backend.setattr(regular, changes, None, USER)
    assert stat.S_IMODE(attr.mode) == 0o4711 and attr.size == 10
    assert attr.atime_ns == 1_000_000_000 and attr.mtime_ns > 1_000_000_000
    attr = await backend.setattr(regular, SetattrChanges(kill_suidgid=True), None, USER)
    assert stat.S_IMODE(attr.mode) == 0o711
    attr = await backend.setattr(regular, SetattrChanges(uid=1234, gid=4321), None, USER)
    assert (attr.uid, attr.gid) == (1234, 4321)
    assert os.stat(nfs_dir / "r").st_uid == 1234
    listing = {entry.name: entry.type for entry in await backend.listdir(root)}
    assert listing == {b"l": 10, b"p": 1, b"r": 8}
    statfs = await backend.statfs(root)
    assert statfs.blocks > 0 and statfs.bsize > 0 and statfs.namelen > 0
    await backend.fsyncdir(root, datasync=False)
    await backend.syncfs()


async def test_lseek_copy_file_range_fallocate(backend: NfsBackend) -> None:
    root, _ = await backend.root()
    _, _, source = await backend.create(root, b"s", os.O_RDWR, 0o644, USER)
    _, _, target = await backend.create(root, b"t", os.O_RDWR, 0o644, USER)
    await backend.write(source, 0, [buffer(b"0123456789")])
    assert await backend.lseek(source, 3, os.SEEK_DATA) == 3
    assert await backend.lseek(source, 3, os.SEEK_HOLE) == 10
    with pytest.raises(OSError) as info:
        await backend.lseek(source, 10, os.SEEK_DATA)
    assert info.value.errno == errno.ENXIO
    assert await backend.copy_file_range(source, 2, target, 1, 100) == 8
    assert await read_all(backend, target, 100) == b"\0" + b"23456789"
    with pytest.raises(OSError) as info:
        await backend.fallocate(target, 0, 0, 4096)
    assert info.value.errno == errno.EOPNOTSUPP
    for handle in (source, target):
        await backend.release(handle)


async def test_large_file(backend: NfsBackend, nfs_dir: Path) -> None:
    size = 8 << 20
    data = os.urandom(size)
    root, _ = await backend.root()
    _, _, handle = await backend.create(root, b"big", os.O_RDWR, 0o644, USER)
    view = memoryview(data)
    assert await backend.write(handle, 0, [view[: 3 << 20], view[3 << 20 :]]) == size
    await backend.fsync(handle, datasync=True)
    assert (nfs_dir / "big").read_bytes() == data
    assert await read_all(backend, handle, size + 1) == data
    await backend.release(handle)


async def test_concurrent_requests_across_contexts(backend: NfsBackend) -> None:
    root, _ = await backend.root()
    count = 64

    async def make(index: int) -> None:
        name = b"f%d" % index
        node, _, handle = await backend.create(root, name, os.O_RDWR, 0o644, USER)
        await backend.write(handle, 0, [buffer(name * 100)])
        assert await read_all(backend, handle, 1000) == name * 100
        await backend.release(handle)
        assert (await backend.lookup(root, name))[0] is node

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(make, index)
    assert len(await backend.listdir(root)) == count
    assert backend.pool.connected > 1
