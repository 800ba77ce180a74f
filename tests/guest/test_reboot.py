"""The guest reboots (QEMU resets the vhost-user device) and mounts the share again."""

from __future__ import annotations

import pytest

from tests.guest.runs import DAEMONS, assert_guest_ok

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("daemon", DAEMONS)
async def test_second_boot_sees_the_first_boots_files(boot_guest, share, daemon):
    run = await boot_guest(daemon, "smoke", boots=2)

    assert_guest_ok(run)
    assert [boot.number for boot in run.report.boots] == [1, 2]
    assert run.report.boots[1].checks["survives-reboot"] == "ok"
    assert (share / "smoke" / "after-reboot.txt").read_text() == "boot 2\n"
    assert not (share / ".hostfs-guest-boot").exists()
