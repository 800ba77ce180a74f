"""Directory listings the core keeps for backends that cannot resume by offset.

A backend without directory streams (NFS: libnfs lists a whole directory at
once) gets READDIR offsets that index a listing the core holds. Those listings
are bounded per session: beyond :data:`SNAPSHOT_ENTRIES` the least recently
read ones are dropped, and a dropped stream lists its directory again when
next read, as a stream rewound by the guest would.
"""

from __future__ import annotations

from collections import OrderedDict

from hostfs.core.handles import OpenDir
from hostfs.core.types import DirEntry

SNAPSHOT_ENTRIES = 100_000
"""Entries held across every listing of a session. A held entry costs about 180
bytes in CPython (the DirEntry, its name, its inode number: 300 listings of
5000 entries measured 265 MiB), so this is about 18 MiB; it still keeps the
listings of 20 directories of 5000 names being read at once."""


class SnapshotCache:
    """Which OpenDir streams hold a listing, oldest read first, and their total size."""

    def __init__(self, limit: int = SNAPSHOT_ENTRIES) -> None:
        self.limit = limit
        self.held = 0
        self._streams: OrderedDict[OpenDir, None] = OrderedDict()

    def keep(self, stream: OpenDir, entries: list[DirEntry]) -> None:
        """Give ``stream`` its listing and drop the oldest others beyond the limit.

        The stream being read keeps its listing even when it alone is larger:
        dropping it would list the directory again on every READDIR.
        """
        self.drop(stream)
        stream.entries = entries
        self._streams[stream] = None
        self.held += len(entries)
        while self.held > self.limit:
            oldest = next(iter(self._streams))
            if oldest is stream:
                break
            self.drop(oldest)

    def touch(self, stream: OpenDir) -> None:
        """``stream`` was just read: it is the last to be dropped."""
        if stream in self._streams:
            self._streams.move_to_end(stream)

    def drop(self, stream: OpenDir) -> None:
        """``stream`` gives its listing up (released, rewound, or the oldest)."""
        if stream in self._streams and stream.entries is not None:
            del self._streams[stream]
            self.held -= len(stream.entries)
        stream.entries = None
