"""Options of the translation core, with the precedent for each default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hostfs.core.idmap import IDENTITY, IdMapping
from hostfs.core.xattrmap import PASS_THROUGH, XattrMap


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long the kernel may trust what it was told, as virtiofsd's ``--cache``.

    - ``never``: 0 s entry/attr timeouts and direct I/O on every open file;
    - ``metadata``: 86400 s timeouts (names and attributes cached), direct I/O
      on files, directory contents cached (virtiofsd's ``CachePolicy::Metadata``:
      ``DIRECT_IO`` for files, ``KEEP_CACHE`` for directories);
    - ``auto``: 1 s timeouts, page cache dropped on open (virtiofsd's default),
      directory contents cached (unlike virtiofsd) and checked against the
      directory's mtime at each listing's start, once the 1 s attribute timeout
      has passed (FUSE_AUTO_INVAL_DATA, fuse_readdir_cached), so a change made
      behind the mount shows within the same 1 s as a changed name or attribute,
      and one made through it at once (the kernel's i_version).  Measured here,
      2000 files on tmpfs, devfuse, same run: 68-103 listings/s uncached, 1.4k/s
      cached;
    - ``always``: 86400 s timeouts, page cache kept across opens, directory
      contents cached.

    ``metadata`` and ``always`` trade coherency for speed (QEMU's virtiofsd.rst:
    ``auto`` "acts similar to NFS with a 1 second metadata cache timeout",
    ``always`` "sets a long cache lifetime at the expense of coherency"): the
    user's word that nothing else changes the share, so a backend may answer
    even a name it never looked up from what it knows (:attr:`sole_client`).
    """

    name: str
    entry_timeout: float
    attr_timeout: float
    direct_io: bool
    keep_cache: bool
    cache_dir: bool
    sole_client: bool = False
    """Nothing else changes the share: a name this daemon did not make is not
    expected to appear (hostfs.backends.nfs.listing).  Under ``auto`` a name made
    elsewhere is found at its first LOOKUP, as an NFS client finds it (close-to-open)."""


CACHE_POLICIES: dict[str, CachePolicy] = {
    "never": CachePolicy("never", 0.0, 0.0, direct_io=True, keep_cache=False, cache_dir=False),
    "metadata": CachePolicy(
        "metadata",
        86400.0,
        86400.0,
        direct_io=True,
        keep_cache=False,
        cache_dir=True,
        sole_client=True,
    ),
    "auto": CachePolicy("auto", 1.0, 1.0, direct_io=False, keep_cache=False, cache_dir=True),
    "always": CachePolicy(
        "always",
        86400.0,
        86400.0,
        direct_io=False,
        keep_cache=True,
        cache_dir=True,
        sole_client=True,
    ),
}


@dataclass(frozen=True, slots=True)
class FsOptions:
    """What the core does and what it offers in INIT.

    ``xattr`` is off by default, as in virtiofsd (``--xattr``); ``writeback``
    (FUSE_WRITEBACK_CACHE) is off by default, as in virtiofsd (``--writeback``);
    POSIX record locks (``locks``) and flock locks (``flock``) are on: the core
    implements them itself, where virtiofsd answers ENOSYS; libvirt turns each
    off alone (``-o no_posix_lock``, ``-o no_flock``).
    ``host_locks`` (``--locks host``, the default) keeps them where the backend
    can keep them for every client of the storage (the local backend: the
    host's OFD and flock locks, so other daemons and host processes see them);
    False (``--locks local``), or a backend that cannot, keeps them in the
    core's tables, coherent within this daemon only.
    ``allow_direct_io`` passes the guest's O_DIRECT to the host's open(2); off by
    default, as in virtiofsd (``--allow-direct-io``): the guest's buffers need
    not be aligned for the host file system.  ``allow_mmap`` lets the guest
    map direct-I/O files shared (FUSE_DIRECT_IO_ALLOW_MMAP, fuse.h 7.39; off by
    default, as virtiofsd's ``--allow-mmap``).  ``killpriv_v2`` offers
    FUSE_HANDLE_KILLPRIV_V2 (the server drops setuid/setgid bits on write,
    truncate and chown): on by default, where virtiofsd's default is off
    (``--killpriv-v2``), because the core handles the bits in the same request.
    ``preserve_noatime`` keeps the guest's O_NOATIME; virtiofsd drops it unless
    ``--preserve-noatime`` (open(2) refuses it with EPERM to a caller who does not
    own the file, and the daemon opens with the caller's fsuid).
    ``readonly`` refuses every change with EROFS
    (virtiofsd's ``--readonly``, off by default; see :mod:`hostfs.core.readonly`).
    ``xattrmap`` renames extended attributes between guest and host
    (virtiofsd's ``--xattrmap``; none by default: names pass unchanged).
    ``ids`` translates uids and gids between guest and host (virtiofsd's
    ``--translate-uid``/``--translate-gid``; none by default).
    """

    cache: CachePolicy = field(default_factory=lambda: CACHE_POLICIES["auto"])
    xattr: bool = False
    writeback: bool = False
    locks: bool = True
    flock: bool = True
    host_locks: bool = True
    allow_direct_io: bool = False
    allow_mmap: bool = False
    killpriv_v2: bool = True
    preserve_noatime: bool = False
    readdirplus: bool = True
    readonly: bool = False
    xattrmap: XattrMap = PASS_THROUGH
    ids: IdMapping = IDENTITY

    @property
    def open_flags_dropped(self) -> int:
        """open(2) flags of the guest the host's open never sees (virtiofsd's defaults)."""
        dropped = 0 if self.allow_direct_io else os.O_DIRECT
        return dropped | (0 if self.preserve_noatime else os.O_NOATIME)
