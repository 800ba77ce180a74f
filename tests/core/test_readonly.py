"""``FsOptions(readonly=True)``: every change to the share is EROFS, reading still works."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from hostfs.backends.local import LocalBackend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.options import FsOptions
from hostfs.core.readonly import CHECKED, REFUSED
from hostfs.core.types import SetattrChanges
from tests.support.core import ROOT

j = os.path.join


@pytest.fixture
async def ro(share):
    with open(j(share, "f"), "wb") as f:
        f.write(b"data")
    os.setxattr(j(share, "f"), "user.kept", b"1")
    os.mkdir(j(share, "d"))
    core = FileSystem(LocalBackend.from_path(share), FsOptions(xattr=True, readonly=True))
    await core.start()
    yield core
    await core.close()


def host_state(share: str) -> tuple:
    path = j(share, "f")
    st = os.stat(path)
    with open(path, "rb") as f:
        data = f.read()
    return sorted(os.listdir(share)), st.st_mode, st.st_size, data, os.listxattr(path)


async def _file(fs: FileSystem) -> tuple[int, int]:
    nodeid = (await fs.lookup(ROOT, ROOT_NODEID, b"f")).nodeid
    return nodeid, (await fs.open(ROOT, nodeid, os.O_RDONLY)).fh


async def _write(fs, f, fh):
    await fs.write(ROOT, f, fh, 0, [memoryview(b"x")])


async def _copy(fs, f, fh):
    await fs.copy_file_range(ROOT, f, fh, 0, f, fh, 4, 4)


CHANGES = {
    "setattr": lambda fs, f, fh: fs.setattr(ROOT, f, SetattrChanges(mode=0o600)),
    "truncate": lambda fs, f, fh: fs.setattr(ROOT, f, SetattrChanges(size=0)),
    "mknod": lambda fs, f, fh: fs.mknod(ROOT, ROOT_NODEID, b"n", stat.S_IFIFO | 0o644, 0),
    "mkdir": lambda fs, f, fh: fs.mkdir(ROOT, ROOT_NODEID, b"n", 0o755),
    "symlink": lambda fs, f, fh: fs.symlink(ROOT, ROOT_NODEID, b"n", b"f"),
    "link": lambda fs, f, fh: fs.link(ROOT, f, ROOT_NODEID, b"n"),
    "unlink": lambda fs, f, fh: fs.unlink(ROOT, ROOT_NODEID, b"f"),
    "rmdir": lambda fs, f, fh: fs.rmdir(ROOT, ROOT_NODEID, b"d"),
    "rename": lambda fs, f, fh: fs.rename(ROOT, ROOT_NODEID, b"f", ROOT_NODEID, b"n"),
    "rename2": lambda fs, f, fh: fs.rename(ROOT, ROOT_NODEID, b"f", ROOT_NODEID, b"d", 2),
    "create": lambda fs, f, fh: fs.create(ROOT, ROOT_NODEID, b"n", 0o644, os.O_WRONLY),
    "write": _write,
    "fallocate": lambda fs, f, fh: fs.fallocate(ROOT, f, fh, 0, 0, 4096),
    "copy_file_range": _copy,
    "setxattr": lambda fs, f, fh: fs.setxattr(ROOT, f, b"user.new", b"1", 0),
    "removexattr": lambda fs, f, fh: fs.removexattr(ROOT, f, b"user.kept"),
    "open-wronly": lambda fs, f, fh: fs.open(ROOT, f, os.O_WRONLY),
    "open-rdwr": lambda fs, f, fh: fs.open(ROOT, f, os.O_RDWR),
    "open-trunc": lambda fs, f, fh: fs.open(ROOT, f, os.O_RDONLY | os.O_TRUNC),
    "access-write": lambda fs, f, fh: fs.access(ROOT, f, os.W_OK),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_every_change_is_erofs_and_the_host_is_untouched(ro, share, change):
    before = host_state(share)
    nodeid, fh = await _file(ro)
    with pytest.raises(OSError) as failure:
        await CHANGES[change](ro, nodeid, fh)
    assert failure.value.errno == errno.EROFS
    assert host_state(share) == before


async def test_reading_still_works(ro):
    nodeid, fh = await _file(ro)
    buffer = bytearray(16)
    count = await ro.read(ROOT, nodeid, fh, 0, [memoryview(buffer)])
    assert bytes(buffer[:count]) == b"data"
    assert await ro.getxattr(ROOT, nodeid, b"user.kept") == b"1"
    assert await ro.listxattr(ROOT, nodeid) == [b"user.kept"]
    await ro.access(ROOT, nodeid, os.R_OK)
    assert (await ro.getattr(ROOT, nodeid)).attr.size == 4
    assert (await ro.statfs(ROOT, ROOT_NODEID)).blocks > 0
    await ro.release(ROOT, nodeid, fh)


async def test_a_writable_core_is_not_affected(fs, share):
    entry, opened = await fs.create(ROOT, ROOT_NODEID, b"n", 0o644, os.O_WRONLY)
    assert await fs.write(ROOT, entry.nodeid, opened.fh, 0, [memoryview(b"x")]) == 1
    assert os.path.exists(j(share, "n"))


def test_the_rule_names_real_operations():
    for name in REFUSED | CHECKED.keys():
        assert callable(getattr(FileSystem, name)), name
