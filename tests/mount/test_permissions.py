"""ACCESS, EACCES for unprivileged callers, and who owns what a caller creates.

Each unprivileged step runs in a child that became that user (processes.as_user).
"""

from __future__ import annotations

import errno
import os
import socket
import stat

import pytest

from tests.mount.compare import in_both, lstat_summary, read_file, same, same_error, write_file
from tests.mount.processes import as_user

j = os.path.join

NOBODY = 65534
USER = 1000


def root_owned_tree(base: str) -> None:
    """0644 file, 0755 file, 0755 dir, 0700 dir, all root's; and a 0777 dir for anyone."""
    write_file(j(base, "readable"), b"root data", 0o644)
    os.chmod(j(base, "readable"), 0o644)
    write_file(j(base, "program"), b"#!/bin/true\n", 0o755)
    os.chmod(j(base, "program"), 0o755)
    os.mkdir(j(base, "rootdir"), 0o755)
    os.mkdir(j(base, "private"), 0o700)
    os.chmod(j(base, "private"), 0o700)
    os.mkdir(j(base, "shared"))
    os.chmod(j(base, "shared"), 0o777)


MASKS = {
    "F": os.F_OK,
    "R": os.R_OK,
    "W": os.W_OK,
    "X": os.X_OK,
    "RWX": os.R_OK | os.W_OK | os.X_OK,
}
NAMES = ("readable", "program", "rootdir", "private", "missing")


def access_table(base: str) -> dict[tuple[str, str], bool]:
    return {(name, mask): os.access(j(base, name), MASKS[mask]) for name in NAMES for mask in MASKS}


def test_access_as_root(twin):
    in_both(twin, root_owned_tree)
    table = same(twin, access_table)
    assert table["readable", "W"] and not table["readable", "X"] and table["program", "X"]


def test_access_as_unprivileged_user(twin):
    in_both(twin, root_owned_tree)
    table = same(twin, lambda b: as_user(NOBODY, NOBODY, access_table, b))
    assert table["readable", "R"] and not table["readable", "W"]
    assert not table["private", "R"] and table["program", "X"]


def test_unprivileged_caller_gets_eacces(twin):
    in_both(twin, root_owned_tree)

    def attempt(operation):
        return lambda base: as_user(NOBODY, NOBODY, operation, base)

    same_error(
        twin, attempt(lambda b: os.open(j(b, "readable"), os.O_WRONLY | os.O_APPEND)), errno.EACCES
    )
    same_error(twin, attempt(lambda b: write_file(j(b, "rootdir", "new"))), errno.EACCES)
    same_error(twin, attempt(lambda b: os.mkdir(j(b, "rootdir", "new"))), errno.EACCES)
    same_error(twin, attempt(lambda b: os.unlink(j(b, "readable"))), errno.EACCES)
    same_error(twin, attempt(lambda b: os.listdir(j(b, "private"))), errno.EACCES)
    same_error(twin, attempt(lambda b: os.stat(j(b, "private", "x"))), errno.EACCES)
    same_error(twin, attempt(lambda b: os.truncate(j(b, "readable"), 0)), errno.EACCES)
    assert same(twin, attempt(lambda b: read_file(j(b, "readable")))) == b"root data"


def create_everything(base: str) -> dict[str, dict[str, int]]:
    """A file, dir, symlink, fifo, socket and hard link made by the calling user."""
    write_file(j(base, "file"), b"mine")
    os.mkdir(j(base, "dir"))
    os.symlink("file", j(base, "link"))
    os.mkfifo(j(base, "fifo"))
    os.link(j(base, "file"), j(base, "hard"))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(j(base, "sock"))
    names = ("file", "dir", "link", "fifo", "hard", "sock")
    return {name: lstat_summary(j(base, name)) for name in names}


def owners(directory: str) -> dict[str, tuple[int, int]]:
    return {
        name: (st.st_uid, st.st_gid)
        for name in os.listdir(directory)
        for st in [os.lstat(j(directory, name))]
    }


def test_objects_belong_to_their_creator(twin):
    in_both(twin, root_owned_tree)
    created = same(twin, lambda b: as_user(USER, USER, create_everything, j(b, "shared")))
    assert {(s["st_uid"], s["st_gid"]) for s in created.values()} == {(USER, USER)}
    # The host sees the same owners: the backend gave the objects away.
    assert set(owners(j(twin.host, "shared")).values()) == {(USER, USER)}


def test_setgid_directory_passes_its_group_on(twin):
    group = 4242

    def setgid_dir(base):
        os.mkdir(j(base, "team"))
        os.chown(j(base, "team"), 0, group)
        os.chmod(j(base, "team"), 0o2777)

    in_both(twin, setgid_dir)
    created = same(twin, lambda b: as_user(USER, USER, create_everything, j(b, "team")))
    assert {(s["st_uid"], s["st_gid"]) for s in created.values()} == {(USER, group)}
    assert created["dir"]["st_mode"] & stat.S_ISGID, "a subdirectory inherits setgid"
    host = os.lstat(j(twin.host, "team", "dir"))
    assert (host.st_uid, host.st_gid) == (USER, group) and host.st_mode & stat.S_ISGID


def test_umask_applies_once(twin):
    """The kernel masks the mode with the caller's umask; the backend must not mask again."""

    def run(base):
        def create_with_umask(here):
            os.umask(0o027)
            write_file(j(here, "f"), mode=0o666)
            os.mkdir(j(here, "d"), 0o777)
            return lstat_summary(j(here, "f")), lstat_summary(j(here, "d"))

        os.chmod(base, 0o777)
        return as_user(USER, USER, create_with_umask, base)

    file_stat, dir_stat = same(twin, run)
    assert stat.S_IMODE(file_stat["st_mode"]) == 0o640
    assert stat.S_IMODE(dir_stat["st_mode"]) == 0o750


@pytest.mark.parametrize("engine", ["devfuse", "uring"], indirect=True)
@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_supplementary_group_lets_its_member_create(twin):
    """USER is in the directory's group only through a supplementary group: the kernel
    lets USER create there, and so must the daemon, which creates as USER's fsuid/fsgid.
    FUSE_CREATE_SUPP_GROUP carries the group (fs/fuse/dir.c, get_create_supp_group);
    only hostfs's own codec offers it, and only over the local backend."""
    group = 4343

    def team_dir(base):
        os.mkdir(j(base, "team"))
        os.chown(j(base, "team"), 0, group)
        os.chmod(j(base, "team"), 0o770)

    def create(base):
        write_file(j(base, "file"), b"ours")
        os.mkdir(j(base, "dir"))
        os.symlink("file", j(base, "link"))
        os.mkfifo(j(base, "fifo"))
        return sorted(os.listdir(base))

    in_both(twin, team_dir)
    made = same(twin, lambda b: as_user(USER, USER, create, j(b, "team"), groups=[group]))
    assert made == ["dir", "fifo", "file", "link"]
    assert set(owners(j(twin.host, "team")).values()) == {(USER, USER)}
    # Without the group, both refuse alike.
    same_error(twin, lambda b: as_user(USER, USER, create, j(b, "team")), errno.EACCES)
