"""Identity mapping, read-only and xattr mapping, checked from inside a real guest and on the host.

One boot per policy, each running its workload (guest-images/workloads/idmap.sh,
readonly.sh, xattrmap.sh): every property the guest sees is a named HOSTFS-CHECK,
and the host then checks what the daemon stored (owners, modes, xattr names).
hostfs only: QEMU 7.2's C virtiofsd has no --translate-uid.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from hostfs.core.options import FsOptions
from hostfs.guest.initramfs import GuestSetup, workload_path
from hostfs.guest.qemu import GuestRun
from tests.guest.runs import assert_guest_ok, run_guest

pytestmark = pytest.mark.slow

IDMAP_ARGS = (
    "--translate-uid=map:1000:101000:1000",
    "--translate-gid=map:1000:101000:1000",
    "--translate-uid=forbid-guest:3000:1",
)
FUSE_SUPER_MAGIC = 0x65735546
"""fs/fuse/inode.c: what statfs(2) says a virtiofs mount is."""
SHIFTED_ARGS = ("--translate-uid=map:0:100000:65536", "--translate-gid=map:0:100000:65536")
"""The shift of a user namespace: guest root is host uid 100000."""
XATTRMAP_RULES = ":prefix:all::user.virtiofs.::bad:all:::"
"""virtiofsd's doc/xattr-mapping.md, "Prefix everything": every guest name is stored
under user.virtiofs., and host names without it are hidden."""


async def boot(guest_kernel, share: Path, workload: str, *daemon_args: str) -> GuestRun:
    return await run_guest(
        guest_kernel,
        GuestSetup(workload_path(workload)),
        share,
        "hostfs",
        options=FsOptions(xattr=True),
        daemon_args=daemon_args,
    )


def checks_of(run: GuestRun, workload: str) -> set[str]:
    """The check names the workload script prints (``check NAME`` / ``erofs NAME``)."""
    names = set()
    for line in workload_path(workload).read_text().splitlines():
        words = line.split()
        if len(words) > 1 and words[0] in ("check", "erofs"):
            names.add(words[1])
    return names


def assert_every_check_passed(run: GuestRun, workload: str) -> None:
    """Every check the script names ran and passed (a missing one is a failure too)."""
    assert_guest_ok(run)
    checks = run.report.boots[0].checks
    missing = checks_of(run, workload) - set(checks)
    assert not missing, f"checks that never reported: {sorted(missing)}"


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


async def test_translated_ids_seen_in_the_guest_and_stored_on_the_host(guest_kernel, share):
    (share / "host-owned.txt").write_text("host\n")
    os.chown(share / "host-owned.txt", 101042, 101043)
    (share / "host-unmapped.txt").write_text("host\n")
    os.chown(share / "host-unmapped.txt", 7, 8)

    run = await boot(guest_kernel, share, "idmap", *IDMAP_ARGS)

    assert_every_check_passed(run, "idmap")
    ids = share / "ids"
    assert owner(ids) == (0, 0)  # guest root is outside every range: itself
    assert stat.S_IMODE(os.lstat(ids).st_mode) == 0o1777
    assert owner(ids / "root.txt") == (101000, 101001)  # chown 1000:1001 in the guest
    assert owner(ids / "user.txt") == (101005, 101006)  # created by guest uid 1005:1006
    assert stat.S_IMODE(os.lstat(ids / "user.txt").st_mode) == 0o600
    assert owner(ids / "userdir") == (101005, 101006)
    assert not (ids / "forbidden.txt").exists()
    assert owner(share / "host-owned.txt") == (101042, 101043)


async def test_a_shifted_guest_root_has_the_rights_of_its_host_uid(guest_kernel, share):
    shifted = share / "shifted"
    shifted.mkdir()
    os.chown(shifted, 100000, 100000)
    (share / "host-shifted.txt").write_text("host\n")
    os.chown(share / "host-shifted.txt", 100042, 100043)
    (share / "host-root.txt").write_text("host\n")
    os.chmod(share / "host-root.txt", 0o644)

    run = await boot(guest_kernel, share, "idmap-shifted", *SHIFTED_ARGS)

    assert_every_check_passed(run, "idmap-shifted")
    for path in ("dir", "dir/file.txt", "dir/link"):
        assert owner(shifted / path) == (100000, 100000), path
    assert stat.S_IMODE(os.lstat(shifted / "dir" / "file.txt").st_mode) == 0o600
    # What the map does not stop: OPEN of an existing file runs with the daemon's
    # credentials, as in virtiofsd (which switches them only to create), after the
    # guest kernel's permission checks, which the guest's root passes. So guest root
    # writes a host root's file; only an unprivileged daemon would refuse it.
    assert run.report.boots[0].results["root-wrote-host-root-file"] == "yes"
    assert (share / "host-root.txt").read_text() == "host\nguest\n"


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything a change could touch, per path: type and mode, owner, size, mtime,
    ctime (chmod, chown and xattr changes move it), content or target, xattrs."""
    tree: dict[str, tuple] = {}
    for directory, dirs, files in os.walk(root):
        for name in ["", *dirs, *files]:
            path = os.path.join(directory, name) if name else directory
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            else:
                content = ""
            xattrs = {
                n: os.getxattr(path, n, follow_symlinks=False)
                for n in os.listxattr(path, follow_symlinks=False)
            }
            tree[os.path.relpath(path, root)] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_size,
                st.st_mtime_ns, st.st_ctime_ns, content, sorted(xattrs.items()),
            )  # fmt: skip
    return tree


async def test_readonly_refuses_every_change_and_leaves_the_host_tree_alone(guest_kernel, share):
    ro = share / "ro"
    (ro / "dir").mkdir(parents=True)
    (ro / "file.txt").write_text("original\n")
    os.setxattr(ro / "file.txt", "user.keep", b"1")
    (ro / "link").symlink_to("file.txt")
    before = snapshot(share)

    run = await boot(guest_kernel, share, "readonly", "--readonly")

    assert_every_check_passed(run, "readonly")
    assert snapshot(share) == before
    # Not observable in the guest: fuse_kstatfs has no flags, statfs(2)'s f_flags
    # are the guest's mount flags, and the guest mounted the share rw.
    results = run.report.boots[0].results
    assert results["mount-options"].split(",")[0] == "rw"
    assert results["statfs-type"] == f"{FUSE_SUPER_MAGIC:x}"


async def test_xattrmap_stores_guest_names_under_the_prefix(guest_kernel, share):
    file = share / "xm" / "file.txt"
    file.parent.mkdir()
    file.write_text("x\n")
    os.setxattr(file, "user.hostonly", b"h")
    os.setxattr(file, "user.virtiofs.user.fromhost", b"f")

    run = await boot(guest_kernel, share, "xattrmap", "--xattrmap", XATTRMAP_RULES)

    assert_every_check_passed(run, "xattrmap")
    assert sorted(os.listxattr(file)) == [
        "user.hostonly",
        "user.virtiofs.security.x",
        "user.virtiofs.trusted.x",
        "user.virtiofs.user.fromhost",
        "user.virtiofs.user.x",
    ]
    assert os.getxattr(file, "user.virtiofs.user.x") == b"u"
    assert os.getxattr(file, "user.virtiofs.trusted.x") == b"t"
    assert os.getxattr(file, "user.virtiofs.security.x") == b"s"
