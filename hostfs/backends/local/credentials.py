"""Act as the calling guest user on the host, for one calling thread.

A guest kernel that skips ``default_permissions`` (a modified one) would let
any user chown its file to root, set a setuid bit or create a device node, if
the daemon ran those calls with its own root credentials.  Instead the daemon
creates and changes objects under the caller's filesystem uid and gid, as
virtiofsd does for creation: the host kernel then applies exactly the rules it
applies to that user locally.  A filesystem uid other than 0 clears
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID,
CAP_LINUX_IMMUTABLE and CAP_MKNOD from the effective set, and setting it back
to 0 restores them (capabilities(7), "Effect of user ID changes on
capabilities").

setfsuid(2), setfsgid(2) and the raw setgroups(2) syscall change only the
calling thread; glibc's setgroups() would change every thread of the process,
so the raw syscall is used.  Never ``await`` inside :func:`acting_as`: other
trio tasks on the same thread would run as the caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
from collections.abc import Iterator, Sequence

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_SYSCALLS = {
    # (setgroups, setfsuid, setfsgid): arch/x86/entry/syscalls/syscall_64.tbl
    # and include/uapi/asm-generic/unistd.h (arm64).
    "x86_64": (116, 122, 123),
    "aarch64": (159, 151, 152),
}
_SYS_SETGROUPS, _SYS_SETFSUID, _SYS_SETFSGID = _SYSCALLS[platform.machine()]

_QUERY = 0xFFFF_FFFF
"""``(uid_t) -1``: never a valid id, so setfsuid(-1) changes nothing and
returns the current one; setfsuid(2) says to check a change that way."""


def _set_fs_id(syscall: int, new: int) -> int:
    """setfsuid/setfsgid ``new``; return the previous id.  EPERM if the kernel
    refused (it reports no error itself, only the unchanged id)."""
    previous = _libc.syscall(syscall, ctypes.c_uint(new))
    if _libc.syscall(syscall, ctypes.c_uint(_QUERY)) != new:
        raise OSError(errno.EPERM, f"cannot switch to filesystem id {new}")
    return previous


def _set_groups(groups: Sequence[int]) -> None:
    array = (ctypes.c_uint * len(groups))(*groups)
    if _libc.syscall(_SYS_SETGROUPS, ctypes.c_size_t(len(groups)), array) < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setgroups: {os.strerror(code)}")


@contextlib.contextmanager
def acting_as(uid: int, gid: int, groups: Sequence[int] = ()) -> Iterator[None]:
    """Run the body with filesystem ids ``uid``/``gid`` and supplementary ``groups``
    (none unless the request said: FUSE's header has uid and gid only, and
    FUSE_EXT_GROUPS adds a creation's), on the calling thread; restore the previous
    ids and groups afterwards, also on error."""
    previous_groups = os.getgroups()
    wanted = sorted(set(groups))
    change_groups = sorted(set(previous_groups)) != wanted
    if change_groups:
        _set_groups(wanted)
    try:
        previous_gid = _set_fs_id(_SYS_SETFSGID, gid)
        try:
            previous_uid = _set_fs_id(_SYS_SETFSUID, uid)
            try:
                yield
            finally:
                _set_fs_id(_SYS_SETFSUID, previous_uid)
        finally:
            _set_fs_id(_SYS_SETFSGID, previous_gid)
    finally:
        if change_groups:
            _set_groups(previous_groups)


def can_set_groups() -> bool:
    """Whether this thread may set its supplementary groups: CAP_SETGID, and, in a user
    namespace, ``/proc/self/setgroups`` not ``deny`` (user_namespaces(7)); setting the
    groups it has already answers without changing anything."""
    try:
        _set_groups(os.getgroups())
    except OSError:
        return False
    return True


def fs_ids() -> tuple[int, int]:
    """The calling thread's filesystem uid and gid."""
    return _libc.syscall(_SYS_SETFSUID, ctypes.c_uint(_QUERY)), _libc.syscall(
        _SYS_SETFSGID, ctypes.c_uint(_QUERY)
    )
