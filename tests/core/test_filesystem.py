"""FUSE semantics of the core: lookup counts, handles, directory streams, session end."""

from __future__ import annotations

import errno
import os

import pytest

from hostfs.backends.local import LocalBackend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.types import Caller, SetattrChanges
from tests.support.core import ROOT, open_fds


async def create_file(fs: FileSystem, name: bytes, data: bytes = b"") -> int:
    entry, opened = await fs.create(ROOT, ROOT_NODEID, name, 0o644, os.O_RDWR)
    if data:
        await fs.write(ROOT, entry.nodeid, opened.fh, 0, [memoryview(data)])
    await fs.release(ROOT, entry.nodeid, opened.fh)
    return entry.nodeid


async def test_lookup_counts_and_forget_release_the_node(fs):
    nodeid = await create_file(fs, b"f")
    again = await fs.lookup(ROOT, ROOT_NODEID, b"f")
    assert again.nodeid == nodeid
    assert fs.nodes.get(nodeid).nlookup == 2
    fs.forget(nodeid, 1)
    assert fs.nodes.get(nodeid).nlookup == 1
    fs.batch_forget([(nodeid, 1)])
    with pytest.raises(OSError) as info:
        fs.nodes.get(nodeid)
    assert info.value.errno == errno.ESTALE


async def test_root_is_never_forgotten(fs):
    fs.forget(ROOT_NODEID, 1000)
    assert (await fs.getattr(ROOT, ROOT_NODEID)).attr.is_dir


async def test_hard_links_share_a_nodeid(fs):
    nodeid = await create_file(fs, b"a")
    linked = await fs.link(ROOT, nodeid, ROOT_NODEID, b"b")
    assert linked.nodeid == nodeid
    assert linked.attr.nlink == 2


async def test_rename_on_the_host_keeps_known_nodes_valid(fs, share):
    nodeid = await create_file(fs, b"old", b"content")
    os.rename(os.path.join(share, "old"), os.path.join(share, "new"))
    opened = await fs.open(ROOT, nodeid, os.O_RDONLY)
    buffer = bytearray(16)
    count = await fs.read(ROOT, nodeid, opened.fh, 0, [memoryview(buffer)])
    assert bytes(buffer[:count]) == b"content"
    assert (await fs.lookup(ROOT, ROOT_NODEID, b"new")).nodeid == nodeid


async def test_looking_up_a_known_node_pins_nothing_new(fs, monkeypatch):
    nodeid = await create_file(fs, b"f")
    pinned = []
    full_lookup = fs.backend.lookup

    async def counting_lookup(parent, name):
        pinned.append(name)
        return await full_lookup(parent, name)

    monkeypatch.setattr(fs.backend, "lookup", counting_lookup)
    for _ in range(5):
        assert (await fs.lookup(ROOT, ROOT_NODEID, b"f")).nodeid == nodeid
    assert pinned == []
    assert fs.nodes.get(nodeid).nlookup == 6
    assert (await fs.lookup(ROOT, ROOT_NODEID, b"f")).attr.ino == fs.nodes.get(nodeid).key[1]
    await create_file(fs, b"g")
    fs.forget((await fs.lookup(ROOT, ROOT_NODEID, b"g")).nodeid, 2)
    await fs.lookup(ROOT, ROOT_NODEID, b"g")
    assert pinned == [b"g"]  # forgotten: looked up in full again


async def test_a_name_replaced_on_the_host_is_looked_up_as_the_new_file(fs, share):
    old = await create_file(fs, b"f", b"old")
    with open(os.path.join(share, "g"), "wb") as file:
        file.write(b"new")
    os.rename(os.path.join(share, "g"), os.path.join(share, "f"))
    entry = await fs.lookup(ROOT, ROOT_NODEID, b"f")
    assert entry.nodeid != old
    assert entry.attr.ino == os.stat(os.path.join(share, "f")).st_ino
    opened = await fs.open(ROOT, entry.nodeid, os.O_RDONLY)
    buffer = bytearray(8)
    count = await fs.read(ROOT, entry.nodeid, opened.fh, 0, [memoryview(buffer)])
    assert bytes(buffer[:count]) == b"new"


async def test_a_missing_name_is_enoent_and_pins_nothing(fs):
    fds = open_fds()
    with pytest.raises(FileNotFoundError):
        await fs.lookup(ROOT, ROOT_NODEID, b"absent")
    assert open_fds() == fds and len(fs.nodes) == 1


async def list_dir(fs, fh, offset=0, plus=False, limit=None):
    names = []

    def add(name, ino, dtype, next_offset, entry):
        if limit is not None and len(names) == limit:
            return False
        names.append((name, next_offset, entry))
        return True

    await fs.readdir(ROOT, ROOT_NODEID, fh, offset, add, plus)
    return names


async def test_readdir_offsets_resume_without_repeats_or_gaps(fs):
    for i in range(50):
        await create_file(fs, b"f%d" % i)
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    seen, offset = [], 0
    while True:
        chunk = await list_dir(fs, fh, offset, limit=7)
        if not chunk:
            break
        seen += [name for name, _, _ in chunk]
        offset = chunk[-1][1]
        if offset == 2 + 1:  # the directory changes under the stream
            await create_file(fs, b"late")
            await fs.unlink(ROOT, ROOT_NODEID, b"f0")
    assert sorted(seen) == sorted([b".", b".."] + [b"f%d" % i for i in range(50)])
    await fs.releasedir(ROOT, ROOT_NODEID, fh)


