"""scripts/nfs-server: ``URL=$(scripts/nfs-server start DIR)`` returns with the URL."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.nfs_server import REPO, GaneshaServer

SCRIPT = REPO / "scripts" / "nfs-server"

HANG_GUARD = 120
"""Only there to turn the old hang (ganesha holding the pipe open) into a failure."""


def test_start_returns_while_the_server_runs(nfs_server: GaneshaServer, tmp_path: Path) -> None:
    export = tmp_path / "export"
    nfs_server.stop()  # the script's server takes the same fixed ports
    try:
        # What the shell's $(...) does: read stdout and stderr to their end.
        started = subprocess.run(
            ["sh", "-c", f'URL=$("{SCRIPT}" start "{export}" 2>&1) && echo "$URL"'],
            capture_output=True,
            timeout=HANG_GUARD,
            check=True,
        )
        assert started.stdout.decode().startswith(f"nfs://127.0.0.1{export}?")
        assert (tmp_path / "export.ganesha" / "ganesha.pid").exists()
        subprocess.run([SCRIPT, "stop", export], timeout=HANG_GUARD, check=True)
        assert not (tmp_path / "export.ganesha" / "ganesha.pid").exists()
    finally:
        subprocess.run([SCRIPT, "stop", export], capture_output=True, timeout=HANG_GUARD)
        nfs_server.start()
