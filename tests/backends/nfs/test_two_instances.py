"""Two hostfs instances on one export, as two guests sharing it: close-to-open data,
names changed by one seen by the other once its cache times out, locks per instance."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mounts import Mount, hostfs_mount
from tests.support.nfs_server import GaneshaServer


@pytest.fixture(params=["never", "auto"])
def pair(
    request: pytest.FixtureRequest,
    nfs_server: GaneshaServer,
    nfs_url: str,
    nfs_dir: Path,
    tmp_path: Path,
) -> Iterator[tuple[Mount, Mount, str]]:
    """Two devfuse mounts of ``nfs_url``, with the same ``--cache`` policy."""
    cache = request.param
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    args = ("--cache", cache)
    with (
        hostfs_mount("devfuse", nfs_url, str(first), str(nfs_dir), "nfs", args) as a,
        hostfs_mount("devfuse", nfs_url, str(second), str(nfs_dir), "nfs", args) as b,
    ):
        yield a, b, cache


def test_written_and_closed_on_one_is_read_whole_on_the_other(
    pair: tuple[Mount, Mount, str],
) -> None:
    a, b, _ = pair
    data = os.urandom(300_000)
    Path(a.path, "f").write_bytes(b"old contents")
    assert Path(b.path, "f").read_bytes() == b"old contents"  # b's page cache has it now
    with open(Path(a.path, "f"), "wb") as out:
        out.write(data)
    # close-to-open: b's open drops what it cached (--cache auto) or never caches.
    assert Path(b.path, "f").read_bytes() == data


def test_renames_and_unlinks_on_one_are_seen_by_the_other(
    pair: tuple[Mount, Mount, str],
) -> None:
    a, b, cache = pair
    if cache != "never":
        pytest.skip("names are cached for --cache auto's 1 s: checked with never")
    Path(a.path, "old").write_bytes(b"x")
    assert Path(b.path, "old").read_bytes() == b"x"
    os.rename(Path(a.path, "old"), Path(a.path, "new"))
    assert not Path(b.path, "old").exists()
    assert Path(b.path, "new").read_bytes() == b"x"
    os.unlink(Path(a.path, "new"))
    assert not Path(b.path, "new").exists()
    assert os.listdir(b.path) == []


def test_an_unlink_on_one_hides_nothing_from_the_other_s_listing(
    pair: tuple[Mount, Mount, str],
) -> None:
    """A file one instance keeps open after unlinking it is hidden on the server
    (.nfs*): the other instance does not list it either."""
    a, b, _ = pair
    fd = os.open(Path(a.path, "tmp"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.unlink(Path(a.path, "tmp"))
        assert os.listdir(b.path) == []
    finally:
        os.close(fd)


def test_posix_locks_are_per_instance(pair: tuple[Mount, Mount, str]) -> None:
    """No NLM (RFC 1813's side protocol): each instance's lock table is its own, so a
    write lock taken through one does not exclude one taken through the other."""
    a, b, _ = pair
    Path(a.path, "lock").write_bytes(b"")
    with open(Path(a.path, "lock"), "r+") as first, open(Path(b.path, "lock"), "r+") as second:
        fcntl.lockf(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(second, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would be EAGAIN with NLM
