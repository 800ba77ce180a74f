"""Nothing a guest can name reaches outside the shared directory.

The guest is untrusted: it chooses every name and every nodeid.  Symlinks
inside the share that point outside (to a directory beside it, or to "..")
must never be followed by hostfs, whatever operation names them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time

import pytest

from hostfs.core.filesystem import ROOT_NODEID
from hostfs.core.types import SetattrChanges
from tests.support.core import ROOT

BAD_NAMES = [b"", b".", b"..", b"a/b", b"../x", b"/etc", b"x\0y"]


@pytest.fixture
def outside(tmp_path) -> str:
    """A directory beside the share, with a file the guest must never touch."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret").write_bytes(b"secret")
    os.chmod(path / "secret", 0o600)
    return str(path)


def snapshot(directory: str) -> dict:
    result = {}
    for name in sorted(os.listdir(directory)):
        st = os.lstat(os.path.join(directory, name))
        xattrs = os.listxattr(os.path.join(directory, name), follow_symlinks=False)
        result[name] = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, xattrs)
    return result


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_names_that_are_not_one_component_are_refused(fs, name):
    calls = [
        fs.lookup(ROOT, ROOT_NODEID, name),
        fs.mkdir(ROOT, ROOT_NODEID, name, 0o755),
        fs.mknod(ROOT, ROOT_NODEID, name, 0o100644, 0),
        fs.symlink(ROOT, ROOT_NODEID, name, b"target"),
        fs.create(ROOT, ROOT_NODEID, name, 0o644, os.O_RDWR),
        fs.unlink(ROOT, ROOT_NODEID, name),
        fs.rmdir(ROOT, ROOT_NODEID, name),
        fs.rename(ROOT, ROOT_NODEID, name, ROOT_NODEID, b"new"),
        fs.link(ROOT, ROOT_NODEID, ROOT_NODEID, name),
    ]
    for call in calls:
        with pytest.raises(OSError) as info:
            await call
        assert info.value.errno in (errno.EINVAL, errno.EPERM)


@pytest.mark.parametrize("target", ["outside", "outside/secret", "..", "../outside/secret"])
async def test_symlinks_pointing_out_are_never_followed(fs, share, outside, target):
    if target.startswith("outside"):
        target = os.path.join(os.path.dirname(share), target)
    link_target = target
    os.symlink(link_target, os.path.join(share, "link"))
    before = snapshot(outside)

    link = await fs.lookup(ROOT, ROOT_NODEID, b"link")
    assert os.path.islink(os.path.join(share, "link")) and link.attr.mode & 0o170000 == 0o120000
    attempts = [
        fs.lookup(ROOT, link.nodeid, b"secret"),
        fs.create(ROOT, link.nodeid, b"new", 0o644, os.O_RDWR),
        fs.mkdir(ROOT, link.nodeid, b"newdir", 0o755),
        fs.open(ROOT, link.nodeid, os.O_RDWR),
        fs.open(ROOT, link.nodeid, os.O_RDONLY),
        fs.setattr(ROOT, link.nodeid, SetattrChanges(size=0)),
        fs.setattr(ROOT, link.nodeid, SetattrChanges(mode=0o777)),
        fs.setxattr(ROOT, link.nodeid, b"user.x", b"1", 0),
        fs.create(ROOT, ROOT_NODEID, b"link", 0o644, os.O_RDWR | os.O_TRUNC),
        fs.mknod(ROOT, ROOT_NODEID, b"link", 0o100644, 0),
    ]
    for attempt in attempts:
        with pytest.raises(OSError):
            await attempt
    # What does succeed acts on the link itself, never on its target.
    await fs.setattr(ROOT, link.nodeid, SetattrChanges(atime=10**9, mtime=10**9))
    await fs.setattr(ROOT, link.nodeid, SetattrChanges(uid=1000, gid=1000))
    assert os.lstat(os.path.join(share, "link")).st_uid == 1000
    hard = await fs.link(ROOT, link.nodeid, ROOT_NODEID, b"hard")
    assert os.readlink(os.path.join(share, "hard")) == link_target
    assert hard.nodeid == link.nodeid
    assert await fs.readlink(ROOT, link.nodeid) == os.fsencode(link_target)
    assert snapshot(outside) == before
    assert sorted(os.listdir(share)) == ["hard", "link"]


async def test_dangling_symlink_does_not_redirect_a_create(fs, share, outside):
    os.symlink(os.path.join(outside, "planted"), os.path.join(share, "trap"))
    with pytest.raises(OSError) as info:
        await fs.create(ROOT, ROOT_NODEID, b"trap", 0o644, os.O_RDWR)
    assert info.value.errno in (errno.ELOOP, errno.EEXIST)
    assert not os.path.exists(os.path.join(outside, "planted"))


async def test_renames_racing_with_requests_stay_inside(fs, share, outside):
    """The host renames directories while the guest looks names up and creates files:
    hostfs resolves one component at a time from descriptors, so every file still
    lands inside the share, wherever its directory moved to."""
    os.makedirs(os.path.join(share, "a", "b"))
    os.symlink(outside, os.path.join(share, "a", "escape"))
    stop = threading.Event()

    def shuffle() -> None:
        a_b, top = os.path.join(share, "a", "b"), os.path.join(share, "b")
        while not stop.is_set():
            for src, dst in ((a_b, top), (top, a_b)):
                with contextlib.suppress(OSError):
                    os.rename(src, dst)
            # Yield with a/b in place: a busy renamer alone can starve the
            # requests of the GIL at just the moments b is away, and then no
            # create ever races with a rename at all.
            time.sleep(0.0001)

    thread = threading.Thread(target=shuffle)
    thread.start()
    created = 0
    try:
        # Until 100 creates went through, however often the renamer wins on a busy
        # machine (the attempts are bounded, not timed).
        for i in range(30_000):
            if created == 100:
                break
            try:
                a = await fs.lookup(ROOT, ROOT_NODEID, b"a")
                b = await fs.lookup(ROOT, a.nodeid, b"b")
                entry, opened = await fs.create(ROOT, b.nodeid, b"f%d" % i, 0o644, os.O_RDWR)
                await fs.release(ROOT, entry.nodeid, opened.fh)
                created += 1
            except FileNotFoundError:
                continue
    finally:
        stop.set()
        thread.join()
    assert created > 0
    on_host = sum(len(files) for _, _, files in os.walk(share))
    assert on_host == created
    assert os.listdir(outside) == ["secret"]
