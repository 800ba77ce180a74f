"""``--version`` of both programs, as virtiofsd's ``-V``/``--version`` (``virtiofsd 1.13.2``)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from tests.support.serve import SERVE

VERSION = importlib.metadata.version("hostfs")


@pytest.mark.parametrize(
    ("command", "prog"),
    [
        ([sys.executable, "-m", "hostfs", "--version"], "hostfs"),
        ([sys.executable, "-m", "hostfs", "serve", "-V"], "hostfs serve"),
        ([*SERVE, "--version"], "hostfs-vhost-user-fs"),
        ([*SERVE, "-V"], "hostfs-vhost-user-fs"),
    ],
    ids=["hostfs", "serve", "vhost-user-fs", "vhost-user-fs-V"],
)
def test_version(command: list[str], prog: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == f"{prog} {VERSION}\n"
