"""The local backend's objects: an inode the guest holds, by file handle or pinned fd.

With ``--inode-file-handles`` prefer (the default, as virtiofsd 1.13.3) or
mandatory, an inode the guest has looked up costs no fd: the backend keeps its
file handle (:mod:`file_handles`) and opens an O_PATH fd from it for the operation
that needs one, as virtiofsd does, keeping a bounded number of recent ones open.
Where the file system has no handles (and always with ``never``) the inode
pins the O_PATH fd it was looked up by, counted in the fd budget.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat as stat_module
from collections import OrderedDict

from hostfs import procfd
from hostfs.backends import BackendUnavailable
from hostfs.backends.local import file_handles
from hostfs.backends.local.fd_budget import FdBudget
from hostfs.backends.local.file_handles import FileHandle
from hostfs.core.types import Stat

log = logging.getLogger(__name__)

_REOPEN_FLAGS = os.O_PATH | os.O_CLOEXEC
"""As the fd it was looked up by: O_PATH (no open(2) side effects, a symlink itself)."""
_MOUNT_FD_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
"""open_by_handle_at answers EBADF to an O_PATH mount fd (it takes fdget, not
fdget_raw); virtiofsd opens its mount fds O_RDONLY too. A directory, so that
opening it has no side effect (a FIFO would block, a device act)."""


HOT_FDS = 1024
"""At most this many inodes known by handle keep an O_PATH fd between operations
(a quarter of the fd budget where that is less): enough for the directories and
files a guest works in, a constant bound however many nodes it holds."""


class HandlesUnavailable(BackendUnavailable):
    """``mandatory`` on a share whose file system has no file handles; one line."""


class Inode:
    """One inode: ``handle`` when it has one, else ``fd``, an O_PATH fd it pins.

    An inode with a handle may hold an O_PATH fd too while it is hot (``fd`` >= 0,
    see :class:`Inodes`); ``leases`` counts the operations using that fd now.
    """

    __slots__ = ("fd", "handle", "leases")

    def __init__(self, fd: int = -1, handle: FileHandle | None = None) -> None:
        self.fd = fd
        self.handle = handle
        self.leases = 0

    def __repr__(self) -> str:
        return f"Inode(handle={self.handle})" if self.handle else f"Inode(fd={self.fd})"

    def __enter__(self) -> int:
        """``with`` an inode without a handle (:meth:`Inodes.fd` only): the fd it pins.
        Its own context, so that an operation on it (the share's root, a file system
        without handles) makes no ``nullcontext`` (0.1 us of a 6 us LOOKUP)."""
        return self.fd

    def __exit__(self, *exc_info: object) -> None:
        pass


def _stat(fd: int, name: bytes | None) -> os.stat_result:
    if name is None:
        return os.stat(fd)
    return os.stat(name, dir_fd=fd, follow_symlinks=False)


class _Lease:
    """``with``: the O_PATH fd of an inode known by handle, for one operation.

    The inode leaves the LRU while leased, so no eviction (one the fd budget asks
    for in the middle of the operation) can close the fd under it."""

    __slots__ = ("inode", "inodes")

    def __init__(self, inodes: Inodes, inode: Inode) -> None:
        self.inodes = inodes
        self.inode = inode

    def __enter__(self) -> int:
        return self.inodes._lease(self.inode)

    def __exit__(self, *exc_info: object) -> None:
        self.inodes._unlease(self.inode)


class Inodes:
    """How the backend refers to the inodes it hands the core.

    Each mount the inodes lie on needs one fd for open_by_handle_at (virtiofsd
    keeps one per mount id too): the share's directory for the share's mount, and
    for a mount inside the share the first directory met on it, which is its root.

    Inodes known by handle keep the O_PATH fd of their last use while they are
    among the ``hot`` most recently used (an LRU, :data:`HOT_FDS` at most, counted
    in the fd budget and given back when the budget runs short).  A hot inode
    costs no open_by_handle_at per operation, and while its fd is open its inode
    cannot be freed and its number reused: a repeat LOOKUP of it may trust a stat
    by name (:meth:`identifies`), as with pinned fds, where a cold one needs its
    handle by name compared (name_to_handle_at, no open).  virtiofsd has no such
    cache: it opens every handle for each operation and looks every name up in full.
    """

    def __init__(self, mode: str, root_fd: int, fds: FdBudget, hot: int | None = None) -> None:
        if mode not in file_handles.MODES:
            raise ValueError(f"unknown inode file handle mode {mode!r}")
        self._fds = fds
        self._mount_fds: dict[int, int] = {}
        """mount id -> an O_RDONLY directory fd on it, counted in the budget."""
        self._without_handles: set[int] = set()
        """st_dev of file systems found to have no handles: their inodes pin fds."""
        self._hot: OrderedDict[Inode, None] = OrderedDict()
        """Inodes by handle whose fd is open and not leased, least recently used first."""
        self.hot_limit = min(HOT_FDS, fds.limit // 4) if hot is None else hot
        self._enabled = mode != "never"
        if self._enabled:
            self._start(mode, root_fd)
            fds.reclaim = self._evict

    def _start(self, mode: str, root_fd: int) -> None:
        """Try a handle on the share itself, both ways: open_by_handle_at also needs
        CAP_DAC_READ_SEARCH, which an unprivileged daemon lacks."""
        mount_fd = self._fds.open(os.open, procfd.fd_path(root_fd), _MOUNT_FD_FLAGS)
        try:
            handle = file_handles.name_to_handle(root_fd)
            os.close(file_handles.open_by_handle(mount_fd, handle, _REOPEN_FLAGS))
        except OSError as error:
            self._fds.close(mount_fd)
            if mode == "mandatory":
                raise HandlesUnavailable(
                    f"--inode-file-handles=mandatory: the share has no file handles "
                    f"({error.strerror})"
                ) from None
            log.warning("no file handles on the share (%s): nodes pin O_PATH fds", error.strerror)
            self._enabled = False
            return
        self._mount_fds[handle.mount_id] = mount_fd

    def pins(self, dev: int) -> bool:
        """Whether inodes on ``dev`` pin an fd (so that their (st_dev, st_ino) cannot be
        reused while held, and alone identifies them)."""
        return not self._enabled or dev in self._without_handles

    @staticmethod
    def identifies(inode: Inode) -> bool:
        """Whether ``inode``'s (st_dev, st_ino) names it and no other inode now: it
        holds an fd (pinned, or hot), so its inode cannot have been freed."""
        return inode.fd >= 0

    def adopt(self, fd: int, st: Stat) -> Inode:
        """The inode of ``fd``, an O_PATH fd just opened through the budget: by handle
        where there is one (``fd`` kept while hot), else pinning ``fd``."""
        if self.pins(st.dev):
            return Inode(fd)
        try:
            handle = file_handles.name_to_handle(fd)
            if handle.mount_id not in self._mount_fds and not self._add_mount(handle, fd, st):
                return Inode(fd)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EOVERFLOW):
                self._fds.close(fd)
                raise
            self._without_handles.add(st.dev)
            log.info("device %d:%d has no file handles: its nodes pin O_PATH fds",
                     os.major(st.dev), os.minor(st.dev))  # fmt: skip
            return Inode(fd)
        inode = Inode(fd, handle)
        self._cool(inode)
        return inode

    def adopt_open(self, fd: int, st: Stat) -> Inode | None:
        """The inode of ``fd``, a file just created and opened (not O_PATH), by handle
        and cold, with no O_PATH fd of its own; None where it must pin one (no handles
        there, or a mount not met yet): then :meth:`adopt` an O_PATH fd on it.

        CREATE's node: its handle comes from the open file itself (name_to_handle_at
        with AT_EMPTY_PATH takes any fd), so no second open of the new file is needed
        (a reopen through /proc/self/fd, 5 us here, a fifth of a CREATE's daemon
        time).  A created file is mostly written through its open handle and closed;
        an operation that wants its O_PATH fd later opens it from the handle, as for
        any cold node."""
        if self.pins(st.dev):
            return None
        try:
            handle = file_handles.name_to_handle(fd)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EOVERFLOW):
                raise
            return None  # adopt() settles it: the device pins fds from now on
        if handle.mount_id not in self._mount_fds:
            return None
        return Inode(-1, handle)

    def _add_mount(self, handle: FileHandle, fd: int, st: Stat) -> bool:
        """Keep a mount fd for the new mount ``fd`` lies on, if it is a directory (a mount
        is entered at its root); an inode first met elsewhere (a file bind-mounted on
        its own) pins its fd instead."""
        if not stat_module.S_ISDIR(st.mode):
            return False
        self._mount_fds[handle.mount_id] = self._fds.open(
            os.open, procfd.fd_path(fd), _MOUNT_FD_FLAGS
        )
        return True

    def fd(self, inode: Inode) -> contextlib.AbstractContextManager[int]:
        """``with``: an O_PATH fd on ``inode`` for one operation."""
        if inode.handle is None:
            return inode
        return _Lease(self, inode)

    def stat(self, inode: Inode, name: bytes | None = None) -> os.stat_result:
        """fstat(2) of ``inode``, or with ``name`` fstatat(2) of that name in the directory
        ``inode`` (a final symlink not followed): through the fd it holds with no lease
        when it holds one (GETATTR's and LOOKUP's common case).  A lease guards the fd
        against an eviction during the operation, and only opening an fd evicts (the fd
        budget's reclaim), always on the event loop's thread: a single stat opens
        nothing, so nothing can close the fd under it.  A hot inode still becomes the
        most recently used, as a lease makes it."""
        fd = inode.fd
        if fd < 0:
            with _Lease(self, inode) as leased:
                return _stat(leased, name)
        if inode.handle is not None and not inode.leases:
            self._hot.move_to_end(inode)
        return _stat(fd, name)

    def _lease(self, inode: Inode) -> int:
        if inode.leases == 0 and inode.fd >= 0:
            del self._hot[inode]
        inode.leases += 1
        if inode.fd < 0:
            assert inode.handle is not None
            try:
                inode.fd = self._fds.open(
                    file_handles.open_by_handle,
                    self._mount_fds[inode.handle.mount_id],
                    inode.handle,
                    _REOPEN_FLAGS,
                )
            except BaseException:
                inode.leases -= 1
                raise
        return inode.fd

    def _unlease(self, inode: Inode) -> None:
        inode.leases -= 1
        if inode.leases == 0 and inode.fd >= 0:
            self._cool(inode)

    def _cool(self, inode: Inode) -> None:
        """``inode``'s fd is free again: keep it as the most recently used, or close it."""
        self._hot[inode] = None
        if len(self._hot) > self.hot_limit:
            self._evict(len(self._hot) - self.hot_limit)

    def _evict(self, count: int) -> None:
        """Close the fds of up to ``count`` least recently used hot inodes."""
        for _ in range(min(count, len(self._hot))):
            inode, _ = self._hot.popitem(last=False)
            self._fds.close(inode.fd)
            inode.fd = -1

    def release(self, inode: Inode) -> None:
        """The core forgot ``inode``: give back its fd, if it holds one."""
        if inode.fd < 0:
            return
        if inode.handle is not None:
            self._hot.pop(inode, None)
        self._fds.close(inode.fd)
        inode.fd = -1

    def same(self, known: Inode, found: Inode) -> bool:
        """Whether two inodes with one (st_dev, st_ino) are one inode: a pinned one cannot
        be freed and its number reused, a handle carries the inode's generation.

        When they are, a cold ``known`` takes ``found``'s fresh fd and becomes hot (the
        core releases ``found`` next): its next lookup is the fast one again."""
        if known.handle is None or found.handle is None:
            return True
        if known.handle != found.handle:
            return False
        if known.fd < 0 and found.fd >= 0 and found.leases == 0:
            self._hot.pop(found, None)
            known.fd, found.fd = found.fd, -1
            self._cool(known)
        return True

    def close(self) -> None:
        self._evict(len(self._hot))
        for fd in self._mount_fds.values():
            self._fds.close(fd)
        self._mount_fds.clear()
