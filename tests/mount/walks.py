"""Walks of many files through a mount, as ``find -exec stat`` makes them."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def share_of_files(tmp_path: Path, count: int) -> tuple[Path, Path, list[str]]:
    """A share of ``count`` empty files, an empty mount point, and the files' names."""
    share, mnt = tmp_path / "share", tmp_path / "mnt"
    share.mkdir()
    mnt.mkdir()
    names = [f"f{i}" for i in range(count)]
    for name in names:
        (share / name).touch()
    return share, mnt, names


def listing_walk(directory: str) -> int:
    """What ``find -exec stat`` does: list (READDIRPLUS looks every entry up) and
    stat each name; the listing itself may end in ENFILE. Returns the names seen."""
    seen = 0
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                seen += 1
                try:
                    os.lstat(entry.path)
                except OSError as error:
                    assert error.errno == errno.ENFILE
    except OSError as error:
        assert error.errno == errno.ENFILE
    return seen


def stat_walk(directory: str, names: list[str]) -> dict[int, int]:
    """errno -> how many lstat calls got it (0: success)."""
    outcome: dict[int, int] = {}
    for name in names:
        try:
            os.lstat(os.path.join(directory, name))
            code = 0
        except OSError as error:
            code = error.errno
        outcome[code] = outcome.get(code, 0) + 1
    return outcome
