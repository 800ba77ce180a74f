"""``--readonly``: the guest may read the share and change nothing in it.

virtiofsd 1.13 wraps its passthrough file system in ``PassthroughFsRo``
(src/passthrough/read_only.rs); hostfs keeps the rule here, once: REFUSED
names every core operation that modifies the share, CHECKED the two whose
arguments say whether they would, and :func:`make_read_only` puts the
refusal in front of them on one :class:`FileSystem`.  No operation body
carries an ``if readonly``.

Every refusal is EROFS, what a read-only mount answers on a local file
system.  STATFS is passed through: ``struct fuse_kstatfs`` has no flags
field, so the guest's statvfs(2) shows ST_RDONLY only if the guest itself
mounted with ``-o ro``; otherwise the share looks writable and each change
fails with EROFS (as with virtiofsd).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from typing import NoReturn

REFUSED = frozenset(
    {
        "setattr",
        "mknod",
        "mkdir",
        "symlink",
        "link",
        "unlink",
        "rmdir",
        "rename",
        "create",
        "write",
        "fallocate",
        "copy_file_range",
        "setxattr",
        "removexattr",
    }
)
"""Core operations that always modify the share (RENAME2 is ``rename`` with flags).

CREATE is refused even when the name exists, which virtiofsd instead opens:
the kernel sends CREATE only after a negative lookup, so the name is new."""


def check_open(caller: object, nodeid: int, flags: int, kill_suidgid: bool = False) -> None:
    """OPEN of an existing file: read-only access, and no O_TRUNC.

    O_RDONLY|O_TRUNC gets EROFS as on a read-only local mount (fs/namei.c
    do_open() asks mnt_want_write() before truncating); virtiofsd answers
    EINVAL there.
    """
    if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
        raise _erofs()


def check_access(caller: object, nodeid: int, mask: int) -> None:
    """ACCESS for W_OK: EROFS, as inode_permission() answers on a read-only mount."""
    if mask & os.W_OK:
        raise _erofs()


CHECKED: dict[str, Callable[..., None]] = {"open": check_open, "access": check_access}
"""Core operations that modify only with some arguments: the check takes the
operation's own arguments and raises before the operation runs."""


def make_read_only(fs: object) -> None:
    """Put the read-only rule in front of ``fs``'s operations (instance attributes)."""
    for name in REFUSED:
        setattr(fs, name, _refuse)
    for name, check in CHECKED.items():
        setattr(fs, name, _checked(check, getattr(fs, name)))


def _erofs() -> OSError:
    return OSError(errno.EROFS, "the share is read-only (--readonly)")


async def _refuse(*args: object, **kwargs: object) -> NoReturn:
    raise _erofs()


def _checked(
    check: Callable[..., None], operation: Callable[..., Awaitable[object]]
) -> Callable[..., Awaitable[object]]:
    async def checked(*args: object, **kwargs: object) -> object:
        check(*args, **kwargs)
        return await operation(*args, **kwargs)

    return checked
