"""``hostfs mount`` refuses wrong input with one line on stderr and exit status 2."""

from __future__ import annotations

import pytest

from tests.support.cli import hostfs_mount


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--shared-dir", "/nonexistent/dir", "{tmp}"), "/nonexistent/dir"),
        (("--shared-dir", "{tmp}", "/proc"), "busy"),
        (("--shared-dir", "{tmp}", "{tmp}/missing"), "not a directory"),
        (("--shared-dir", "{tmp}", "--cache", "sometimes", "{tmp}"), "--cache"),
        (("--shared-dir", "{tmp}", "--engine", "pyfuse3", "--passthrough", "{tmp}"), "devfuse"),
    ],
    ids=["missing-share", "busy", "missing-mountpoint", "cache", "passthrough-pyfuse3"],
)
def test_usage_errors(tmp_path, argv, message):
    result = hostfs_mount(*(word.format(tmp=tmp_path) for word in argv))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
