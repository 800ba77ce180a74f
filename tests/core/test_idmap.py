"""``--translate-uid``/``--translate-gid``: virtiofsd's syntax, and the core applying it."""

from __future__ import annotations

import errno
import os

import pytest

from hostfs.backends.local import LocalBackend
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.idmap import HostCaller, IdMap, IdMapError, IdMapping
from hostfs.core.options import FsOptions
from hostfs.core.types import Caller, SetattrChanges
from tests.support.core import ROOT

# -- the parser and the map -------------------------------------------------------


def test_guest_maps_guest_ids_to_host_ids_one_way():
    ids = IdMap.parse(["guest:0:1000:10"])
    assert [ids.host(0), ids.host(9), ids.host(10)] == [1000, 1009, 10]
    assert ids.guest(1000) == 1000  # the host side is not translated back


def test_host_maps_host_ids_to_guest_ids_one_way():
    ids = IdMap.parse(["host:1000:0:10"])
    assert [ids.guest(1000), ids.guest(1009), ids.guest(1010)] == [0, 9, 1010]
    assert ids.host(0) == 0


def test_squash_guest_and_squash_host():
    ids = IdMap.parse(["squash-guest:0:1000:65536", "squash-host:1:65534:99"])
    assert [ids.host(0), ids.host(65535), ids.host(65536)] == [1000, 1000, 65536]
    assert [ids.guest(1), ids.guest(99), ids.guest(100)] == [65534, 65534, 100]


def test_map_is_both_directions():
    ids = IdMap.parse(["map:0:100000:65536"])
    assert (ids.host(0), ids.host(65535), ids.guest(100000), ids.guest(165535)) == (
        100000,
        165535,
        0,
        65535,
    )
    assert ids.host(70000) == 70000 and ids.guest(5) == 5


def test_forbid_guest_is_eperm():
    ids = IdMap.parse(["forbid-guest:1000:2"])
    for forbidden in (1000, 1001):
        with pytest.raises(OSError) as failure:
            ids.host(forbidden)
        assert failure.value.errno == errno.EPERM
    assert ids.host(1002) == 1002


def test_any_separator_and_any_case_of_the_type_as_virtiofsd():
    assert IdMap.parse(["MAP/0/100/5"]) == IdMap.parse(["map:0:100:5"])


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["both:0:1:1"], "unknown type 'both'"),
        (["guest:0:1"], "guest takes 3 numbers, not 2"),
        (["forbid-guest:0:1:1"], "forbid-guest takes 2 numbers, not 3"),
        (["guest:0:x:1"], "'x' is not an id"),
        (["guest:0:-1:1"], "'-1' is not an id"),
        (["guest:0:4294967296:1"], "is not an id"),
        (["guest:4294967295:0:2"], "goes past"),
        (["guest:0:1:0"], "at least 1"),
        (["guest:0:100:10", "squash-guest:5:1:1"], "overlaps"),
        (["map:0:100:10", "host:105:0:1"], "overlaps"),
        (["guest"], "expected TYPE:FIRST:TARGET:COUNT"),
    ],
)
def test_malformed(specs, message):
    with pytest.raises(IdMapError, match=message):
        IdMap.parse(specs)


def test_ranges_of_different_directions_may_overlap():
    ids = IdMap.parse(["guest:0:1000:10", "host:0:1000:10"])
    assert ids.host(0) == 1000 and ids.guest(0) == 1000


def test_a_translated_caller_is_not_translated_again():
    mapping = IdMapping(IdMap.parse(["guest:0:1:10"]), IdMap())
    host = mapping.caller_to_host(Caller(0, 0, 7))
    assert host == Caller(1, 0, 7) and isinstance(host, HostCaller)
    assert mapping.caller_to_host(host) == Caller(1, 0, 7)


def test_supplementary_groups_are_translated_and_forbidden_ones_dropped():
    mapping = IdMapping(IdMap(), IdMap.parse(["guest:100:5000:10", "forbid-guest:7:1"]))
    host = mapping.caller_to_host(Caller(0, 100, 7, (101, 7, 42)))
    assert host == Caller(0, 5000, 7, (5001, 42))


# -- through the core, on a real directory (as root) ---------------------------------


def mapping(uids: list[str], gids: list[str]) -> IdMapping:
    return IdMapping(IdMap.parse(uids), IdMap.parse(gids))


