"""Open file and directory handles: the ``fh`` numbers FUSE hands back to us."""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from hostfs.core.backend import BackendHandle
from hostfs.core.nodes import Node, NodeTable
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

log = logging.getLogger(__name__)


MAX_HANDLES = 1 << 20
"""Open handles of one kind a session may hold: fs.nr_open's default (1,048,576),
the most fds a Linux process can ever have open, and so the most an honest guest
program could. A backend whose handles pin no host fd (NFS) is bounded by this."""


class Borrow(Generic[H]):
    """``async with table.borrow(fh, nodeid) as handle``: one request's use of a handle.

    A class, not an ``asynccontextmanager``: READ, WRITE and GETATTR with a handle
    borrow once each, and the generator-based manager (a generator, its frame and two
    extra coroutine steps) cost more than the borrow itself."""

    __slots__ = ("fh", "handle", "table")
    table: HandleTable[H]
    handle: H
    fh: int

    def __init__(self, table: HandleTable[H], handle: H, fh: int) -> None:
        self.table = table
        self.handle = handle
        self.fh = fh

    async def __aenter__(self) -> H:
        borrowers = self.table._borrowers
        borrowers[self.fh] = borrowers.get(self.fh, 0) + 1
        return self.handle

    async def __aexit__(self, *exc_info: object) -> None:
        # Here, not a coroutine of the table's: FLUSH, READ, WRITE borrow once each.
        fh = self.fh
        table = self.table
        count = table._borrowers[fh] - 1
        if count:
            table._borrowers[fh] = count
            return
        del table._borrowers[fh]
        close = table._deferred_closes.pop(fh, None)
        if close is not None:
            await table._close_deferred(fh, close)


class HandleTable(Generic[H]):
    """fh -> handle.  Numbers are never reused, so a stale fh cannot reach a new file.

    A request that uses a handle's backend resources *borrows* it for its
    duration (:meth:`borrow`).  Removing a handle (RELEASE, session end) makes
    its fh unknown at once, but the backend close waits for the last borrower:
    with worker threads a READ can still be queued on the handle's fd, and a
    close before it runs would let it read whatever file reuses the fd number.
    virtiofsd does the same: its handles are ``Arc<HandleData>``, and RELEASE
    only drops the map's reference, so the file closes with the last request.
    """

    def __init__(self, nodes: NodeTable | None = None, limit: int = MAX_HANDLES) -> None:
        self._nodes = nodes
        """Pinned while a handle is open (:meth:`NodeTable.pin`), when given."""
        self._handles: dict[int, H] = {}
        self._next_fh = 1
        self._borrowers: dict[int, int] = {}
        self._deferred_closes: dict[int, Callable[[], Awaitable[None]]] = {}
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
        if self._nodes is not None:
            self._nodes.pin(handle.node)
        return fh

    # -- migration (hostfs.migration.snapshot) ------------------------------

    @property
    def next_fh(self) -> int:
        return self._next_fh

    def items(self) -> list[tuple[int, H]]:
        return list(self._handles.items())

    def adopt(self, fh: int, handle: H) -> None:
        """A handle another daemon gave the kernel, under the same fh."""
        if fh in self._handles or fh <= 0:
            raise OSError(errno.EEXIST, f"file handle {fh} is taken")
        self._handles[fh] = handle
        if self._nodes is not None:
            self._nodes.pin(handle.node)
        self._next_fh = max(self._next_fh, fh + 1)

    def continue_from(self, next_fh: int) -> None:
        self._next_fh = max(self._next_fh, next_fh)

    def find(self, fh: int) -> H:
        """The handle ``fh`` whatever its node: for an fh the core just handed
        out, or a caller told only the fh (pyfuse3).  EBADF if unknown."""
        try:
            return self._handles[fh]
        except KeyError:
            raise OSError(errno.EBADF, f"unknown file handle {fh}") from None

    def get(self, fh: int, nodeid: int) -> H:
        """The handle ``fh`` of node ``nodeid``: EBADF for one of another node,
        as virtiofsd's ``find_handle`` (the guest names both, and may lie)."""
        handle = self.find(fh)
        if handle.node.nodeid != nodeid:
            raise OSError(errno.EBADF, f"file handle {fh} is not one of node {nodeid}")
        return handle

    def borrow(self, fh: int, nodeid: int) -> Borrow[H]:
        """``async with``: :meth:`get`, and keep the handle's backend resources open
        until the block ends."""
        return Borrow(self, self.get(fh, nodeid), fh)

    async def remove(self, fh: int, nodeid: int, close: Callable[[H], Awaitable[None]]) -> H:
        """Forget ``fh`` now; ``close(handle)`` now if no request borrows it, else
        when the last borrower returns (its errors are then only logged)."""
        handle = self.get(fh, nodeid)
        del self._handles[fh]
        if not self._deferred(fh, handle, close):
            await self._close(handle, close)
        return handle

    async def remove_all(self, close: Callable[[H], Awaitable[None]]) -> None:
        """Session end: :meth:`remove` every handle."""
        handles = list(self._handles.items())
        self._handles.clear()
        for fh, handle in handles:
            if not self._deferred(fh, handle, close):
                await self._close(handle, close)

    def _deferred(self, fh: int, handle: H, close: Callable[[H], Awaitable[None]]) -> bool:
        """Leave the close to the last borrower if a request borrows ``fh``: whether it
        did (a plain function, so a RELEASE nobody borrows costs no coroutine for it)."""
        if fh not in self._borrowers:
            return False
        self._deferred_closes[fh] = lambda: self._close(handle, close)
        return True

    async def _close(self, handle: H, close: Callable[[H], Awaitable[None]]) -> None:
        try:
            await close(handle)
        finally:
            if self._nodes is not None:
                self._nodes.unpin(handle.node)

    @staticmethod
    async def _close_deferred(fh: int, close: Callable[[], Awaitable[None]]) -> None:
        # Shielded: the borrower may be leaving because it was cancelled, and the
        # close is all that is left of a RELEASE that was already answered.
        with trio.CancelScope(shield=True):
            try:
                await close()
            except OSError as error:
                log.warning("closing released handle %d: %s", fh, error)
