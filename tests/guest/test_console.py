"""Parsing the guest's serial console into a report."""

from __future__ import annotations

import pytest

from hostfs.guest.console import parse_console

GOOD = (
    "[    1.0] random kernel line\r\n"
    "HOSTFS-GUEST-BOOT 1 2\r\n"
    "HOSTFS-CHECK create ok\r\n"
    "[    2.0] virtio-fs: something HOSTFS-RESULT random abc123\r\n"
    "HOSTFS-MEASURE seq-write 64 MiB 1000000000 3000000000\r\n"
    "HOSTFS-WORKLOAD-EXIT 0\r\n"
    "HOSTFS-GUEST-REBOOT\r\n"
    "HOSTFS-GUEST-BOOT 2 2\r\n"
    "HOSTFS-CHECK survives-reboot ok\r\n"
    "HOSTFS-WORKLOAD-EXIT 0\r\n"
    "HOSTFS-GUEST-END\r\n"
)


def test_a_clean_two_boot_run_is_ok():
    report = parse_console(GOOD)

    assert report.ok, report.problems()
    first, second = report.boots
    assert first.results == {"random": "abc123"}
    assert first.measures["seq-write"].rate == pytest.approx(32.0)
    assert second.checks == {"survives-reboot": "ok"}


@pytest.mark.parametrize(
    ("console", "problem"),
    [
        (GOOD.replace("create ok", "create FAIL no space"), "check create: FAIL no space"),
        (GOOD.replace("HOSTFS-GUEST-END", ""), "never reached a clean power-off"),
        (GOOD.replace("EXIT 0\r\nHOSTFS-GUEST-END", "EXIT 3\r\nHOSTFS-GUEST-END"), "status 3"),
        (GOOD[: GOOD.index("HOSTFS-GUEST-BOOT 2")], "1 of 2 boots"),
        ("HOSTFS-GUEST-FAIL mount -t virtiofs x\n", "setup failed: mount -t virtiofs x"),
    ],
    ids=["failed-check", "no-power-off", "workload-status", "missing-boot", "setup-failed"],
)
def test_what_went_wrong_is_reported(console, problem):
    report = parse_console(console)

    assert not report.ok
    assert any(problem in line for line in report.problems()), report.problems()
