"""A real guest against ``hostfs serve`` started by an ordinary user (``--uid-map``).

QEMU runs as root and connects to the user's socket; the guest's root creates files
(guest-images/workloads/owner.sh) that the host sees owned by that user.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostfs.core.options import FsOptions
from hostfs.guest.initramfs import GuestSetup, workload_path
from hostfs.guest.qemu import GuestRun
from tests.guest.runs import assert_guest_ok, run_guest

pytestmark = pytest.mark.slow

USER = 4242


@pytest.fixture
def users_share() -> Iterator[Path]:
    """The share in a folder of USER's (pytest's tmp_path is under root's 0700 folder)."""
    home = Path(tempfile.mkdtemp(prefix="hostfs-userns-guest-", dir="/tmp"))
    share = home / "share"
    share.mkdir()
    for path in (home, share):
        os.chown(path, USER, USER)
    try:
        yield share
    finally:
        shutil.rmtree(home)


async def boot_as_user(guest_kernel, share: Path, workload: str) -> GuestRun:
    return await run_guest(
        guest_kernel,
        GuestSetup(workload_path(workload)),
        share,
        "hostfs",
        options=FsOptions(xattr=True),
        daemon_user=(USER, USER),
        daemon_args=(f"--uid-map=:0:{USER}:1:", f"--gid-map=:0:{USER}:1:"),
    )


async def test_guest_root_creates_as_the_user(guest_kernel, users_share):
    run = await boot_as_user(guest_kernel, users_share, "owner")
    assert_guest_ok(run)
    # The guest sees its own root; the host sees the user.
    assert run.report.boots[0].results["guest-owner"] == "0:0"
    owned = users_share / "owned"
    assert sorted(os.listdir(owned)) == ["fifo", "file", "link"]
    for path in (owned, *owned.iterdir()):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (USER, USER), path


async def test_the_smoke_workload_passes_unprivileged(guest_kernel, users_share):
    """Every file operation of the smoke workload (links, xattrs, sparse files, renames)
    under the seccomp filter and the capabilities of the user namespace."""
    run = await boot_as_user(guest_kernel, users_share, "smoke")
    assert_guest_ok(run)
    smoke = users_share / "smoke"
    assert os.path.samefile(smoke / "renamed.txt", smoke / "hard.txt")
    assert {os.lstat(smoke / name).st_uid for name in os.listdir(smoke)} == {USER}