@pytest.fixture
async def translated(share):
    # The host checks the mapped ids' permissions (the backend acts as them): the
    # share must let any host uid create, as a share for a mapped guest would.
    os.chmod(share, 0o1777)
    ids = mapping(["map:0:100000:65536", "forbid-guest:70000:1"], ["map:0:200000:65536"])
    core = FileSystem(LocalBackend.from_path(share), FsOptions(ids=ids))
    await core.start()
    yield core
    await core.close()


async def test_create_is_owned_by_mapped_host_ids_guest_sees_its_own(translated, share):
    guest = Caller(1000, 1000, 1)
    entry, opened = await translated.create(guest, ROOT_NODEID, b"f", 0o644, os.O_WRONLY)
    await translated.release(guest, entry.nodeid, opened.fh)
    host = os.stat(os.path.join(share, "f"))
    assert (host.st_uid, host.st_gid) == (101000, 201000)
    assert (entry.attr.uid, entry.attr.gid) == (1000, 1000)
    attr = (await translated.getattr(guest, entry.nodeid)).attr
    assert (attr.uid, attr.gid) == (1000, 1000)
    looked_up = (await translated.lookup(guest, ROOT_NODEID, b"f")).attr
    assert (looked_up.uid, looked_up.gid) == (1000, 1000)


async def test_mkdir_as_guest_root(translated, share):
    entry = await translated.mkdir(ROOT, ROOT_NODEID, b"d", 0o755)
    host = os.stat(os.path.join(share, "d"))
    assert (host.st_uid, host.st_gid) == (100000, 200000)
    assert (entry.attr.uid, entry.attr.gid) == (0, 0)


async def test_chown_takes_guest_ids(share):
    # Guest root stays host root here: a guest root mapped to an unprivileged host uid
    # acts with that uid's rights (the backend runs as it), so it may not chown at all.
    ids = mapping(["map:0:0:1", "map:1:100001:65535"], ["map:0:0:1", "map:1:200001:65535"])
    core = FileSystem(LocalBackend.from_path(share), FsOptions(ids=ids))
    await core.start()
    try:
        entry = await core.mkdir(ROOT, ROOT_NODEID, b"d", 0o755)
        reply = await core.setattr(ROOT, entry.nodeid, SetattrChanges(uid=5, gid=6))
    finally:
        await core.close()
    host = os.stat(os.path.join(share, "d"))
    assert (host.st_uid, host.st_gid) == (100005, 200006)
    assert (reply.attr.uid, reply.attr.gid) == (5, 6)


async def test_a_mapped_guest_root_cannot_chown(translated, share):
    entry = await translated.mkdir(ROOT, ROOT_NODEID, b"d", 0o755)
    with pytest.raises(PermissionError):
        await translated.setattr(ROOT, entry.nodeid, SetattrChanges(uid=5, gid=6))
    host = os.stat(os.path.join(share, "d"))
    assert (host.st_uid, host.st_gid) == (100000, 200000)


async def test_readdirplus_entries_show_guest_ids(translated, share):
    await translated.mkdir(ROOT, ROOT_NODEID, b"d", 0o755)
    opened = await translated.opendir(ROOT, ROOT_NODEID, 0)
    seen = {}

    def add(name, ino, dtype, offset, entry):
        if entry is not None:
            seen[name] = (entry.attr.uid, entry.attr.gid)
        return True

    await translated.readdir(ROOT, ROOT_NODEID, opened.fh, 0, add, True)
    assert seen == {b"d": (0, 0)}


async def test_a_forbidden_guest_uid_may_not_create_or_be_chowned_to(translated, share):
    with pytest.raises(OSError) as failure:
        await translated.mkdir(Caller(70000, 0, 1), ROOT_NODEID, b"d", 0o755)
    assert failure.value.errno == errno.EPERM
    assert os.listdir(share) == []
    entry = await translated.mkdir(ROOT, ROOT_NODEID, b"d", 0o755)
    with pytest.raises(OSError) as failure:
        await translated.setattr(ROOT, entry.nodeid, SetattrChanges(uid=70000))
    assert failure.value.errno == errno.EPERM
    assert os.stat(os.path.join(share, "d")).st_uid == 100000
    # Reading is not acting as the forbidden id: it works, as in virtiofsd.
    assert (await translated.getattr(Caller(70000, 0, 1), entry.nodeid)).attr.uid == 0
