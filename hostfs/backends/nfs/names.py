"""Which names a directory holds, to answer a LOOKUP of a missing one with no RPC.

A create through a mount costs the kernel's LOOKUP first (the negative lookup
fuse_atomic_open sends for a name it has no dentry for), then the CREATE: two
round trips where a plain NFS client sends one.  A directory's complete set of
names, known as of one version of its attributes, answers that LOOKUP here.

Where a set comes from: a directory this backend made itself (the MKDIR3 reply,
RFC 1813 §3.3.9, gives its attributes; a new directory holds only ``.`` and
``..``).  That is the pattern users and the benchmark follow (make a directory,
fill it).  A READDIRPLUS to EOF would be another source, but libnfs's path
opendir does not hand back the ``dir_attributes`` of its replies, so a listing
is not tied to a version here; directories found by LOOKUP have no set.

How it stays true: every change this backend makes in the directory by
filehandle (CREATE3, MKDIR3, REMOVE3) returns the directory's ``wcc_data``
(§2.6): ``before`` (size, mtime, ctime just before the change) and ``after``.
A ``before`` equal to the version the set is known at means nobody else changed
the directory in between, so the set gains or loses the one name and moves to
``after``'s version; any other ``before`` means another client did, and the set
is dropped.  Replies to concurrent calls arrive in any order, so a ``before``
that matches no version yet waits until the calls in flight in the directory
are answered; one still unmatched then is someone else's change.  Attributes of
the directory seen in any other reply either equal the version (a check: the
set is fresh again) or, with no change of ours in flight, drop it.  Every other
change (path API: rename, rmdir, link, symlink, a failed or retried call) drops
the set.

How long a check is trusted: the ``--cache`` attribute timeout (never: 0, no
answer from a set; auto: 1 s; metadata/always: their timeout), counted from the
sending of the last call whose reply confirmed the version, as any cached
attribute is.  The kernel keeps the negative answer as a negative dentry for
the entry timeout on top (fuse_lookup_name), so a name another client made can
stay unseen for up to both timeouts together (2 s under ``auto``), as a Linux
NFS negative dentry can outlive its directory's attribute check.  The Linux
NFS client's precedent: ``nfs_neg_need_reval`` trusts a
negative dentry while ``nfs_verify_change_attribute`` finds the directory
unchanged since the dentry's verifier, and ``nfs_wcc_update_inode`` keeps the
directory's cached state only when the pre-op attributes of its own change
equal what it held.  The limit is the same as there: a server whose directory
timestamps are coarser than the interval between two clients' changes (ext4's
are one tick) can hide a change whose size and times equal the version's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hostfs.backends.nfs.libnfs_c import NfsStat64

Version = tuple[int, int, int, int, int]
"""(size, mtime s, mtime ns, ctime s, ctime ns): what ``wcc_attr`` (RFC 1813 §2.6) holds."""

MAX_NAMES = 100_000
"""Beyond this many names a set is dropped (about 100 bytes a name): a directory that
large is listed, not filled name by name; its LOOKUPs go to the server as before."""


def version_of(st: NfsStat64) -> Version:
    return (st.size, st.mtime, st.mtime_nsec, st.ctime, st.ctime_nsec)


class DirNames:
    """The complete set of names of one directory as of :attr:`version` (sans-I/O)."""

    __slots__ = ("changing", "checked_at", "names", "unmatched", "version")

    def __init__(self, version: Version, checked_at: int) -> None:
        self.names: set[bytes] = set()
        self.version = version
        self.checked_at = checked_at
        """When the call whose reply last confirmed :attr:`version` was sent (monotonic ns)."""
        self.changing = 0
        """Our changes in the directory sent and not answered yet."""
        self.unmatched: list[tuple[Version, Version, int]] = []
        """(before, after, sent) of answered changes whose ``before`` no version reached yet."""

    def knows_missing(self, name: bytes, now: int, ttl_ns: int) -> bool:
        """Whether ``name`` is surely not in the directory: the set is settled (every
        reply explained) and was confirmed less than ``ttl_ns`` ago."""
        return not self.unmatched and now - self.checked_at < ttl_ns and name not in self.names

    def begin(self) -> None:
        """A change of ours in the directory is about to be sent."""
        self.changing += 1

    def changed(
        self,
        before: Version | None,
        after: Version | None,
        sent: int,
        added: bytes | None = None,
        removed: bytes | None = None,
    ) -> bool:
        """A change of ours succeeded with this ``wcc_data``; whether the set still holds.

        The name is added or removed at once (it is true whatever else happened);
        the version moves along the chain of ``before`` -> ``after``."""
        if before is None or after is None:
            return False  # the server did not say: nothing to check against
        if added is not None:
            self.names.add(added)
        if removed is not None:
            self.names.discard(removed)
        if len(self.names) > MAX_NAMES:
            return False
        self.unmatched.append((before, after, sent))
        self._follow()
        return True

    def end(self) -> bool:
        """The change begun is answered (and :meth:`changed` told, if it succeeded);
        whether the set still holds: not if some change stays unexplained."""
        self.changing -= 1
        return self.changing > 0 or not self.unmatched

    def seen(self, version: Version, sent: int) -> bool:
        """The directory's attributes in a reply to a call sent at ``sent``; whether the
        set still holds.  Old news (sent before the last check) says nothing."""
        if sent < self.checked_at:
            return True
        if version == self.version:
            self.checked_at = sent
            return True
        # An in-between version of our own changes in flight, or someone else's:
        # the chain of their replies tells which.
        return self.changing > 0

    def _follow(self) -> None:
        progressed = True
        while progressed:
            progressed = False
            for index, (before, after, sent) in enumerate(self.unmatched):
                if before == self.version:
                    del self.unmatched[index]
                    self.version = after
                    self.checked_at = max(self.checked_at, sent)
                    progressed = True
                    break
