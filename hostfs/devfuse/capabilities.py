"""Dropping one capability around a call, for the calling thread only.

A FUSE backing file does its I/O with the credentials of the thread that
registered it (``fuse_backing_open`` keeps ``prepare_creds()``).  Registered
by root as is, its writes would keep setuid/setgid bits that the kernel
drops when an unprivileged caller writes a local file (``file_remove_privs``
spares only CAP_FSETID holders).  Registered without CAP_FSETID, every write
through it drops them, as the caller's own write would.

capget(2)/capset(2) act on one thread, and capability sets are per thread,
so the rest of the process keeps its privileges throughout.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

CAP_FSETID = 4
"""linux/capability.h."""

_VERSION_3 = 0x20080522
"""``_LINUX_CAPABILITY_VERSION_3``: two 32-bit words per set."""


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_Sets = _Data * 2


def _call(function: str, header: _Header, data: ctypes.Array) -> None:
    if getattr(_libc, function)(ctypes.byref(header), data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{function}: {os.strerror(code)}")


CapabilitySets = _Sets
"""effective/permitted/inheritable, as two 32-bit words each (capget(2))."""


def get_capabilities() -> ctypes.Array:
    """This thread's capability sets (``hostfs.sandbox.capabilities`` reduces them)."""
    sets = _Sets()
    _call("capget", _Header(_VERSION_3, 0), sets)
    return sets


def set_capabilities(sets: ctypes.Array) -> None:
    _call("capset", _Header(_VERSION_3, 0), sets)


@contextlib.contextmanager
def without_capability(capability: int) -> Iterator[None]:
    """Run the body with ``capability`` out of this thread's effective set."""
    saved = get_capabilities()
    word, bit = divmod(capability, 32)
    if not saved[word].effective & (1 << bit):
        yield
        return
    lowered = _Sets.from_buffer_copy(saved)
    lowered[word].effective &= ~(1 << bit)
    set_capabilities(lowered)
    try:
        yield
    finally:
        set_capabilities(saved)
