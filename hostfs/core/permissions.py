"""Permission checks the core makes itself: FUSE_ACCESS, privileged xattr namespaces.

Mounts use ``default_permissions`` (virtiofs always does), so the kernel checks
permissions from the attributes we return; ACCESS is only asked for
access(2)/faccessat(2) and gets the same answer the kernel would give:
``generic_permission()`` on the owner, group or other bits.
"""

from __future__ import annotations

import errno
import os
import stat as stat_module

from hostfs.core.types import Caller, Stat


def check_access(st: Stat, caller: Caller, mask: int) -> None:
    """Raise EACCES unless ``caller`` may access ``st`` for ``mask`` (R_OK|W_OK|X_OK)."""
    mask &= os.R_OK | os.W_OK | os.X_OK
    if not mask:
        return  # F_OK: the node exists
    if caller.uid == 0:
        # Root may do anything, but execute only where some execute bit is set.
        if mask & os.X_OK and not stat_module.S_ISDIR(st.mode) and not st.mode & 0o111:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return
    if caller.uid == st.uid:
        granted = (st.mode >> 6) & 7
    elif caller.gid == st.gid:
        granted = (st.mode >> 3) & 7
    else:
        granted = st.mode & 7
    if mask & ~granted:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))


_TRUSTED = b"trusted."
_SECURITY = b"security."


def check_xattr_write(caller: Caller, name: bytes) -> None:
    """EPERM for a caller other than root setting or removing a privileged
    attribute: ``trusted.*`` needs CAP_SYS_ADMIN (xattr(7), the kernel's
    xattr_permission), ``security.*`` CAP_SYS_ADMIN or, for
    ``security.capability``, CAP_SETFCAP (cap_inode_setxattr).  Acting under
    the caller's filesystem ids does not drop those capabilities, so the core
    checks them itself."""
    if caller.uid != 0 and name.startswith((_TRUSTED, _SECURITY)):
        raise OSError(errno.EPERM, f"{name!r} needs privilege")


def xattr_visible(caller: Caller, name: bytes) -> bool:
    """Whether ``caller`` sees attribute ``name``: ``trusted.*`` is hidden from
    callers without CAP_SYS_ADMIN (getxattr answers ENODATA, listxattr leaves
    it out, as the kernel's xattr_permission and trusted list handlers do)."""
    return caller.uid == 0 or not name.startswith(_TRUSTED)
