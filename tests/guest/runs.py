"""Helpers for tests that boot a guest: which daemons to try, how to report a failure."""

from __future__ import annotations

import re
import warnings
from typing import Any

from hostfs.guest import qemu
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


QUEUE_STARTED = re.compile(r"hostfs\.vhost\.ring INFO: queue \d+ started")


class SilentGuestWarning(UserWarning):
    """A boot was tried again: the guest printed nothing and never started the device."""


def never_started(run: GuestRun) -> bool:
    """The guest timed out before its init printed a line, and no queue of hostfs's ever
    started: the run ended before the data path was reached (one boot of ~400 in CI,
    cause not reproduced in 80 boots here, loaded or idle)."""
    return run.timed_out and not run.console.strip() and not QUEUE_STARTED.search(run.daemon_log)


async def run_guest(*args: Any, **kwargs: Any) -> GuestRun:
    """:func:`hostfs.guest.qemu.run_guest`, booted once more if the first guest was silent.

    A guest that never reaches the device is the emulator's or the guest kernel's
    (a peer's) failure, not the daemon's, and a peer's failure must not fail the
    suite; the first run's evidence stays in the warnings summary.  A guest that
    started the device and then hung is not tried again."""
    run = await qemu.run_guest(*args, **kwargs)
    if never_started(run):
        warnings.warn(
            SilentGuestWarning(f"booting again; the silent run's daemon log:\n{run.daemon_log}"),
            stacklevel=2,
        )
        run = await qemu.run_guest(*args, **kwargs)
    return run
