"""create/mkdir/mknod as one CREATE3/MKDIR3 on the parent's filehandle (no worker thread).

Each test also checks the answer against the server's own view (a later
GETATTR and the export directory on the host), so a wrong sattr3, a wrong
reply layout or a wrong ``struct nfsfh`` shows up here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from hostfs.backends.nfs import NfsBackend
from hostfs.backends.nfs.libnfs_c import filehandle_of
from hostfs.core.types import Caller, SetattrChanges, Stat

USER = Caller(1000, 1001, 1)
SAME_AS_OWNER = Caller(os.getuid(), os.getgid(), 1)


@pytest.fixture
def no_worker(backend: NfsBackend, monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """``forbid(True)`` makes any use of the context pool fail the test."""

    async def refuse(call: object) -> None:
        raise AssertionError("went through a worker thread")

    original = backend.pool.run

    def forbid(on: bool) -> None:
        monkeypatch.setattr(backend.pool, "run", refuse if on else original)

    return forbid


def same(a: Stat, b: Stat) -> None:
    fields = ("dev", "ino", "mode", "nlink", "uid", "gid", "size", "mtime_ns", "ctime_ns")
    assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]


async def test_create_sets_owner_and_exact_mode_in_one_call(
    backend: NfsBackend, nfs_dir: Path, no_worker: Callable[[bool], None]
) -> None:
    root, _ = await backend.root()
    no_worker(True)
    node, attr, handle = await backend.create(root, b"f", os.O_RDWR | os.O_EXCL, 0o2741, USER)
    assert stat.S_ISREG(attr.mode) and stat.S_IMODE(attr.mode) == 0o2741
    assert (attr.uid, attr.gid, attr.size, attr.nlink) == (1000, 1001, 0, 1)
    same(attr, await backend.getattr(node))
    no_worker(False)
    on_host = os.stat(nfs_dir / "f")
    assert (on_host.st_uid, on_host.st_gid, on_host.st_mode) == (1000, 1001, attr.mode)
    assert on_host.st_ino == attr.ino
    # The handle made from CREATE3's filehandle does I/O like one from nfs_open.
    assert filehandle_of(handle.nfsfh) == node.filehandle
    data = memoryview(bytearray(b"written"))
    assert await backend.write(handle, 0, [data]) == 7
    await backend.fsync(handle, datasync=False)
    await backend.release(handle)
    assert (nfs_dir / "f").read_bytes() == b"written"


async def test_create_as_the_backends_own_user_sends_no_owner(
    backend: NfsBackend, nfs_dir: Path
) -> None:
    root, _ = await backend.root()
    _, attr, handle = await backend.create(root, b"f", os.O_WRONLY, 0o600, SAME_AS_OWNER)
    await backend.release(handle)
    assert (attr.uid, attr.gid) == (os.getuid(), os.getgid())
    assert stat.S_IMODE(os.stat(nfs_dir / "f").st_mode) == 0o600


async def test_exclusive_create_of_an_existing_file_fails_and_changes_nothing(
    backend: NfsBackend, nfs_dir: Path
) -> None:
    root, _ = await backend.root()
    _, _, handle = await backend.create(root, b"f", os.O_WRONLY, 0o640, USER)
    await backend.write(handle, 0, [memoryview(bytearray(b"keep"))])
    await backend.release(handle)
    with pytest.raises(FileExistsError):
        await backend.create(root, b"f", os.O_RDWR | os.O_EXCL, 0o777, SAME_AS_OWNER)
    after = os.stat(nfs_dir / "f")
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (1000, 1001, 0o640)
    assert (nfs_dir / "f").read_bytes() == b"keep"
    with pytest.raises(FileExistsError):
        await backend.mkdir(root, b"f", 0o755, USER)
    with pytest.raises(FileExistsError):
        await backend.mknod(root, b"f", stat.S_IFREG | 0o644, 0, USER)


async def test_create_opens_an_existing_file_truncating_only_with_o_trunc(
    backend: NfsBackend, nfs_dir: Path
) -> None:
    (nfs_dir / "f").write_bytes(b"old data")
    os.chmod(nfs_dir / "f", 0o604)
    root, _ = await backend.root()
    node, attr, handle = await backend.create(root, b"f", os.O_RDWR, 0o777, USER)
    # Opened as it is: neither the mode nor the owner of the create apply.
    assert (attr.size, attr.uid, stat.S_IMODE(attr.mode)) == (8, os.getuid(), 0o604)
    got = bytearray(100)
    assert await backend.read(handle, 0, [memoryview(got)]) == 8
    await backend.release(handle)
    assert (nfs_dir / "f").read_bytes() == b"old data"
    again, _, handle = await backend.create(root, b"f", os.O_WRONLY | os.O_TRUNC, 0o777, USER)
    assert again is node
    await backend.release(handle)
    assert (nfs_dir / "f").read_bytes() == b""
    assert stat.S_IMODE(os.stat(nfs_dir / "f").st_mode) == 0o604


async def test_mkdir_and_regular_mknod_in_one_call(
    backend: NfsBackend, nfs_dir: Path, no_worker: Callable[[bool], None]
) -> None:
    root, _ = await backend.root()
    no_worker(True)
    directory, attr = await backend.mkdir(root, b"d", 0o1751, USER)
    assert stat.S_ISDIR(attr.mode) and stat.S_IMODE(attr.mode) == 0o1751
    assert (attr.uid, attr.gid) == (1000, 1001)
    same(attr, await backend.getattr(directory))
    regular, attr = await backend.mknod(directory, b"r", stat.S_IFREG | 0o640, 0, USER)
    assert stat.S_ISREG(attr.mode) and stat.S_IMODE(attr.mode) == 0o640
    assert (attr.uid, attr.gid) == (1000, 1001)
    same(attr, await backend.getattr(regular))
    found, _ = await backend.lookup(directory, b"r")
    assert found is regular
    no_worker(False)
    on_host = os.stat(nfs_dir / "d" / "r")
    assert (on_host.st_uid, on_host.st_gid, on_host.st_mode) == (1000, 1001, attr.mode)


async def test_setgid_parent_gives_its_group(backend: NfsBackend, nfs_dir: Path) -> None:
    (nfs_dir / "g").mkdir()
    os.chown(nfs_dir / "g", 0, 4321)
    os.chmod(nfs_dir / "g", 0o2777)
    root, _ = await backend.root()
    parent, _ = await backend.lookup(root, b"g")
    _, attr, handle = await backend.create(parent, b"f", os.O_WRONLY, 0o644, USER)
    await backend.release(handle)
    assert (attr.uid, attr.gid) == (1000, 4321)
    _, attr = await backend.mkdir(parent, b"d", 0o755, USER)
    assert (attr.uid, attr.gid) == (1000, 4321) and attr.mode & stat.S_ISGID


async def test_a_directory_made_setgid_by_setattr_gives_its_group(backend: NfsBackend) -> None:
    root, _ = await backend.root()
    parent, _ = await backend.mkdir(root, b"g", 0o777, USER)
    await backend.setattr(parent, SetattrChanges(mode=0o2777, gid=4321), None, USER)
    _, attr, handle = await backend.create(parent, b"f", os.O_WRONLY, 0o644, USER)
    await backend.release(handle)
    assert (attr.uid, attr.gid) == (1000, 4321)


async def test_handle_layout_matches_libnfs(backend: NfsBackend, nfs_dir: Path) -> None:
    """A handle from nfs_open read through our ``struct nfsfh`` mirror holds the same
    filehandle LOOKUP3 returned: the mirror's layout is libnfs's."""
    (nfs_dir / "f").write_bytes(b"x")
    root, _ = await backend.root()
    node, _ = await backend.lookup(root, b"f")
    handle = await backend.open(node, os.O_RDONLY, USER)
    assert node.filehandle and filehandle_of(handle.nfsfh) == node.filehandle
    await backend.release(handle)
