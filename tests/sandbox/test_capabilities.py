"""The capabilities the serving daemon keeps, read from /proc/PID/status."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostfs.sandbox.capabilities import NUMBERS, CapabilityError, serving_capabilities
from tests.support.serve import SERVE, serving

VIRTIOFSD_SET = ["chown", "dac_override", "dac_read_search", "fowner", "fsetid"]
VIRTIOFSD_SET += ["setgid", "setuid", "mknod", "setfcap"]


def mask(names: list[str]) -> int:
    return sum(1 << NUMBERS[name] for name in names)


def test_modcaps_edits_virtiofsd_list() -> None:
    assert serving_capabilities() == {NUMBERS[name] for name in VIRTIOFSD_SET}
    edited = serving_capabilities("+sys_admin:-mknod:-CAP_SETFCAP")
    assert NUMBERS["sys_admin"] in edited
    assert NUMBERS["mknod"] not in edited and NUMBERS["setfcap"] not in edited
    with pytest.raises(CapabilityError):
        serving_capabilities("sys_admin")
    with pytest.raises(CapabilityError):
        serving_capabilities("+no_such_cap")


async def test_the_daemon_keeps_only_the_serving_set(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share)) as daemon:
        for field in ("CapEff", "CapPrm", "CapBnd"):
            assert int(daemon.status(field), 16) == mask(VIRTIOFSD_SET), field
        assert int(daemon.status("CapInh"), 16) == 0
        assert int(daemon.status("CapAmb"), 16) == 0


async def test_modcaps_reaches_the_daemon(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share), "--modcaps=-mknod:+sys_nice") as daemon:
        kept = [name for name in VIRTIOFSD_SET if name != "mknod"] + ["sys_nice"]
        assert int(daemon.status("CapEff"), 16) == mask(kept)


def test_bad_modcaps_is_one_line_exit_2(tmp_path: Path) -> None:
    command = [*SERVE, "--shared-dir", str(tmp_path), "--fd", "0", "--modcaps=sys_admin"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "hostfs-vhost-user-fs: error: --modcaps: 'sys_admin' is not +CAP or -CAP (e.g. +sys_admin)"
    )
