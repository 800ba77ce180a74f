"""How many NFS calls the backend made, by kind: the measure of "RPCs per FUSE request".

Filehandle calls (:class:`~hostfs.backends.nfs.rpc3.Request`) are counted by
NFSv3 procedure (``LOOKUP3``, ``GETATTR3``...), one per RPC on the wire.
libnfs path-API calls are counted by function (``nfs_lstat64``, ``nfs_open``...):
each is one or more RPCs (a LOOKUP per path component, then the call itself),
so any of them in a count means a request cost more than its procedure.
Workers count from their own threads, so each counter takes a lock (about
0.1 us, against a round trip of tens of microseconds).
"""

from __future__ import annotations

import threading
from collections import Counter


class CallCounter:
    """Calls by name, safe to bump from one thread and read from another."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)


def total(counters: list[CallCounter]) -> Counter[str]:
    """The sum of several counters (one per context)."""
    summed: Counter[str] = Counter()
    for counter in counters:
        summed.update(counter.snapshot())
    return summed
