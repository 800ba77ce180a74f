"""Helpers for tests that boot a guest: which daemons to try, how to report a failure."""

from __future__ import annotations

import re

from hostfs.guest.qemu import GuestRun

DAEMONS = ["hostfs"]
"""Who the guest tests boot against: hostfs only.  A peer's bug must not fail them:
QEMU 7.2's C virtiofsd failed test_reboot[virtiofsd] in one of two fresh-clone runs
with its own "virtio_loop: Unexpected poll revents 11".  The peers' reference
figures come from scripts/bench-guest (hostfs, C and Rust virtiofsd in one run), and
``hostfs guest --daemon virtiofsd|rust-virtiofsd`` boots any workload against them."""


def assert_guest_ok(run: GuestRun) -> None:
    """Fail with the reasons, the end of the console and the daemon's log."""
    evidence = [*run.report.problems(), "--- console ---", run.console[-3000:]]
    evidence += ["--- daemon log ---", run.daemon_log[-3000:]]
    assert run.report.ok, "\n".join(evidence)


QUEUE_STOPPED = re.compile(r"hostfs\.vhost\.ring INFO: queue (\d+) stopped: (\d+) requests so far")


def requests_per_queue(daemon_log: str) -> dict[int, int]:
    """What ``hostfs serve`` logged each ring answered, by queue (the latest count)."""
    counts: dict[int, int] = {}
    for match in QUEUE_STOPPED.finditer(daemon_log):
        counts[int(match[1])] = max(counts.get(int(match[1]), 0), int(match[2]))
    return counts
