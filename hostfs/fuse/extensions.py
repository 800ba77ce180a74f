"""Request extensions (fuse.h 7.38): what follows a request's arguments.

``fuse_in_header.total_extlen`` counts 8-byte units at the end of the request; there a
series of ``struct fuse_ext_header {size, type}`` records, each ``size`` bytes long with
its header, 8-byte aligned (``fuse_ext_size`` in fs/fuse/dir.c).  :func:`frame
<hostfs.fuse.requests.frame>` already leaves them out of the arguments every decoder
reads; this module reads them.  The one hostfs uses is FUSE_EXT_GROUPS
(``struct fuse_supp_groups {nr_groups; groups[]}``), sent for CREATE, MKNOD, MKDIR and
SYMLINK once FUSE_CREATE_SUPP_GROUP is agreed.  Types it does not know (the security
contexts of FUSE_SECURITY_CTX, never offered) are stepped over.

Sans-I/O and never raises: a record that is short, misaligned, runs past the end, or
counts more groups than it holds is ``BadRequest(EINVAL)``.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import NamedTuple

from hostfs.fuse import abi
from hostfs.fuse.requests import BadRequest, InHeader
from hostfs.fuse.scatter import gather

NGROUPS_MAX = 65536
"""Linux's ``NGROUPS_MAX``: setgroups(2) takes no more."""


class Extensions(NamedTuple):
    groups: tuple[int, ...] = ()
    """FUSE_EXT_GROUPS: supplementary groups of the caller (the kernel sends one, the
    parent directory's group)."""


NONE = Extensions()


def decode_extensions(readable: Sequence[memoryview], header: InHeader) -> Extensions | BadRequest:
    """The extensions of a request :func:`frame` accepted (so ``total_extlen`` fits)."""
    size = header.total_extlen * 8
    if not size:
        return NONE
    data = bytes(gather(readable, header.len - size, size))
    if len(data) != size or header.len - size < abi.IN_HEADER.size:
        return BadRequest(errno.EINVAL)  # frame() refuses such a request first
    groups: tuple[int, ...] | None = None
    offset = 0
    while offset < size:
        if size - offset < abi.EXT_HEADER.size:
            return BadRequest(errno.EINVAL)
        length, kind = abi.EXT_HEADER.unpack_from(data, offset)
        if length < abi.EXT_HEADER.size or length % 8 or length > size - offset:
            return BadRequest(errno.EINVAL)
        if kind == abi.EXT_GROUPS:
            if groups is not None:
                return BadRequest(errno.EINVAL)  # one list of groups, or which one?
            body = data[offset + abi.EXT_HEADER.size : offset + length]
            parsed = _groups(body)
            if parsed is None:
                return BadRequest(errno.EINVAL)
            groups = parsed
        offset += length
    return Extensions(groups or ())


def _groups(body: bytes) -> tuple[int, ...] | None:
    if len(body) < abi.SUPP_GROUPS.size:
        return None
    (count,) = abi.SUPP_GROUPS.unpack_from(body)
    end = abi.SUPP_GROUPS.size + count * abi.GROUP.size
    if count > NGROUPS_MAX or end > len(body):
        return None
    return tuple(group for (group,) in abi.GROUP.iter_unpack(body[abi.SUPP_GROUPS.size : end]))
