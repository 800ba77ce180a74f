"""The host kernel applies its own rules to each caller, as on a local file system.

A guest kernel that skips ``default_permissions`` must not get more from the
daemon than its user would get from the host kernel: the local backend
creates and changes objects under the caller's filesystem ids, and the core
keeps privileged xattr namespaces to root.  Every check looks at what the
host sees.
"""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

from hostfs.backends.local.credentials import acting_as, fs_ids
from hostfs.core.filesystem import ROOT_NODEID
from hostfs.core.types import SetattrChanges
from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID, Opcode
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.testing.fuse_wire import groups_ext
from tests.backends.local.test_special_files import USER, call_as
from tests.support.core import ROOT
from tests.vhost.conftest import Served, client, guest, served

__all__ = ["client", "guest", "served"]

TEAM = 4321
"""A group USER belongs to only as a supplementary group."""
GROUPS_BEFORE = os.getgroups()

CAPABILITY = b"\x01\x00\x00\x02\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
"""A vfs_cap_data v2 value: cap_setuid=ep (what ``setcap cap_setuid=ep`` writes)."""


@pytest.fixture
def open_share(share) -> str:
    """The share writable by everyone, so that USER may create in it."""
    os.chmod(share, 0o777)
    return share


async def users_file(fs, share, name: bytes = b"mine") -> int:
    entry, opened = await fs.create(USER, ROOT_NODEID, name, 0o644, os.O_RDWR)
    await fs.release(USER, entry.nodeid, opened.fh)
    return entry.nodeid


def test_switch_is_per_thread_and_restored():
    """A thread running already keeps its ids (a thread started inside would
    inherit the switched ones, as clone(2) copies the creator's credentials)."""
    asked, seen_elsewhere = threading.Event(), []

    def other_thread() -> None:
        asked.wait()
        seen_elsewhere.append((fs_ids(), os.getgroups()))

    worker = threading.Thread(target=other_thread)
    worker.start()
    groups = os.getgroups()
    with acting_as(1000, 2000):
        assert fs_ids() == (1000, 2000)
        assert os.getgroups() == []
        asked.set()
        worker.join()
    assert seen_elsewhere == [((0, 0), groups)]
    assert fs_ids() == (0, 0) and os.getgroups() == groups


def test_switch_is_restored_after_an_error():
    with pytest.raises(PermissionError), acting_as(1000, 1000):
        os.mknod("/dev/null-never", stat.S_IFCHR, os.makedev(1, 3))
    assert fs_ids() == (0, 0)


def test_an_invalid_id_is_refused():
    with pytest.raises(OSError) as info, acting_as(0xFFFF_FFFF, 1000):
        pass
    assert info.value.errno == errno.EPERM
    assert fs_ids() == (0, 0)


async def test_created_objects_are_the_callers(fs, open_share):
    await users_file(fs, open_share)
    await fs.mkdir(USER, ROOT_NODEID, b"dir", 0o755)
    await fs.mknod(USER, ROOT_NODEID, b"fifo", stat.S_IFIFO | 0o600, 0)
    await fs.symlink(USER, ROOT_NODEID, b"link", b"mine")
    for name in ("mine", "dir", "fifo", "link"):
        st = os.lstat(os.path.join(open_share, name))
        assert (st.st_uid, st.st_gid) == (USER.uid, USER.gid), name


async def test_creating_needs_write_permission_on_the_directory(fs, share):
    assert stat.S_IMODE(os.stat(share).st_mode) == 0o755
    calls = [
        fs.create(USER, ROOT_NODEID, b"f", 0o644, os.O_RDWR),
        fs.mkdir(USER, ROOT_NODEID, b"d", 0o755),
        fs.mknod(USER, ROOT_NODEID, b"p", stat.S_IFIFO | 0o644, 0),
        fs.symlink(USER, ROOT_NODEID, b"l", b"f"),
    ]
    for call in calls:
        with pytest.raises(PermissionError):
            await call
    assert os.listdir(share) == []


