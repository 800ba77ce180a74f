"""System calls Python 3.11's ``os`` lacks, through ctypes: the sandbox's and the mounts'."""

from __future__ import annotations

import ctypes
import os

# linux/sched.h
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# linux/mount.h
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19
MS_RELATIME = 1 << 21
MNT_DETACH = 2

# linux/prctl.h
PR_SET_PDEATHSIG = 1
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_PIVOT_ROOT = 155
"""x86_64 (asm/unistd_64.h); glibc 2.36 has no pivot_root() wrapper."""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4


def _check(name: str, result: int) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{name}: {os.strerror(code)}")
    return result


def _bytes(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    _check("unshare", _libc.unshare(flags))


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    _check(
        f"mount {target}",
        _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)),
    )


def umount2(target: str, flags: int) -> None:
    _check(f"umount {target}", _libc.umount2(_bytes(target), flags))


def pivot_root(new_root: str, put_old: str) -> None:
    _check("pivot_root", _libc.syscall(_SYS_PIVOT_ROOT, _bytes(new_root), _bytes(put_old)))


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return _check("prctl", _libc.prctl(option, arg2, arg3, 0, 0))
