"""``--seccomp``: a system call outside ``allowlist.ALLOWED`` kills, is logged, or traps.

Built and loaded through libseccomp (Debian's libseccomp2, what virtiofsd links), which
knows each architecture's syscall numbers and makes the BPF program; seccomp_load(3) sets
PR_SET_NO_NEW_PRIVS first.  The filter covers every thread (SCMP_FLTATR_CTL_TSYNC) and
every thread created later inherits it (seccomp(2)).  Modes, as virtiofsd's:

- ``kill``: SECCOMP_RET_KILL_PROCESS, the whole daemon dies with SIGSYS (the default);
- ``log``: the call is allowed and the kernel logs it (``audit: type=1326 ... syscall=N``);
- ``trap``: SIGSYS to the thread, which (no handler) ends the daemon with a core dump;
- ``none``: no filter.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

from hostfs.sandbox.allowlist import ALLOWED

# seccomp.h (libseccomp)
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_CTL_TSYNC = 4
NR_SCMP_ERROR = -1

ACTIONS = {"kill": SCMP_ACT_KILL_PROCESS, "log": SCMP_ACT_LOG, "trap": SCMP_ACT_TRAP}
SECCOMP_MODES = (*ACTIONS, "none")
"""virtiofsd's ``--seccomp`` values; ``kill`` is its default."""

SONAME = "libseccomp.so.2"


class SeccompError(Exception):
    """The filter cannot be built or loaded; one line for the user."""


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(SONAME, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    return lib


_lib = _library()
"""Loaded on import, while the host's /usr/lib can still be named (before the sandbox)."""
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]


def syscall_number(name: str) -> int:
    """This architecture's number for ``name``; SeccompError if libseccomp does not know it."""
    number = _lib.seccomp_syscall_resolve_name(name.encode())
    if number == NR_SCMP_ERROR:
        raise SeccompError(f"libseccomp knows no system call {name!r}")
    return number


def syscall_name(number: int) -> str:
    """The name of this architecture's syscall ``number`` (to read the kernel's log)."""
    pointer = _lib.seccomp_syscall_resolve_num_arch(0, number)  # 0: the native architecture
    if not pointer:
        return str(number)
    name = ctypes.string_at(pointer).decode()
    _libc.free(pointer)
    return name


def install_filter(mode: str, allowed: Iterable[str] = ALLOWED) -> None:
    """Allow ``allowed`` and treat every other system call as ``mode`` says, from now on."""
    if mode == "none":
        return
    lib = _lib
    context = lib.seccomp_init(ACTIONS[mode])
    if not context:
        raise SeccompError("seccomp_init failed")
    try:
        for name in allowed:
            _check(
                f"seccomp_rule_add {name}",
                lib.seccomp_rule_add(context, SCMP_ACT_ALLOW, syscall_number(name), 0),
            )
        _check("seccomp_attr_set TSYNC", lib.seccomp_attr_set(context, SCMP_FLTATR_CTL_TSYNC, 1))
        _check("seccomp_load", lib.seccomp_load(context))
    finally:
        lib.seccomp_release(context)


def _check(what: str, result: int) -> None:
    # libseccomp returns -errno.
    if result < 0:
        raise SeccompError(f"{what}: {os.strerror(-result)}")
