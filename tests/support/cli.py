"""The command line as a user types it: ``hostfs mount ...`` in a process of its own."""

from __future__ import annotations

import subprocess
import sys


def hostfs_mount(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``hostfs mount ARGV``; its exit status and output, never raising on failure."""
    return subprocess.run(
        [sys.executable, "-m", "hostfs", "mount", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
