"""The few Linux syscalls the local backend needs that :mod:`os` does not offer.

Each wrapper raises :class:`OSError` like the :mod:`os` functions do.
"""

from __future__ import annotations

import ctypes
import errno
import os

_libc = ctypes.CDLL(None, use_errno=True)

AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100

# openat2(2): struct open_how and the RESOLVE_* flags (linux/openat2.h).
_SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08

# utimensat(2) special nanosecond values (linux/stat.h).
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


OPENAT2_RETRIES = 64
"""With RESOLVE_BENEATH, openat2 answers EAGAIN when any rename on the system races
with the lookup (openat2(2)), and EXDEV when the name it found was renamed out
of the directory before the lookup ended; for a single name both are races,
and openat2(2) says to retry."""
_RACES = (errno.EAGAIN, errno.EXDEV)


def openat2(dir_fd: int, name: bytes, flags: int, mode: int, resolve: int) -> int:
    how = _OpenHow(flags, mode, resolve)
    size = ctypes.c_size_t(ctypes.sizeof(how))
    for _ in range(OPENAT2_RETRIES):
        fd = _libc.syscall(_SYS_OPENAT2, dir_fd, name, ctypes.byref(how), size)
        if fd >= 0 or ctypes.get_errno() not in _RACES:
            break
    return _check(fd, "openat2")


def has_openat2() -> bool:
    """openat2 arrived in Linux 5.6; older kernels (and some sandboxes) answer ENOSYS."""
    try:
        os.close(openat2(-100, b"/", os.O_PATH | os.O_CLOEXEC, 0, 0))
    except OSError as error:
        if error.errno in (errno.ENOSYS, errno.EPERM):
            return False
        raise
    return True


def fchown_empty_path(fd: int, uid: int, gid: int) -> None:
    """fchownat(fd, "", AT_EMPTY_PATH): works on O_PATH descriptors, symlinks included."""
    _check(_libc.fchownat(fd, b"", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW), "fchownat")


def utimens_empty_path(fd: int, atime_ns: int | None, mtime_ns: int | None, now: set[str]) -> None:
    """utimensat(fd, "", times, AT_EMPTY_PATH); ``None`` omits, a name in ``now`` is NOW."""

    def spec(name: str, value: int | None) -> _Timespec:
        if name in now:
            return _Timespec(0, UTIME_NOW)
        if value is None:
            return _Timespec(0, UTIME_OMIT)
        return _Timespec(*divmod(value, 1_000_000_000))

    times = (_Timespec * 2)(spec("atime", atime_ns), spec("mtime", mtime_ns))
    _check(_libc.utimensat(fd, b"", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW), "utimensat")


def linkat_empty_path(fd: int, new_dir_fd: int, new_name: bytes) -> None:
    """linkat(fd, "", dir, name, AT_EMPTY_PATH): link the inode itself, never a path."""
    _check(_libc.linkat(fd, b"", new_dir_fd, new_name, AT_EMPTY_PATH), "linkat")


def renameat2(old_dir: int, old: bytes, new_dir: int, new: bytes, flags: int) -> None:
    _check(_libc.renameat2(old_dir, old, new_dir, new, ctypes.c_uint(flags)), "renameat2")


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    _check(_libc.fallocate(fd, mode, ctypes.c_int64(offset), ctypes.c_int64(length)), "fallocate")


def syncfs(fd: int) -> None:
    _check(_libc.syncfs(fd), "syncfs")
