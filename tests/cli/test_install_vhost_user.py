"""``hostfs install-vhost-user`` writes a description whose binary runs, and removes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.serve import SERVE

HOSTFS = [sys.executable, "-m", "hostfs"]
VIRTIOFSD_1_13_FEATURES = {"migrate-precopy", "separate-options"}


def hostfs(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOSTFS, *argv], capture_output=True, text=True, timeout=60)


def print_capabilities(command: list[str]) -> dict[str, object]:
    result = subprocess.run(
        [*command, "--print-capabilities"], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)


def test_install_then_uninstall(tmp_path: Path) -> None:
    path = tmp_path / "share" / "qemu" / "vhost-user" / "50-hostfs.json"
    result = hostfs("install-vhost-user", "--prefix", str(tmp_path))
    assert result.returncode == 0, result.stderr
    described = json.loads(path.read_text())
    assert described["type"] == "fs"
    binary = Path(described["binary"])
    assert binary == Path(sys.executable).parent / "hostfs-vhost-user-fs"
    # The binary QEMU and libvirt will run exists and answers as a vhost-user backend:
    capabilities = print_capabilities([str(binary)])
    assert described["features"] == capabilities["features"]
    assert hostfs("install-vhost-user", "--prefix", str(tmp_path), "--uninstall").returncode == 0
    assert not path.exists()
    assert hostfs("install-vhost-user", "--prefix", str(tmp_path), "--uninstall").returncode == 0


def test_features_in_virtiofsd_vocabulary() -> None:
    """What virtiofsd 1.13 says, and hostfs does: separate options and precopy migration."""
    capabilities = print_capabilities(SERVE)
    assert capabilities == {"type": "fs", "features": ["migrate-precopy", "separate-options"]}
    assert set(capabilities["features"]) <= VIRTIOFSD_1_13_FEATURES


def test_unwritable_prefix_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = hostfs("install-vhost-user", "--prefix", str(tmp_path / "file"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cannot write" in result.stderr, result.stderr
