"""Open file and directory handles: the ``fh`` numbers FUSE hands back to us."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Generic, TypeVar

from hostfs.backends.base import BackendHandle
from hostfs.core.nodes import Node
from hostfs.core.types import DirEntry


@dataclass(slots=True, eq=False)
class OpenFile:
    node: Node
    handle: BackendHandle
    flags: int


@dataclass(slots=True, eq=False)
class OpenDir:
    """A directory stream.

    With a backend ``stream`` (see Backend.opendir), READDIR offsets are the
    backend's own and the core holds nothing else. Without one, offsets index
    ``entries``, a listing taken when the stream starts (or is rewound to
    offset 0), so a listing never repeats or skips a name while the directory
    changes underneath it; None when not taken yet or dropped (snapshots.py).
    """

    node: Node
    stream: BackendHandle | None = None
    entries: list[DirEntry] | None = None


H = TypeVar("H", OpenFile, OpenDir)


MAX_HANDLES = 1 << 20
"""Open handles of one kind a session may hold: fs.nr_open's default (1,048,576),
the most fds a Linux process can ever have open, and so the most an honest guest
program could. A backend whose handles pin no host fd (NFS) is bounded by this."""


class HandleTable(Generic[H]):
    """fh -> handle.  Numbers are never reused, so a stale fh cannot reach a new file."""

    def __init__(self, limit: int = MAX_HANDLES) -> None:
        self._handles: dict[int, H] = {}
        self._next_fh = 1
        self.limit = limit

    def __len__(self) -> int:
        return len(self._handles)

    def check(self) -> None:
        """Refuse a new handle before the backend opens one, so a refusal leaks nothing.

        ENFILE, as the local backend's fd budget: the guest's limit, not the caller's.
        """
        if len(self._handles) >= self.limit:
            raise OSError(errno.ENFILE, f"{len(self._handles)} handles open, the session's limit")

    def add(self, handle: H) -> int:
        self.check()
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = handle
        return fh

    def get(self, fh: int) -> H:
        try:
            return self._handles[fh]
        except KeyError:
            raise OSError(errno.EBADF, f"unknown file handle {fh}") from None

    def pop(self, fh: int) -> H:
        handle = self.get(fh)
        del self._handles[fh]
        return handle

    def drain(self) -> list[H]:
        handles = list(self._handles.values())
        self._handles.clear()
        return handles
