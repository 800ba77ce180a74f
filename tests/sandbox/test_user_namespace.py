"""``hostfs serve`` started by an ordinary user: a user namespace of its own (``--uid-map``)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID
from hostfs.testing.fuse_client import FuseError
from hostfs.testing.fuse_wire import groups_ext
from hostfs.testing.unprivileged import plain_exec_as, serve_as
from tests.support.serve import round_trip, serving

USER = 4242
"""An ordinary user with no name, no groups, and nothing of its own but the test's folder."""
CAP_SYS_ADMIN = 21
SUPP = abi.CREATE_SUPP_GROUP
MAPS = (f"--uid-map=:0:{USER}:1:", f"--gid-map=:0:{USER}:1:")


@pytest.fixture
def home() -> Iterator[Path]:
    """A folder of USER's under /tmp (pytest's tmp_path lies under root's 0700 folder), with
    the share in it; the daemon's socket goes there too."""
    path = Path(tempfile.mkdtemp(prefix="hostfs-userns-", dir="/tmp"))
    (path / "share").mkdir()
    for each in (path, path / "share"):
        os.chown(each, USER, USER)
    try:
        yield path
    finally:
        shutil.rmtree(path)


async def test_guest_root_creates_as_the_user(home: Path) -> None:
    share = home / "share"
    serve = serve_as(USER, USER)
    async with serving(home, str(share), *MAPS, serve=serve, init_flags=SUPP) as daemon:
        # One own id mapped: setgroups is "deny", so no groups to give (no flag offered).
        assert not daemon.init_flags & SUPP
        # Outside, both processes are the user, with no capability over the host.
        for pid in (daemon.process.pid, daemon.pid):
            assert _status(pid, "Uid") == _status(pid, "Gid") == "\t".join([str(USER)] * 4)
        assert _status(daemon.process.pid, "CapEff") == "0000000000000000"
        # The daemon's capabilities are over its own namespace; even those, reduced.
        assert not int(_status(daemon.pid, "CapBnd"), 16) & (1 << CAP_SYS_ADMIN)
        assert daemon.namespace("user") != os.readlink("/proc/self/ns/user")
        assert os.path.samefile(f"/proc/{daemon.pid}/root", share)
        fuse = daemon.fuse
        await round_trip(fuse, b"file", b"made by the guest's root")
        await fuse.mkdir(ROOT_ID, b"dir", uid=0, gid=0)
        await fuse.symlink(ROOT_ID, b"link", b"file", uid=0, gid=0)
        # A guest uid the map does not cover cannot act: an errno, and the daemon goes on.
        with pytest.raises(FuseError) as refused:
            await fuse.mkdir(ROOT_ID, b"unmapped", uid=1000, gid=1000)
        assert refused.value.errno in (errno.EPERM, errno.EOVERFLOW, errno.EINVAL)
        await fuse.mkdir(ROOT_ID, b"after", uid=0, gid=0)
    for name in ("file", "dir", "link", "after"):
        st = os.lstat(share / name)
        assert (st.st_uid, st.st_gid) == (USER, USER), name
    assert not (share / "unmapped").exists()


async def test_no_map_serves_as_the_user_itself(home: Path) -> None:
    """virtiofsd's default: the user's own ids mapped to themselves."""
    share = home / "share"
    async with serving(home, str(share), serve=serve_as(USER, USER)) as daemon:
        assert daemon.namespace("user") != os.readlink("/proc/self/ns/user")
        nodeid = await daemon.fuse.mkdir(ROOT_ID, b"own", uid=USER, gid=USER)
        assert nodeid
    assert os.stat(share / "own").st_uid == USER


async def test_sandbox_none_runs_as_the_user(home: Path) -> None:
    """virtiofsd: unconfined, an ordinary user's daemon keeps its ids and changes no
    capability; whatever the guest's ids, files are the user's."""
    share = home / "share"
    flags = ("--sandbox", "none")
    async with serving(home, str(share), *flags, serve=serve_as(USER, USER)) as daemon:
        assert daemon.pid == daemon.process.pid
        await daemon.fuse.mkdir(ROOT_ID, b"unconfined", uid=0, gid=0)
    assert os.stat(share / "unconfined").st_uid == USER


