"""A real guest runs guest-images/workloads/smoke.sh; the host then checks the share."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.guest.runs import DAEMONS, assert_guest_ok

pytestmark = pytest.mark.slow

FROM_HOST = b"written on the host, read in the guest\n"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("daemon", DAEMONS)
async def test_smoke_workload_leaves_its_files_on_the_host(boot_guest, share, daemon):
    (share / "from-host.txt").write_bytes(FROM_HOST)
    run = await boot_guest(daemon, "smoke")
    assert_smoke_files(run, share)


async def test_smoke_workload_without_sandbox_or_seccomp(boot_guest, share):
    """The same workload with both of serve's barriers off (every other guest test runs
    with the defaults, namespace and kill): nothing in the request path needs them."""
    (share / "from-host.txt").write_bytes(FROM_HOST)
    run = await boot_guest("hostfs", "smoke", daemon_args=("--sandbox=none", "--seccomp=none"))
    assert_smoke_files(run, share)


def assert_smoke_files(run, share: Path) -> None:
    assert_guest_ok(run)
    results = run.report.boots[0].results
    assert results["from-host"] == hashlib.md5(FROM_HOST).hexdigest()
    smoke = share / "smoke"
    assert sorted(os.listdir(smoke)) == [
        "dir",
        "hard.txt",
        "link.txt",
        "random.bin",
        "renamed.txt",
        "sparse.bin",
    ]
    assert (smoke / "renamed.txt").read_text() == "hello virtio-fs, again\n"
    assert (smoke / "renamed.txt").stat().st_mode & 0o777 == 0o640
    assert os.path.samefile(smoke / "renamed.txt", smoke / "hard.txt")
    assert os.readlink(smoke / "link.txt") == "renamed.txt"
    assert md5(smoke / "random.bin") == results["random"]
    assert (smoke / "random.bin").stat().st_mtime == pytest.approx(981173106)
    assert (smoke / "sparse.bin").stat().st_size == 1000
    assert os.getxattr(smoke / "renamed.txt", "user.hostfs") == b"smoke"
    assert not (share / ".hostfs-guest-boot").exists()
