"""``--rlimit-nofile``: wrong values are one line on stderr and exit status 2."""

from __future__ import annotations

import pytest

from tests.support.cli import hostfs_mount


@pytest.mark.parametrize(
    ("value", "message"),
    [("-1", "--rlimit-nofile must be 0 or more"), ("99999999", "RLIMIT_NOFILE to 99999999")],
    ids=["negative", "above-nr_open"],
)
def test_bad_rlimit_nofile_is_a_usage_error(tmp_path, value, message):
    result = hostfs_mount("--shared-dir", str(tmp_path), "--rlimit-nofile", value, str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
