"""A Linux 6.12 guest with num-request-queues=2 sends on both request queues at once.

Linux >= 6.11's virtio-fs driver picks the request queue by the sending CPU;
guest-images/workloads/queues.sh runs two workers pinned to vCPU 0 and 1
(taskset) that create, write, read back, verify and unlink their files
concurrently.  The daemon's log says how many requests each queue answered.
"""

from __future__ import annotations

import pytest

from hostfs.core.options import FsOptions
from hostfs.guest.initramfs import GuestSetup, workload_path
from hostfs.guest.qemu import HOST_QEMU
from tests.guest.runs import assert_guest_ok, requests_per_queue, run_guest

pytestmark = pytest.mark.slow

FILES = 150
"""Per worker; each file is at least a CREATE, a WRITE and a LOOKUP on its CPU's queue."""


@pytest.mark.parametrize("qemu", ["7.2", "10.0"])
async def test_two_pinned_workers_use_both_request_queues(guest_kernel_612, share, qemu, request):
    emulator = HOST_QEMU if qemu == "7.2" else request.getfixturevalue("qemu_10")
    setup = GuestSetup(workload_path("queues"), environment={"HOSTFS_QUEUES_FILES": str(FILES)})

    run = await run_guest(
        guest_kernel_612,
        setup,
        share,
        "hostfs",
        timeout=300,
        options=FsOptions(),
        request_queues=2,
        emulator=emulator,
    )

    assert_guest_ok(run)
    boot = run.report.boots[0]
    assert boot.results["cpus"] == "2"
    assert set(boot.checks) == {"worker-cpu0", "worker-cpu1"}
    served = requests_per_queue(run.daemon_log)
    assert set(served) == {0, 1, 2}, run.daemon_log[-2000:]
    assert served[1] >= FILES and served[2] >= FILES, served
    assert list(share.iterdir()) == []
