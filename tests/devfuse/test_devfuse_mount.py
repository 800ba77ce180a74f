"""A real mount through /dev/fuse over a temp dir with the local backend."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

import pytest
import trio

from hostfs.backends.local.backend import LocalBackend
from hostfs.core.filesystem import FileSystem
from hostfs.core.options import FsOptions
from hostfs.devfuse import serve_mount
from hostfs.devfuse.mount import unmount
from hostfs.fuse.init import SessionConfig
from tests.devfuse.mounting import TIMEOUT, Mounted, devfuse_mount, in_thread, is_mounted


async def test_files_and_directories(mounted: Mounted) -> None:
    (mounted.source / "hello").write_bytes(b"hello world")
    mnt = mounted.path

    def work() -> None:
        assert os.listdir(mnt) == ["hello"]
        assert (mnt / "hello").read_bytes() == b"hello world"
        assert os.stat(mnt / "hello").st_ino == os.stat(mounted.source / "hello").st_ino
        big = os.urandom(3 << 20)
        (mnt / "big").write_bytes(big)
        assert (mounted.source / "big").read_bytes() == big
        assert (mnt / "big").read_bytes() == big
        os.mkdir(mnt / "dir", 0o750)
        assert stat.S_IMODE(os.stat(mnt / "dir").st_mode) == 0o750 & ~os.umask(0o22)
        for index in range(300):
            (mnt / "dir" / f"file{index:03d}").write_bytes(b"x" * index)
        assert sorted(os.listdir(mnt / "dir")) == [f"file{i:03d}" for i in range(300)]
        assert os.stat(mnt / "dir" / "file123").st_size == 123
        os.symlink("hello", mnt / "link")
        assert os.readlink(mnt / "link") == "hello"
        os.truncate(mnt / "hello", 5)
        assert (mounted.source / "hello").read_bytes() == b"hello"
        os.utime(mnt / "hello", ns=(10**18, 2 * 10**18))
        assert os.stat(mnt / "hello").st_mtime_ns == 2 * 10**18
        os.chmod(mnt / "hello", 0o600)
        assert stat.S_IMODE(os.stat(mounted.source / "hello").st_mode) == 0o600
        for index in range(300):
            os.unlink(mnt / "dir" / f"file{index:03d}")
        os.rmdir(mnt / "dir")
        os.unlink(mnt / "link")
        with pytest.raises(FileNotFoundError):
            os.stat(mnt / "dir")
        assert sorted(os.listdir(mnt)) == ["big", "hello"]
        assert os.statvfs(mnt).f_bsize > 0

    await in_thread(work)


async def test_rename(mounted: Mounted) -> None:
    def work() -> None:
        (mounted.path / "a").write_bytes(b"a")
        os.mkdir(mounted.path / "d")
        os.rename(mounted.path / "a", mounted.path / "d" / "b")
        assert (mounted.source / "d" / "b").read_bytes() == b"a"

    await in_thread(work)


async def test_xattrs_and_locks(mounted: Mounted) -> None:
    path = mounted.path / "f"

    def work() -> None:
        path.write_bytes(b"data")
        os.setxattr(path, "user.color", b"blue")
        assert os.getxattr(path, "user.color") == b"blue"
        assert "user.color" in os.listxattr(path)
        os.removexattr(path, "user.color")
        with pytest.raises(OSError) as missing:
            os.getxattr(path, "user.color")
        assert missing.value.errno == errno.ENODATA
        with open(path, "r+b") as first, open(path, "r+b") as second:
            fcntl.flock(first, fcntl.LOCK_EX)
            with pytest.raises(BlockingIOError):
                fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(first, fcntl.LOCK_UN)
            fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)

    await in_thread(work)


async def test_unmount_from_outside_ends_the_session(tmp_path: Path) -> None:
    source, mountpoint = tmp_path / "src", tmp_path / "mnt"
    source.mkdir()
    mountpoint.mkdir()
    fs = FileSystem(LocalBackend.from_path(str(source)), FsOptions())
    await fs.start()
    try:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_mount, fs, str(mountpoint))
                await in_thread(lambda: os.listdir(mountpoint))
                await in_thread(lambda: unmount(str(mountpoint)))
    finally:
        if is_mounted(mountpoint):
            unmount(str(mountpoint))
        await fs.close()
    assert not is_mounted(mountpoint)


@pytest.mark.parametrize(
    ("make", "message"),
    [(lambda p: None, "does not exist"), (lambda p: p.write_bytes(b""), "not a directory")],
)
async def test_mount_errors_are_one_line(tmp_path: Path, make, message: str) -> None:
    target = tmp_path / "target"
    make(target)
    fs = FileSystem(LocalBackend.from_path(str(tmp_path)), FsOptions())
    with pytest.raises(OSError, match=message):
        await serve_mount(fs, str(target))
    await fs.close()


async def test_readahead_is_raised_after_init(tmp_path: Path) -> None:
    """The kernel starts a FUSE mount at 128 KiB of readahead and INIT can only lower
    it; the session sets SessionConfig.readahead (4 MiB by default) once INIT is
    answered, so a sequential reader keeps several max_write READs in flight."""

    def knob(path: Path) -> Path:
        st = os.stat(path)
        return Path(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb")

    (tmp_path / "default").mkdir()
    async with devfuse_mount(tmp_path / "default") as mounted:
        assert (await in_thread(lambda: knob(mounted.path).read_text())).strip() == "4096"
    (tmp_path / "two").mkdir()
    async with devfuse_mount(tmp_path / "two", SessionConfig(readahead=2 << 20)) as mounted:
        assert (await in_thread(lambda: knob(mounted.path).read_text())).strip() == "2048"
