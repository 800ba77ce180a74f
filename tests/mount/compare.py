"""Run one operation on the mount and on the native twin, and compare what came back."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

STAT_FIELDS = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size")
"""What must agree between a mount and a native directory (inode numbers,
devices and ctime differ by nature; times are compared where a test sets them)."""


def outcome(operation: Callable[[str], Any], base: str) -> tuple[str, Any]:
    """("ok", value) or ("error", errno name): comparable across the two trees."""
    try:
        return "ok", operation(base)
    except OSError as error:
        return "error", os.strerror(error.errno or 0)


def same(twin: Any, operation: Callable[[str], Any]) -> Any:
    """Assert the operation gives the same result in the mount and natively; return it."""
    in_mount = outcome(operation, twin.mnt)
    native = outcome(operation, twin.native)
    assert in_mount == native, f"mount gave {in_mount}, native gave {native}"
    return in_mount[1]


def stat_summary(st: os.stat_result) -> dict[str, int]:
    return {field: getattr(st, field) for field in STAT_FIELDS}
