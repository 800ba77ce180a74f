"""Options of the translation core, with the precedent for each default."""

from __future__ import annotations

from dataclasses import dataclass, field

from hostfs.core.idmap import IDENTITY, IdMapping
from hostfs.core.xattrmap import PASS_THROUGH, XattrMap


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long the kernel may trust what it was told, as virtiofsd's ``--cache``.

    - ``never``: 0 s entry/attr timeouts and direct I/O on every open file;
    - ``auto``: 1 s timeouts, page cache dropped on open (virtiofsd's default);
    - ``always``: 86400 s timeouts, page cache kept across opens, directory
      contents cached.
    """

    name: str
    entry_timeout: float
    attr_timeout: float
    direct_io: bool
    keep_cache: bool


CACHE_POLICIES: dict[str, CachePolicy] = {
    "never": CachePolicy("never", 0.0, 0.0, direct_io=True, keep_cache=False),
    "auto": CachePolicy("auto", 1.0, 1.0, direct_io=False, keep_cache=False),
    "always": CachePolicy("always", 86400.0, 86400.0, direct_io=False, keep_cache=True),
}


@dataclass(frozen=True, slots=True)
class FsOptions:
    """What the core does and what it offers in INIT.

    ``xattr`` is off by default, as in virtiofsd (``--xattr``); ``writeback``
    (FUSE_WRITEBACK_CACHE) is off by default, as in virtiofsd (``--writeback``);
    POSIX and flock locks are on: the core implements them itself, where
    virtiofsd answers ENOSYS.  ``readonly`` refuses every change with EROFS
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
    readdirplus: bool = True
    readonly: bool = False
    xattrmap: XattrMap = PASS_THROUGH
    ids: IdMapping = IDENTITY
