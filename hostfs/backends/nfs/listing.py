"""Directories whose every name this backend knows: a missing name costs no LOOKUP3.

Before every create the kernel looks the name up (fs/fuse/dir.c
``fuse_atomic_open``), and on NFS that negative LOOKUP3 is dear: ganesha
answered one in 460-490 us here, twice a positive one, about half of what a
create through the mount cost.  The Linux NFS client skips it only for
O_EXCL (``nfs_is_exclusive_create``); a FUSE server is never told why the
kernel asks.  But a directory this backend made is empty, and every change
made to it since came back with the directory's ``wcc_data`` (RFC 1813 §2.6):
attributes before and after.  While each change's *before* is the *after*
of the one we saw last, nobody else touched the directory in between, and we
know every name in it, so a name not among them is missing.

The rules, in one place:

- known from: a MKDIR3 this backend made (the new directory's attributes);
- kept by: each CREATE3, MKDIR3 or REMOVE3 of ours in it whose pre-op
  attributes match the last post-op ones; any other change of ours to it
  (through the path API, a failure, a retried call that was settled) ends it;
- trusted only where the user said nothing else changes the share
  (``--cache always`` or ``metadata``, ``CachePolicy.sole_client``), for the
  entry timeout after the last match.  Under ``auto`` a name another client
  made must be found at the first LOOKUP, as the Linux NFS client finds it
  (close-to-open); a change by another client anyway ends it at our next
  change, or at a READDIR that shows it;
- bounded: :data:`MAX_DIRECTORIES` directories, :data:`MAX_NAMES` names in all.

What wcc cannot see: a change by another client within the same timestamp
tick as ours, on a server whose file system keeps coarse timestamps (Linux
before 6.13's multigrain timestamps, which give a fine-grained ctime to the
change after one whose ctime was read, as every post-op reply reads it).
The Linux NFS client's negative dentries trust the same attributes
(``nfs_neg_need_reval``).  No I/O here: the backend reports, this decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from hostfs.backends.nfs.libnfs_c import NfsStat64

MAX_DIRECTORIES = 1024
"""Directories known at once; the oldest is forgotten first.  A build tree or an
untar makes directories faster than their knowledge runs out."""

MAX_NAMES = 65536
"""Names kept in all directories together: at most about 21 MiB of 255-byte names
(a guest making names without end must not grow the daemon without end).  A
directory that would pass it is forgotten, and asked again as any other."""


class Verifier(NamedTuple):
    """``wcc_attr`` (RFC 1813 §2.6): what NFSv3 says changes with a directory."""

    size: int
    mtime_ns: int
    ctime_ns: int


def verifier_of(st: NfsStat64) -> Verifier:
    """The ``wcc_attr`` fields of full attributes (``fattr3``, as libnfs gives them)."""
    return Verifier(st.size, st.mtime * 10**9 + st.mtime_nsec, st.ctime * 10**9 + st.ctime_nsec)


Wcc = tuple["Verifier | None", "NfsStat64 | None"]
"""A change's ``wcc_data``: the directory's attributes before and after (each optional)."""


@dataclass(slots=True)
class NameChange:
    """One change of ours to a directory: ``name`` added or removed.  ``wcc`` is set
    by the reply that made it, so it stays None for an outcome learnt otherwise
    (an error, a retried call whose outcome was checked by another call)."""

    directory: bytes
    name: bytes
    added: bool
    wcc: Wcc | None = None


class _Listing:
    __slots__ = ("names", "until_ns", "verifier")

    def __init__(self, verifier: Verifier, until_ns: int) -> None:
        self.names: set[bytes] = set()
        self.verifier = verifier
        self.until_ns = until_ns


class Listings:
    """The directories (by filehandle) whose whole listing is known, and until when."""

    def __init__(self, ttl_ns: int = 0) -> None:
        self.ttl_ns = ttl_ns
        """0: know nothing (every ``--cache`` policy but ``always`` and ``metadata``)."""
        self._known: dict[bytes, _Listing] = {}
        self._names = 0
        """Names in all the listings together."""

    def __len__(self) -> int:
        return len(self._known)

    def made(self, directory: bytes, st: NfsStat64, now_ns: int) -> None:
        """``directory`` was just made by us (MKDIR3), with attributes ``st``: empty."""
        if not self.ttl_ns:
            return
        self.forget(directory)
        if len(self._known) >= MAX_DIRECTORIES:
            self.forget(next(iter(self._known)))
        self._known[directory] = _Listing(verifier_of(st), now_ns + self.ttl_ns)

    def changed(self, change: NameChange, now_ns: int) -> None:
        """A change of ours ended (whether it was done or not)."""
        directory, name = change.directory, change.name
        listing = self._known.get(directory)
        if listing is None:
            return
        before, after = change.wcc if change.wcc is not None else (None, None)
        if before != listing.verifier or after is None or now_ns >= listing.until_ns:
            self.forget(directory)
            return
        if change.added and name not in listing.names:
            if self._names >= MAX_NAMES:
                self.forget(directory)
                return
            listing.names.add(name)
            self._names += 1
        elif not change.added and name in listing.names:
            listing.names.remove(name)
            self._names -= 1
        listing.verifier = verifier_of(after)
        listing.until_ns = now_ns + self.ttl_ns

    def listed(self, directory: bytes | None, names: set[bytes]) -> None:
        """A READDIR of ``directory`` found ``names``: if they are not what we know,
        someone else changed it (a listing must never show a name a LOOKUP denies)."""
        if directory is None:
            return
        listing = self._known.get(directory)
        if listing is not None and listing.names != names:
            self.forget(directory)

    def forget(self, directory: bytes | None) -> None:
        """A change we could not follow (the path API, a failure): ask the server again."""
        listing = self._known.pop(directory, None) if directory is not None else None
        if listing is not None:
            self._names -= len(listing.names)

    def missing_for(self, directory: bytes, name: bytes, now_ns: int) -> int:
        """How long (ns) ``name`` is known to be missing from ``directory``: 0 if unknown."""
        listing = self._known.get(directory)
        if listing is None or name in listing.names:
            return 0
        left = listing.until_ns - now_ns
        if left <= 0:
            self.forget(directory)
            return 0
        return left
