"""Rust virtiofsd from trixie runs on this host through trixie's own loader."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostfs.guest.rust_virtiofsd import fetch_rust_virtiofsd, rust_virtiofsd_command


def test_command_runs_the_binary_under_the_trees_own_loader(tmp_path: Path):
    command = rust_virtiofsd_command(tmp_path)

    assert command == [
        f"{tmp_path}/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "--library-path",
        f"{tmp_path}/usr/lib/x86_64-linux-gnu",
        f"{tmp_path}/usr/libexec/virtiofsd",
    ]


@pytest.mark.slow
def test_fetched_rust_virtiofsd_reports_its_version():
    """Downloads from trixie on first use (cached after), like the guest kernel."""
    result = subprocess.run(
        [*fetch_rust_virtiofsd(), "--version"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("virtiofsd 1.")
