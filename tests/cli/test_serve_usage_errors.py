"""Each wrong start-up input of a real ``hostfs serve``: one line naming it, exit status 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.serve import SERVE


def serve(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    command = [*SERVE, "--shared-dir", str(share), *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--socket-path", "{tmp}/missing/fs.sock"),
            "--socket-path {tmp}/missing/fs.sock: directory {tmp}/missing does not exist",
        ),
        (("--fd", "99"), "--fd 99: not an open file descriptor"),
        (("--fd", "0"), "--fd 0: not a socket"),
        (
            ("--socket-path", "{tmp}/fs.sock", "--socket-group", "nosuchgroup"),
            "--socket-group nosuchgroup: no such group",
        ),
        (("--socket-path", "{tmp}/share"), "--socket-path {tmp}/share: exists and is not a socket"),
        ((), "give exactly one of --socket-path and --fd"),
        (("--socket-path", "{tmp}/fs.sock", "--cache", "sometimes"), "--cache: invalid choice"),
        (("--socket-path", "{tmp}/fs.sock", "--tag", "x" * 37), "--tag must be 1 to 36 bytes"),
    ],
    ids=[
        "socket-dir",
        "fd-closed",
        "fd-not-socket",
        "group",
        "path-not-socket",
        "no-socket",
        "cache",
        "tag",
    ],
)
def test_one_line_exit_2(tmp_path: Path, argv: tuple[str, ...], message: str) -> None:
    result = serve(tmp_path, *(arg.format(tmp=tmp_path) for arg in argv))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message.format(tmp=tmp_path) in result.stderr
    assert not (tmp_path / "fs.sock").exists()  # nothing left behind