async def test_setgid_directory_gives_its_group(fs, open_share):
    os.mkdir(os.path.join(open_share, "shared"))
    os.chown(os.path.join(open_share, "shared"), 0, 4321)
    os.chmod(os.path.join(open_share, "shared"), 0o2777)
    shared = (await fs.lookup(ROOT, ROOT_NODEID, b"shared")).nodeid
    await fs.mknod(USER, shared, b"f", stat.S_IFREG | 0o644, 0)
    st = os.stat(os.path.join(open_share, "shared", "f"))
    assert (st.st_uid, st.st_gid) == (USER.uid, 4321)


async def test_a_user_cannot_give_its_file_away(fs, open_share):
    nodeid = await users_file(fs, open_share)
    for changes in (SetattrChanges(uid=0, gid=0), SetattrChanges(uid=0), SetattrChanges(gid=0)):
        with pytest.raises(PermissionError):
            await fs.setattr(USER, nodeid, changes)
    st = os.stat(os.path.join(open_share, "mine"))
    assert (st.st_uid, st.st_gid) == (USER.uid, USER.gid)


async def test_setgid_for_a_group_the_user_is_not_in_is_dropped(fs, open_share):
    nodeid = await users_file(fs, open_share)
    os.chown(os.path.join(open_share, "mine"), USER.uid, 0)
    await fs.setattr(USER, nodeid, SetattrChanges(mode=0o6755))
    assert stat.S_IMODE(os.stat(os.path.join(open_share, "mine")).st_mode) == 0o4755


async def test_a_user_cannot_change_someone_elses_file(fs, share):
    with open(os.path.join(share, "roots"), "wb") as file:
        file.write(b"root's")
    nodeid = (await fs.lookup(ROOT, ROOT_NODEID, b"roots")).nodeid
    for changes in (SetattrChanges(mode=0o666), SetattrChanges(size=0), SetattrChanges(mtime=0)):
        with pytest.raises(PermissionError):
            await fs.setattr(USER, nodeid, changes)
    st = os.stat(os.path.join(share, "roots"))
    assert (stat.S_IMODE(st.st_mode), st.st_size) == (0o644, 6) and st.st_mtime_ns != 0


async def test_hard_links_follow_the_hosts_rules(fs, open_share):
    with open(os.path.join(open_share, "secret"), "wb"):
        pass
    os.chmod(os.path.join(open_share, "secret"), 0o600)
    secret = (await fs.lookup(ROOT, ROOT_NODEID, b"secret")).nodeid
    with pytest.raises(PermissionError):  # fs.protected_hardlinks
        await fs.link(USER, secret, ROOT_NODEID, b"stolen")
    mine = await users_file(fs, open_share)
    await fs.link(USER, mine, ROOT_NODEID, b"also-mine")
    assert os.stat(os.path.join(open_share, "also-mine")).st_nlink == 2


@pytest.mark.parametrize("name", [b"security.capability", b"trusted.x", b"security.selinux"])
async def test_privileged_xattrs_are_roots(fs, open_share, name):
    nodeid = await users_file(fs, open_share)
    with pytest.raises(PermissionError):
        await fs.setxattr(USER, nodeid, name, CAPABILITY, 0)
    assert os.fsencode(name) not in map(os.fsencode, os.listxattr(os.path.join(open_share, "mine")))
    with pytest.raises(PermissionError):
        await fs.removexattr(USER, nodeid, name)


async def test_trusted_xattrs_are_invisible_to_users(fs, open_share):
    nodeid = await users_file(fs, open_share)
    await fs.setxattr(ROOT, nodeid, b"trusted.x", b"1", 0)
    await fs.setxattr(USER, nodeid, b"user.y", b"2", 0)
    assert b"trusted.x" in await fs.listxattr(ROOT, nodeid)
    assert await fs.listxattr(USER, nodeid) == [b"user.y"]
    with pytest.raises(OSError) as info:
        await fs.getxattr(USER, nodeid, b"trusted.x")
    assert info.value.errno == errno.ENODATA


async def test_user_xattrs_need_write_permission(fs, share):
    with open(os.path.join(share, "roots"), "wb"):
        pass
    nodeid = (await fs.lookup(ROOT, ROOT_NODEID, b"roots")).nodeid
    with pytest.raises(PermissionError):
        await fs.setxattr(USER, nodeid, b"user.x", b"1", 0)
    assert os.listxattr(os.path.join(share, "roots")) == []


