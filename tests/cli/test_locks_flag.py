"""``--locks host|local`` (serve and mount): where guest locks live; bad uses exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostfs.cli import common
from tests.support.serve import SERVE


def options(shared_dir: str, *argv: str):
    parser = common.ArgumentParser(prog="hostfs test")
    common.add_filesystem_options(parser)
    return common.filesystem_options(parser.parse_args(["--shared-dir", shared_dir, *argv]))


def test_host_locks_are_the_default():
    assert options("/srv").host_locks
    assert options("/srv", "--locks", "host").host_locks
    assert not options("/srv", "--locks", "local").host_locks


def test_nfs_defaults_to_its_own_table_and_refuses_host_locks():
    # The NFS backend has no host locks: without the flag the core's table keeps them.
    assert options("nfs://server/export").host_locks  # "where the backend can"
    assert not options("nfs://server/export", "--locks", "local").host_locks
    with pytest.raises(common.UsageError, match="--locks host: the NFS backend"):
        options("nfs://server/export", "--locks", "host")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--locks", "everywhere"), "--locks: invalid choice: 'everywhere'"),
        (("--locks", "host"), "--locks host: the NFS backend keeps locks in this daemon only"),
    ],
    ids=["choice", "nfs"],
)
def test_serve_refuses_in_one_line(tmp_path: Path, argv, message) -> None:
    command = [*SERVE, "--shared-dir", "nfs://127.0.0.1/export", "--socket-path",
               str(tmp_path / "fs.sock"), *argv]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
