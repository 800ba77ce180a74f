"""Rules about ``st_mode`` that the core and the backends must agree on.

Each lives here once, so that a directory listing, a READDIRPLUS entry and a
setattr reached through the local or the NFS backend cannot drift apart.
"""

from __future__ import annotations

import stat as stat_module

SUID_SGID = stat_module.S_ISUID | stat_module.S_ISGID
"""The bits a write by someone unprivileged may have to drop."""


def without_privileges(mode: int) -> int:
    """``mode`` after an unprivileged write or truncate (the kernel's
    should_remove_suid): setuid goes; setgid goes only with group-execute, since
    without it the bit marks mandatory locking, not privilege.  Other bits,
    the file type included, are kept."""
    mode &= ~stat_module.S_ISUID
    if mode & stat_module.S_IXGRP:
        mode &= ~stat_module.S_ISGID
    return mode


def dirent_type(mode: int) -> int:
    """The ``DT_*`` of a file whose ``st_mode`` (or bare ``S_IF*``) is ``mode``:
    dirent.h numbers the types as the file-type bits shifted down."""
    return stat_module.S_IFMT(mode) >> 12