async def test_root_keeps_its_privileges(fs, open_share):
    nodeid = await users_file(fs, open_share)
    await fs.setattr(ROOT, nodeid, SetattrChanges(uid=0, gid=0))
    await fs.setattr(ROOT, nodeid, SetattrChanges(mode=0o6755))
    await fs.setxattr(ROOT, nodeid, b"security.capability", CAPABILITY, 0)
    path = os.path.join(open_share, "mine")
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o6755)
    assert os.getxattr(path, "security.capability") == CAPABILITY


async def test_device_applies_the_callers_rules(client: GuestFuseClient, served: Served):
    os.chmod(served.share, 0o777)
    create = abi.CREATE_IN.pack(os.O_RDWR | os.O_CREAT, 0o644, 0o022, 0) + b"mine\0"
    error, body = await call_as(client, USER, Opcode.CREATE, ROOT_ID, create)
    assert error == 0
    nodeid = abi.ENTRY_OUT.unpack_from(body)[0]
    chown = abi.SETATTR_IN.pack(
        abi.FATTR_UID | abi.FATTR_GID, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    )
    assert (await call_as(client, USER, Opcode.SETATTR, nodeid, chown))[0] == errno.EPERM
    st = os.stat(served.share / "mine")
    assert (st.st_uid, st.st_gid) == (USER.uid, USER.gid)


async def test_a_supplementary_group_lets_its_member_create(fs, share):
    """FUSE_CREATE_SUPP_GROUP: USER is in the directory's group only through a supplementary
    group, which the request carries; with it the host lets USER create, without it not."""
    team = os.path.join(share, "team")
    os.mkdir(team)
    os.chown(team, 0, TEAM)
    os.chmod(team, 0o770)
    nodeid = (await fs.lookup(ROOT, ROOT_NODEID, b"team")).nodeid
    member = USER._replace(groups=(TEAM,))
    assert fs.supplementary_groups
    creations = [
        lambda who, name: fs.create(who, nodeid, name, 0o644, os.O_RDWR),
        lambda who, name: fs.mkdir(who, nodeid, name, 0o755),
        lambda who, name: fs.mknod(who, nodeid, name, stat.S_IFIFO | 0o644, 0),
        lambda who, name: fs.symlink(who, nodeid, name, b"target"),
    ]
    for number, create in enumerate(creations):
        with pytest.raises(PermissionError) as refused:
            await create(USER, b"outsider%d" % number)
        assert refused.value.errno == errno.EACCES
        await create(member, b"member%d" % number)
    assert sorted(os.listdir(team)) == [f"member{n}" for n in range(4)]
    for name in os.listdir(team):
        st = os.lstat(os.path.join(team, name))
        assert (st.st_uid, st.st_gid) == (USER.uid, USER.gid), name
    assert os.getgroups() == GROUPS_BEFORE  # the daemon's own groups are back


async def test_supplementary_group_through_the_device(guest, served):
    """A guest that agreed FUSE_CREATE_SUPP_GROUP sends the parent's group as an extension
    after a creation's arguments (total_extlen), as Linux >= 6.2 does."""
    team = served.share / "team"
    team.mkdir()
    os.chown(team, 0, TEAM)
    os.chmod(team, 0o770)
    fuse = GuestFuseClient(guest)
    agreed = abi.INIT_OUT.unpack(await fuse.init(abi.CREATE_SUPP_GROUP))
    assert agreed[10] << 32 & abi.CREATE_SUPP_GROUP  # flags2
    nodeid = await fuse.lookup(ROOT_ID, b"team")
    user = {"uid": USER.uid, "gid": USER.gid}
    with pytest.raises(OSError) as refused:
        await fuse.mkdir(nodeid, b"outsider", **user)
    assert refused.value.errno == errno.EACCES
    member = {**user, "extensions": groups_ext(TEAM)}
    await fuse.mkdir(nodeid, b"dir", **member)
    await fuse.symlink(nodeid, b"link", b"dir", **member)
    await fuse.create(nodeid, b"file", **member)
    bad = {**user, "extensions": groups_ext(TEAM, count=2)}
    with pytest.raises(OSError) as malformed:
        await fuse.mkdir(nodeid, b"bad", **bad)
    assert malformed.value.errno == errno.EINVAL
    assert sorted(os.listdir(team)) == ["dir", "file", "link"]
    assert {os.lstat(team / name).st_uid for name in os.listdir(team)} == {USER.uid}
