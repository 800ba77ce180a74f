"""A guest run that times out leaves no QEMU and no daemon behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostfs.guest.initramfs import GuestSetup, workload_path
from hostfs.guest.qemu import run_guest

pytestmark = pytest.mark.slow


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


BOOT_AND_HANG = 45.0
"""The run's timeout: long enough for the guest to boot under emulation and print
"started" (15 s missed it once in a fresh-clone CI run, the guest still booting),
far short of the workload's 600 s sleep, so the timeout is what ends the run."""


async def test_timeout_kills_qemu_and_daemon(guest_kernel, share, tmp_path, monkeypatch):
    # The scratch dir (socket, initrd) lands under tmp_path, so QEMU's and the
    # daemon's command lines both mention it.
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    hang = tmp_path / "hang.sh"
    hang.write_text("echo HOSTFS-RESULT started yes\nsleep 600\n")
    console: list[str] = []
    seen: list[int] = []

    def watch(text: str) -> None:
        console.append(text)
        if not seen and "started" in "".join(console):
            seen.extend(processes_mentioning(str(tmp_path)))

    run = await run_guest(
        guest_kernel,
        GuestSetup(workload_path(str(hang))),
        share,
        "hostfs",  # not a peer: its bugs must not fail this test of the runner
        timeout=BOOT_AND_HANG,
        echo=watch,
    )

    assert run.timed_out
    assert len(seen) >= 2, "QEMU and the daemon should both have been running"
    assert processes_mentioning(str(tmp_path)) == []
