"""Silly rename: an open file that is unlinked lives on under a hidden name.

A local file system keeps an unlinked file's data until its last close, and
POSIX programs rely on that (a temporary file opened then unlinked, an editor's
swap file, ``rm`` of a log still being written).  An NFSv3 server has no idea
which files a client holds open (the protocol is stateless, RFC 1813 §1.3), so a
REMOVE would free the file under the open descriptor and the next READ or WRITE
would get ``NFS3ERR_STALE``.  The Linux client therefore renames such a file to
``.nfs<fileid><counter>`` in the same directory and removes that name on the
last close (``nfs_sillyrename``, fs/nfs/unlink.c); hostfs does the same, with
the Linux client's name format, and leaves those names out of directory
listings.  As with Linux, a name survives a crash of the daemon and is then an
ordinary file to delete.
"""

from __future__ import annotations

import re

PREFIX = b".nfs"

_PATTERN = re.compile(rb"\.nfs[0-9a-f]{24}")
"""``.nfs`` + 16 hex digits of fileid + 8 of counter, as fs/nfs/unlink.c names them."""


def silly_name(fileid: int, counter: int) -> bytes:
    """The hidden name of file ``fileid``; ``counter`` makes each one unique."""
    return b"%s%016x%08x" % (PREFIX, fileid & (1 << 64) - 1, counter & 0xFFFFFFFF)


def is_silly(name: bytes) -> bool:
    """Whether ``name`` is one a client gave an unlinked open file (ours or another's)."""
    return _PATTERN.fullmatch(name) is not None
