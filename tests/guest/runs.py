"""Helpers for tests that boot a guest: which daemons to try, how to report a failure."""

from __future__ import annotations

from hostfs.guest.qemu import GuestRun

DAEMONS = ["virtiofsd", "hostfs"]
"""virtiofsd is the reference; every guest test runs against both."""


def assert_guest_ok(run: GuestRun) -> None:
    """Fail with the reasons, the end of the console and the daemon's log."""
    evidence = [*run.report.problems(), "--- console ---", run.console[-3000:]]
    evidence += ["--- daemon log ---", run.daemon_log[-3000:]]
    assert run.report.ok, "\n".join(evidence)