async def test_readdirplus_counts_a_lookup_only_for_entries_sent(fs):
    nodeid = await create_file(fs, b"only")
    fs.forget(nodeid, 1)
    fh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
    after_dots = (await list_dir(fs, fh, limit=2))[-1][1]  # past "." and ".."
    refused = await list_dir(fs, fh, after_dots, plus=True, limit=0)
    assert refused == []
    assert len(fs.nodes) == 1  # the entry that did not fit holds no lookup
    sent = await list_dir(fs, fh, after_dots, plus=True)
    assert [name for name, _, _ in sent] == [b"only"]
    entry = sent[0][2]
    assert fs.nodes.get(entry.nodeid).nlookup == 1


async def test_destroy_releases_every_handle_and_node(share):
    before = open_fds()
    fs = FileSystem(LocalBackend.from_path(share))
    await fs.start()
    for i in range(20):
        entry, opened = await fs.create(ROOT, ROOT_NODEID, b"f%d" % i, 0o600, os.O_RDWR)
        await fs.write(ROOT, entry.nodeid, opened.fh, 0, [memoryview(b"x")])
    await fs.opendir(ROOT, ROOT_NODEID, 0)
    # 20 open files and the directory (a created node holds no O_PATH fd of its own
    # while its inode is known by handle: backends/local/inodes.py, adopt_open)
    assert open_fds() > before + 20
    await fs.destroy()
    assert len(fs.files) == len(fs.dirs) == 0 and len(fs.nodes) == 1
    await fs.close()
    assert open_fds() == before
    with open(os.path.join(share, "f7"), "rb") as f:
        assert f.read() == b"x"


async def test_created_objects_belong_to_the_caller(fs, share):
    user = Caller(1234, 5678, 1)
    os.chmod(share, 0o777)  # the host checks the caller may write there
    entry, _ = await fs.create(user, ROOT_NODEID, b"f", 0o644, os.O_WRONLY)
    directory = await fs.mkdir(user, ROOT_NODEID, b"d", 0o755)
    link = await fs.symlink(user, ROOT_NODEID, b"l", b"f")
    for name in ("f", "d", "l"):
        st = os.lstat(os.path.join(share, name))
        assert (st.st_uid, st.st_gid) == (1234, 5678), name
    assert entry.attr.uid == directory.attr.uid == link.attr.uid == 1234


async def test_write_by_unprivileged_caller_drops_setuid(fs, share):
    entry, opened = await fs.create(ROOT, ROOT_NODEID, b"s", 0o755, os.O_RDWR)
    await fs.setattr(ROOT, entry.nodeid, SetattrChanges(mode=0o4755))
    await fs.write(ROOT, entry.nodeid, opened.fh, 0, [memoryview(b"x")], kill_suidgid=True)
    assert os.stat(os.path.join(share, "s")).st_mode & 0o7777 == 0o755


@pytest.mark.parametrize(("kill_suidgid", "mode"), [(True, 0o755), (False, 0o4755)])
async def test_truncating_open_drops_setuid_only_when_the_kernel_says(
    fs, share, kill_suidgid, mode
):
    """FUSE_OPEN_KILL_SUIDGID decides, not the caller's uid: a caller with
    CAP_FSETID keeps the bits whatever its uid."""
    nodeid = await create_file(fs, b"s", b"program")
    await fs.setattr(ROOT, nodeid, SetattrChanges(mode=0o4755))
    someone = Caller(1000, 1000, 1)
    opened = await fs.open(someone, nodeid, os.O_WRONLY | os.O_TRUNC, kill_suidgid)
    await fs.release(someone, nodeid, opened.fh)
    st = os.stat(os.path.join(share, "s"))
    assert (st.st_size, st.st_mode & 0o7777) == (0, mode)


async def test_unknown_handles_and_nodes_are_errors_not_crashes(fs):
    for call, code in [
        (fs.getattr(ROOT, 999), errno.ESTALE),
        (fs.read(ROOT, 1, 999, 0, [memoryview(bytearray(1))]), errno.EBADF),
        (fs.lookup(ROOT, 999, b"x"), errno.ESTALE),
        (fs.readlink(ROOT, ROOT_NODEID), errno.EINVAL),
    ]:
        with pytest.raises(OSError) as info:
            await call
        assert info.value.errno == code


async def test_xattrs_are_refused_with_enosys_when_off(share):
    fs = FileSystem(LocalBackend.from_path(share))
    await fs.start()
    with pytest.raises(OSError) as info:
        await fs.getxattr(ROOT, ROOT_NODEID, b"user.x")
    assert info.value.errno == errno.ENOSYS
    await fs.close()


async def test_modes_are_exactly_what_the_caller_asked_whatever_our_umask(fs, share):
    """The kernel applied the caller's umask already; ours must not mask again."""
    old = os.umask(0o077)
    try:
        await fs.mkdir(ROOT, ROOT_NODEID, b"d", 0o775)
        await fs.mknod(ROOT, ROOT_NODEID, b"p", 0o010666, 0)
        await fs.create(ROOT, ROOT_NODEID, b"f", 0o664, os.O_RDWR)
    finally:
        os.umask(old)
    modes = {name: os.stat(os.path.join(share, name)).st_mode & 0o7777 for name in "dpf"}
    assert modes == {"d": 0o775, "p": 0o666, "f": 0o664}
    assert os.umask(old) == old  # the process umask is left as it was
