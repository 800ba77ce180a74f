"""Values that cross the boundary between the translation core and its neighbours.

The ones made for every request (Entry, AttrReply, Opened, Stat, Caller) are NamedTuples
that the core makes with :data:`build`: a class call of a dataclass enters its Python
``__init__`` from C, ~1500 instructions more a value (callgrind).

Transports (the FUSE codec, the pyfuse3 adapter) build requests out of these and
encode replies from them; backends return :class:`Stat` and take
:class:`Caller`.  They are plain data: no behaviour lives here.
"""

from __future__ import annotations

import os
import stat as stat_module
from dataclasses import dataclass
from typing import Literal, NamedTuple

build = tuple.__new__
"""``build(SomeNamedTuple, (field, ...))``: a NamedTuple made without calling its class.
A NamedTuple's ``__new__`` is a Python lambda that the class call enters from C, a frame
CPython 3.11 cannot inline: 75 against 164 ns a tuple here (timeit), for the few built
on every request (its header, caller and arguments, a :class:`Stat`)."""


class Caller(NamedTuple):
    """Who sent a request: ``fuse_in_header.uid/gid/pid``."""

    uid: int
    gid: int
    pid: int
    groups: tuple[int, ...] = ()
    """Supplementary groups the request carries (FUSE_EXT_GROUPS, only on creation);
    empty when unknown, which FUSE's header alone never tells."""


ROOT_CALLER = Caller(0, 0, 0)


class Stat(NamedTuple):
    """An object's attributes: ``struct stat`` from a backend, ``struct fuse_attr``
    towards the kernel.

    ``dev``/``ino`` identify the object on the backend (hard links share them);
    the core maps that identity to a FUSE nodeid.  As in virtiofsd, ``ino`` is
    reported to the kernel unchanged, so ``stat()`` in a mount shows the
    backend's inode numbers (only pyfuse3, which insists on ino == nodeid,
    substitutes the nodeid).
    """

    dev: int
    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    rdev: int
    size: int
    blocks: int
    blksize: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def from_os(cls, st: os.stat_result) -> Stat:
        return build(
            cls,
            (
                st.st_dev,
                st.st_ino,
                st.st_mode,
                st.st_nlink,
                st.st_uid,
                st.st_gid,
                st.st_rdev,
                st.st_size,
                st.st_blocks,
                st.st_blksize,
                st.st_atime_ns,
                st.st_mtime_ns,
                st.st_ctime_ns,
            ),
        )

    @property
    def is_dir(self) -> bool:
        return stat_module.S_ISDIR(self.mode)


class Entry(NamedTuple):
    """``struct fuse_entry_out``: a node the kernel now holds one more lookup on.

    ``nodeid == 0`` is a negative entry (cache "does not exist" for
    ``entry_timeout``) and carries no lookup.
    """

    nodeid: int
    generation: int
    attr: Stat
    entry_timeout: float
    attr_timeout: float


class AttrReply(NamedTuple):
    """``struct fuse_attr_out``."""

    attr: Stat
    attr_timeout: float


class Opened(NamedTuple):
    """``struct fuse_open_out``: a new file or directory handle and its cache flags."""

    fh: int
    direct_io: bool = False
    keep_cache: bool = False
    cache_dir: bool = False
    nonseekable: bool = False


TimeChange = int | Literal["now"] | None
"""A new atime/mtime in ns since the epoch, ``"now"`` (``FATTR_*TIME_NOW``), or
``None`` to leave it alone (``UTIME_OMIT``)."""


@dataclass(slots=True)
class SetattrChanges:
    """``struct fuse_setattr_in`` with its ``valid`` bits decoded: ``None`` = unchanged."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime: TimeChange = None
    mtime: TimeChange = None
    kill_suidgid: bool = False


@dataclass(slots=True)
class StatFs:
    """``struct fuse_kstatfs``."""

    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    bsize: int
    namelen: int
    frsize: int


@dataclass(slots=True)
class Lock:
    """``struct fuse_file_lock``: a byte range ``[start, end]`` (inclusive, as in fuse.h).

    ``type`` is ``fcntl.F_RDLCK``, ``F_WRLCK`` or ``F_UNLCK``; ``pid`` is the
    holder's pid in GETLK replies.
    """

    start: int
    end: int
    type: int
    pid: int = 0


class DirEntry(NamedTuple):
    """One name in a directory listing, as a backend reports it."""

    name: bytes
    ino: int
    type: int  # DT_* value (hostfs.core.modes.dirent_type)
