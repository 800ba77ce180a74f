"""Live migration of a real guest between two QEMU 10.0s, each on its own ``hostfs serve``.

The guest (tests/guest/workloads/migrate.sh) opens a file for writing, holds a POSIX
lock and cds into a directory; the host migrates it (QMP ``migrate`` over a unix
socket) from QEMU A on hostfs A to QEMU B on hostfs B, same share; the guest then
writes through the open fd, releases the lock and lists its cwd.  The host checks
the file, that the lock moved from A to B (``--locks host``, local share), and that
A exited cleanly once its QEMU quit.  The same over an NFS export (ganesha).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hostfs.core.options import FsOptions
from hostfs.guest.initramfs import GuestSetup
from hostfs.guest.migrate import MigrationRun, run_migration
from tests.support.host_locks import host_try

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).parent / "workloads" / "migrate.sh"
CHECKS = {
    "lock-taken",
    "migrated",
    "wrote-after",
    "lock-holder-exited",
    "lock-released",
    "cwd",
    "cwd-lists",
    "log-contents",
}


def _evidence(run: MigrationRun) -> str:
    return "\n".join(
        [
            *run.report.problems(),
            f"--- migration: {run.migration}",
            "--- console ---",
            run.console[-3000:],
            "--- daemon A ---",
            run.source_log[-3000:],
            "--- daemon B ---",
            run.destination_log[-3000:],
        ]
    )


async def _migrate(guest_kernel_612, qemu_10, shared: Path | str, work: Path, probe: bool):
    probes: dict[str, str] = {}

    def ready() -> bool:
        if (work / "ready").exists() and probe and "before" not in probes:
            probes["before"] = host_try(work / "lock")  # A holds it
        return (work / "ready").exists()

    async def after() -> None:
        if probe:
            probes["after"] = host_try(work / "lock")  # B holds it now
        (work / "probed").write_text("")
        (work / "migrated").write_text("")

    run = await run_migration(
        guest_kernel_612,
        GuestSetup(WORKLOAD),
        shared,
        qemu_10,
        ready=ready,
        after=after,
        options=FsOptions(xattr=False),
    )
    print("\n".join(run.transcript))  # the QMP sessions, for the record
    return run, probes


def _assert_migrated(run: MigrationRun, work: Path) -> None:
    assert run.migration.get("status") == "completed", _evidence(run)
    assert run.report.ok, _evidence(run)
    assert set(run.report.boots[0].checks) == CHECKS, _evidence(run)
    assert (work / "log").read_text() == "before\nafter\n"
    assert (work / "finished").exists()
    assert run.source_daemon_status == 0, _evidence(run)
    assert "migration: saved" in run.source_log, run.source_log[-2000:]
    assert "migration: loaded" in run.destination_log, run.destination_log[-2000:]
    for log in (run.source_log, run.destination_log):  # SET_LOG_BASE, logged rings, ...
        assert " refused" not in log and "ERROR" not in log, log[-3000:]


async def test_a_guest_migrates_with_its_open_file_lock_and_cwd(guest_kernel_612, qemu_10, share):
    work = share / "work"
    run, probes = await _migrate(guest_kernel_612, qemu_10, share, work, probe=True)

    _assert_migrated(run, work)
    assert probes == {"before": "EAGAIN", "after": "EAGAIN"}, _evidence(run)
    assert host_try(work / "lock") == "free"


async def test_a_guest_on_an_nfs_export_migrates(guest_kernel_612, qemu_10, nfs_server):
    work = nfs_server.export_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    try:
        run, _ = await _migrate(guest_kernel_612, qemu_10, nfs_server.url, work, probe=False)
        _assert_migrated(run, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
