"""The DPU setup in one box: a guest mounts virtio-fs served by hostfs from an NFS export."""

from __future__ import annotations

import shutil

import pytest

from hostfs.core.options import FsOptions
from hostfs.guest.initramfs import GuestSetup, workload_path
from tests.guest.runs import assert_guest_ok, run_guest

pytestmark = [
    pytest.mark.slow,
]


async def test_smoke_workload_over_an_nfs_export(guest_kernel, nfs_server):
    smoke = nfs_server.export_dir / "smoke"
    shutil.rmtree(smoke, ignore_errors=True)
    try:
        # NFSv3 has no extended attributes: the workload skips them.
        run = await run_guest(
            guest_kernel,
            GuestSetup(workload_path("smoke"), boots=2),
            nfs_server.url,
            "hostfs",
            options=FsOptions(xattr=False),
        )

        assert_guest_ok(run)
        assert (smoke / "renamed.txt").read_text() == "hello virtio-fs, again\n"
        assert (smoke / "after-reboot.txt").read_text() == "boot 2\n"
    finally:
        shutil.rmtree(smoke, ignore_errors=True)
