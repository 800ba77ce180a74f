"""Two real guests, each with its own ``hostfs serve`` on one directory, and a host
process: a lock taken in one guest blocks the other guest and the host, and the
host's lock blocks the guests (``--locks host``, the default), as libvirt runs two
VMs on one share.  Once with flock(2) locks (util-linux ``flock``: Debian's busybox
has no flock applet) and once with POSIX record locks (``posixlock``, from
guest-images/tools: no guest tool takes fcntl locks); the workload is tests/guest/workloads/
two_guest_locks.sh.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest
import trio

from hostfs.core.options import FsOptions
from hostfs.guest.initramfs import GuestSetup
from hostfs.guest.qemu import GuestRun, run_guest
from tests.guest.runs import assert_guest_ok
from tests.support.host_locks import host_try

pytestmark = pytest.mark.slow

WORKLOADS = Path(__file__).parent / "workloads"
KINDS = ("flock", "posix")
TIMEOUT = 900.0
"""Two TCG guests boot at once on a shared CI machine."""


def host_lock(path: Path, kind: str) -> int:
    fd = os.open(path, os.O_RDWR)
    (fcntl.flock if kind == "flock" else fcntl.lockf)(fd, fcntl.LOCK_EX)
    return fd


async def run_two_guests(
    guest_kernel, share: Path, options: FsOptions
) -> tuple[dict[str, GuestRun], dict[str, str]]:
    """Boot holder and contender at once; the host probes each guest lock while it is held."""
    runs: dict[str, GuestRun] = {}
    probes: dict[str, str] = {}

    async def guest(role: str) -> None:
        setup = GuestSetup(
            WORKLOADS / "two_guest_locks.sh",
            environment={"HOSTFS_LOCK_ROLE": role},
        )
        runs[role] = await run_guest(
            guest_kernel, setup, share, "hostfs", timeout=TIMEOUT, options=options
        )

    async def host_probes() -> None:
        for kind in KINDS:
            while not (share / f"{kind}-held").exists():
                await trio.sleep(0.2)
            # The holder keeps its lock until this marker exists.
            probes[kind] = host_try(share / f"guest-{kind}.lock", kind)
            (share / f"{kind}-host-probed").write_text("probed\n")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(guest, "holder")
        nursery.start_soon(guest, "contender")
        nursery.start_soon(host_probes)
        with trio.move_on_after(TIMEOUT + 60):
            while len(runs) < 2:
                await trio.sleep(1)
        nursery.cancel_scope.cancel()
    return runs, probes


async def test_locks_hold_across_two_guests_and_the_host(guest_kernel, share) -> None:
    held_by_host = []
    for kind in KINDS:
        for name in (f"guest-{kind}.lock", f"host-{kind}.lock"):
            (share / name).write_bytes(b"")
        held_by_host.append(host_lock(share / f"host-{kind}.lock", kind))
    try:
        runs, probes = await run_two_guests(guest_kernel, share, FsOptions())
    finally:
        for fd in held_by_host:
            os.close(fd)
    for role in ("holder", "contender"):
        assert role in runs, f"the {role} guest never finished"
        assert_guest_ok(runs[role])
    holder, contender = runs["holder"].report.boots[0], runs["contender"].report.boots[0]
    for kind in KINDS:
        assert holder.checks[f"{kind}-host-refuses-guest"] == "ok"
        assert contender.checks[f"{kind}-holder-refuses-contender"] == "ok"
        assert contender.checks[f"{kind}-waits-for-release"] == "ok"
    assert probes == {kind: errno.errorcode[errno.EAGAIN] for kind in KINDS}
    # Both daemons are gone, and every lock with them.
    assert {kind: host_try(share / f"guest-{kind}.lock", kind) for kind in KINDS} == {
        "flock": "free",
        "posix": "free",
    }
