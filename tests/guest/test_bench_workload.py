"""The benchmark workload runs in a guest and yields every measurement."""

from __future__ import annotations

import pytest

from tests.guest.runs import DAEMONS, assert_guest_ok

pytestmark = pytest.mark.slow

MEASURES = {
    "seq-write",
    "seq-read",
    "rand-read-4k",
    "rand-write-4k",
    "create",
    "stat",
    "readdir",
    "ls-l",
    "unlink",
    "create-2cpu",
}


@pytest.mark.parametrize("daemon", DAEMONS)
async def test_bench_reports_all_rates(boot_guest, share, daemon):
    run = await boot_guest(
        daemon, "bench", HOSTFS_BENCH_MIB="8", HOSTFS_BENCH_FILES="100", HOSTFS_BENCH_OPS="100"
    )

    assert_guest_ok(run)
    measures = run.report.boots[0].measures
    assert set(measures) == MEASURES
    assert all(measure.rate > 0 for measure in measures.values())
    assert not (share / "bench").exists()