RANGE_USER = "hostfs-userns"
"""A named system user (newuidmap looks its ranges up by name) with subordinate ids."""
RANGE_UID = 4243
SUBORDINATE = 300000
"""Its /etc/subuid and /etc/subgid range: SUBORDINATE .. SUBORDINATE+999."""


@pytest.fixture
def range_user() -> tuple[int, int]:
    """RANGE_USER, made (useradd, usermod --add-subuids) if missing: only root may."""
    assert shutil.which("newuidmap"), "newuidmap is missing: scripts/setup installs uidmap"
    if subprocess.run(["id", "-u", RANGE_USER], capture_output=True).returncode:
        subprocess.run(
            ["useradd", "--system", "--uid", str(RANGE_UID), "--user-group", "--no-create-home",
             RANGE_USER],
            check=True,
        )  # fmt: skip
    line = f"{RANGE_USER}:{SUBORDINATE}:1000"
    for kind in ("uid", "gid"):
        if line not in Path(f"/etc/sub{kind}").read_text().splitlines():
            span = f"{SUBORDINATE}-{SUBORDINATE + 999}"
            subprocess.run(["usermod", f"--add-sub{kind}s", span, RANGE_USER], check=True)
    ids = [subprocess.run(["id", flag, RANGE_USER], capture_output=True, text=True).stdout
           for flag in ("-u", "-g")]  # fmt: skip
    return int(ids[0]), int(ids[1])


async def test_a_range_goes_through_newuidmap(home: Path, range_user: tuple[int, int]) -> None:
    """:0:SUBORDINATE:1000: is not the user's own id: virtiofsd's newuidmap/newgidmap path.
    Guest ids 0..999 become host ids SUBORDINATE.. ; beyond the range, an errno."""
    share = home / "share"
    os.chown(home, *range_user)
    os.chmod(home, 0o777)  # the supervisor, SUBORDINATE by now, removes the user's socket
    os.chown(share, SUBORDINATE, SUBORDINATE)
    maps = (f"--uid-map=:0:{SUBORDINATE}:1000:", f"--gid-map=:0:{SUBORDINATE}:1000:")
    serve = serve_as(*range_user)
    async with serving(home, str(share), *maps, serve=serve, init_flags=SUPP) as daemon:
        # newgidmap leaves setgroups allowed: the daemon can give a caller its groups.
        assert daemon.init_flags & SUPP
        assert _status(daemon.pid, "Uid") == "\t".join([str(SUBORDINATE)] * 4)
        fuse = daemon.fuse
        await fuse.mkdir(ROOT_ID, b"root", uid=0, gid=0)
        root = await fuse.lookup(ROOT_ID, b"root")
        os.chmod(share / "root", 0o777)
        await fuse.mkdir(root, b"five", uid=5, gid=7)
        with pytest.raises(FuseError) as refused:
            await fuse.mkdir(root, b"beyond", uid=1000, gid=1000)
        assert refused.value.errno in (errno.EPERM, errno.EOVERFLOW, errno.EINVAL)
        # A group dir (guest gid 50) that guest uid 5 may enter only as a supplementary member.
        await fuse.mkdir(root, b"team", 0o770, uid=0, gid=50)
        team = await fuse.lookup(root, b"team")
        with pytest.raises(FuseError) as outsider:
            await fuse.mkdir(team, b"outsider", uid=5, gid=7)
        assert outsider.value.errno == errno.EACCES
        await fuse.mkdir(team, b"member", uid=5, gid=7, extensions=groups_ext(50))
    assert os.stat(share / "root").st_uid == SUBORDINATE
    assert os.listdir(share / "root" / "team") == ["member"]
    five = os.stat(share / "root" / "five")
    assert (five.st_uid, five.st_gid) == (SUBORDINATE + 5, SUBORDINATE + 7)
    assert not (share / "root" / "beyond").exists()


