"""When a guest test boots again: only a guest that printed nothing and never
started the device (tests/guest/runs.py)."""

from __future__ import annotations

from hostfs.guest.console import GuestReport
from hostfs.guest.qemu import GuestRun
from tests.guest.runs import never_started

CONNECTED = "2026-12-03 15:12:12,466 hostfs.vhost.server INFO: front-end connected\n"
STARTED = "2026-12-03 15:12:14,001 hostfs.vhost.ring INFO: queue 1 started\n"


def run(console: str, daemon_log: str, timed_out: bool = True) -> GuestRun:
    return GuestRun(GuestReport(), console, daemon_log, timed_out, None)


def test_a_silent_guest_that_never_started_the_device_is_booted_again():
    assert never_started(run("", CONNECTED))
    assert never_started(run("\n", CONNECTED))


def test_a_guest_that_reached_the_device_or_printed_is_not():
    assert not never_started(run("", CONNECTED + STARTED))
    assert not never_started(run("HOSTFS-GUEST-BOOT 1 1\n", CONNECTED))
    assert not never_started(run("", CONNECTED, timed_out=False))
