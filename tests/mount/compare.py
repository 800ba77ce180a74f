"""Run one operation on the mount and on the native twin, and compare what came back."""

from __future__ import annotations

import os
import reprlib
from collections.abc import Callable
from typing import Any

STAT_FIELDS = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_rdev")
"""What must agree between a mount and a native directory (inode numbers,
devices and ctime differ by nature; times are compared where a test sets them)."""


def outcome(operation: Callable[[str], Any], base: str) -> tuple[str, Any]:
    """("ok", value) or ("error", errno name): comparable across the two trees."""
    try:
        return "ok", operation(base)
    except OSError as error:
        return "error", errno_name(error.errno)


def errno_name(code: int | None) -> str:
    return os.strerror(code or 0)


def same(twin: Any, operation: Callable[[str], Any]) -> Any:
    """Assert the operation gives the same result in the mount and natively; return it."""
    in_mount = outcome(operation, twin.mnt)
    native = outcome(operation, twin.native)
    assert in_mount == native, f"mount gave {short(in_mount)}, native gave {short(native)}"
    return in_mount[1]


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 120


def short(value: Any) -> str:
    """A failure message that fits on a screen, whatever the operation returned."""
    return _short.repr(value)


def same_error(twin: Any, operation: Callable[[str], Any], code: int) -> None:
    """Assert the operation fails with ``code`` in the mount, as it does natively."""
    assert same(twin, operation) == errno_name(code)


def fails_in_mount(twin: Any, operation: Callable[[str], Any], code: int) -> None:
    """The mount fails with ``code`` where the native call succeeds: a documented
    limit of one engine or backend (the caller says which, and why)."""
    native = outcome(operation, twin.native)
    assert native[0] == "ok", f"native gave {short(native)}"
    in_mount = outcome(operation, twin.mnt)
    assert in_mount == ("error", errno_name(code)), f"mount gave {short(in_mount)}"


def in_both(twin: Any, setup: Callable[[str], Any]) -> None:
    """Prepare the same starting tree in the mount and natively."""
    setup(twin.mnt)
    setup(twin.native)


def stat_summary(st: os.stat_result) -> dict[str, int]:
    return {field: getattr(st, field) for field in STAT_FIELDS}


def lstat_summary(path: str) -> dict[str, int]:
    return stat_summary(os.lstat(path))


def write_file(path: str, data: bytes = b"", mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
