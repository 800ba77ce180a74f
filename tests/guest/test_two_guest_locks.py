"""Two real guests, each with its own ``hostfs serve`` on one directory, and a host
process: a flock taken in one guest blocks the other guest and the host, and the
host's flock blocks the guests (``--locks host``, the default), as libvirt runs
two VMs on one share.  busybox ``flock`` in the guests, tests/guest/workloads/
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

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).parent / "workloads" / "two_guest_locks.sh"
TIMEOUT = 900.0
"""Two TCG guests boot at once on a shared CI machine."""


def host_flock(path: Path) -> str:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        return errno.errorcode[error.errno]
    finally:
        os.close(fd)
    return "free"


async def test_a_flock_holds_across_two_guests_and_the_host(guest_kernel, share: Path) -> None:
    guest_lock, host_lock = share / "guest.lock", share / "host.lock"
    guest_lock.write_bytes(b"")
    host_lock.write_bytes(b"")
    held_by_host = os.open(host_lock, os.O_RDWR)
    fcntl.flock(held_by_host, fcntl.LOCK_EX)
    runs: dict[str, GuestRun] = {}
    probe: list[str] = []

    async def guest(role: str) -> None:
        setup = GuestSetup(WORKLOAD, environment={"HOSTFS_LOCK_ROLE": role})
        runs[role] = await run_guest(
            guest_kernel, setup, share, "hostfs", timeout=TIMEOUT, options=FsOptions()
        )

    async def host_probes_the_guest_lock() -> None:
        while not (share / "held").exists():
            await trio.sleep(0.2)
        probe.append(host_flock(guest_lock))  # the holder keeps it until host-probed exists
        (share / "host-probed").write_text("probed\n")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(guest, "holder")
            nursery.start_soon(guest, "contender")
            nursery.start_soon(host_probes_the_guest_lock)
            with trio.move_on_after(TIMEOUT + 60):
                while len(runs) < 2:
                    await trio.sleep(1)
            nursery.cancel_scope.cancel()
    finally:
        os.close(held_by_host)
    for role in ("holder", "contender"):
        assert role in runs, f"the {role} guest never finished"
        assert_guest_ok(runs[role])
    assert runs["holder"].report.boots[0].checks["host-flock-refuses-guest"] == "ok"
    assert runs["contender"].report.boots[0].checks["waits-for-release"] == "ok"
    assert probe == [errno.errorcode[errno.EWOULDBLOCK]]
    assert host_flock(guest_lock) == "free"  # both daemons are gone, and their locks