def test_a_range_outside_subuid_is_one_line(home: Path, range_user: tuple[int, int]) -> None:
    os.chown(home, *range_user)
    command = [*serve_as(*range_user), "--shared-dir", str(home / "share")]
    command += ["--socket-path", str(home / "fs.sock"), "--uid-map=:0:500000:10:"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]  # after the socket's INFO line
    assert last.startswith("hostfs-vhost-user-fs: error: --sandbox namespace: newuidmap "), last
    assert not (home / "fs.sock").exists()


def _serve_fails(home: Path, *flags: str) -> str:
    command = [*serve_as(USER, USER), "--shared-dir", str(home / "share")]
    command += ["--socket-path", str(home / "fs.sock"), *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert not (home / "fs.sock").exists()
    return result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--sandbox", "none", MAPS[0]), "--uid-map needs --sandbox namespace"),
        (("--sandbox", "chroot"), "--sandbox chroot needs root"),
        (("--uid-map", "0:4242:1"), "--uid-map: '0:4242:1' is not :namespace_id:host_id:count:"),
        (("--gid-map", ":0:4242:0:"), "count at least 1"),
    ],
    ids=["none-with-map", "chroot", "syntax", "count"],
)
def test_one_line_exit_2(home: Path, flags: tuple[str, ...], message: str) -> None:
    assert message in _serve_fails(home, *flags)


REFUSE_UNSHARE = """
import ctypes
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
context = ctypes.c_void_p(lib.seccomp_init(ctypes.c_uint32(0x7FFF0000)))  # SCMP_ACT_ALLOW
unshare = lib.seccomp_syscall_resolve_name(b"unshare")
assert lib.seccomp_rule_add(context, ctypes.c_uint32(0x00050000 | 1), unshare, 0) == 0  # EPERM
assert lib.seccomp_load(context) == 0
"""
"""What a container runtime's seccomp profile does (Docker's refuses CLONE_NEWUSER): EPERM."""


def test_user_namespaces_refused_is_one_line(home: Path) -> None:
    command = serve_as(USER, USER)
    script = command.index("-c") + 1
    command[script] = REFUSE_UNSHARE + command[script]
    command += ["--shared-dir", str(home / "share"), "--socket-path", str(home / "fs.sock")]
    result = subprocess.run([*command, *MAPS], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "hostfs-vhost-user-fs: error: --sandbox namespace: cannot create a user namespace as "
        "uid 4242: Operation not permitted: unprivileged user namespaces refused here (a "
        "container, a chroot, kernel.apparmor_restrict_unprivileged_userns) (try --sandbox none)"
    )
    assert not (home / "fs.sock").exists()


def test_root_is_told_to_translate(tmp_path: Path) -> None:
    from tests.support.serve import SERVE

    share = tmp_path / "share"
    share.mkdir()
    command = [*SERVE, "--shared-dir", str(share), "--socket-path", str(tmp_path / "s.sock")]
    result = subprocess.run([*command, MAPS[0]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--uid-map is for a daemon started by an ordinary user" in result.stderr


def _status(pid: int, field: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return value.strip()
    raise KeyError(field)


def test_the_daemons_process_is_the_users_own() -> None:
    """The command serve_as gives is the user's process before it reads an argument:
    a plain exec as the user where the user can reach an interpreter and this checkout
    (here: Debian's python3), else root that becomes the user right after importing."""
    probe = "import os, sys; print(os.getuid(), os.getgid(), os.getgroups(), sys.argv[1:])"
    command = serve_as(USER, USER)
    script = command.index("-c") + 1
    command[script] = command[script].replace("sys.exit(main())", probe)
    result = subprocess.run([*command, "--flag"], capture_output=True, text=True, timeout=60)
    assert result.stdout == f"{USER} {USER} [] ['--flag']\n", result.stderr
    if plain_exec_as(USER, USER) is not None:
        assert command[0].endswith("setpriv")
