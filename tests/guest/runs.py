"""Helpers for tests that boot a guest: which daemons to try, how to report a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

import hostfs
from hostfs.guest.qemu import GuestRun

# Looked up as a file: importing hostfs.cli would import every subcommand.
HOSTFS_SERVE_READY = (Path(hostfs.__file__).parent / "cli" / "serve.py").exists()

# virtiofsd is the reference; hostfs joins once its vhost-user device exists.
DAEMONS = [
    "virtiofsd",
    pytest.param(
        "hostfs",
        marks=pytest.mark.skipif(
            not HOSTFS_SERVE_READY, reason="hostfs serve (hostfs/cli/serve.py) not there yet"
        ),
    ),
]


def assert_guest_ok(run: GuestRun) -> None:
    """Fail with the reasons, the end of the console and the daemon's log."""
    evidence = [*run.report.problems(), "--- console ---", run.console[-3000:]]
    evidence += ["--- daemon log ---", run.daemon_log[-3000:]]
    assert run.report.ok, "\n".join(evidence)
