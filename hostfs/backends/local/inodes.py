"""The local backend's objects: an inode the guest holds, by file handle or pinned fd.

With ``--inode-file-handles`` prefer or mandatory, an inode the guest has looked
up costs no fd: the backend keeps its file handle (:mod:`file_handles`) and opens
an O_PATH fd from it only for the operation that needs one, as virtiofsd does.
Where the file system has no handles (and always with ``never``) the inode
pins the O_PATH fd it was looked up by, counted in the fd budget.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat as stat_module

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


class HandlesUnavailable(BackendUnavailable):
    """``mandatory`` on a share whose file system has no file handles; one line."""


class Inode:
    """One inode: ``handle`` when it has one, else ``fd``, an O_PATH fd it pins."""

    __slots__ = ("fd", "handle")

    def __init__(self, fd: int = -1, handle: FileHandle | None = None) -> None:
        self.fd = fd
        self.handle = handle

    def __repr__(self) -> str:
        return f"Inode(handle={self.handle})" if self.handle else f"Inode(fd={self.fd})"


class _Reopened:
    """``with``: an O_PATH fd opened from a handle for one operation, closed after it."""

    __slots__ = ("fd", "handle", "mount_fd")

    def __init__(self, mount_fd: int, handle: FileHandle) -> None:
        self.mount_fd = mount_fd
        self.handle = handle
        self.fd = -1

    def __enter__(self) -> int:
        self.fd = file_handles.open_by_handle(self.mount_fd, self.handle, _REOPEN_FLAGS)
        return self.fd

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)


class Inodes:
    """How the backend refers to the inodes it hands the core.

    Each mount the inodes lie on needs one fd for open_by_handle_at (virtiofsd
    keeps one per mount id too): the share's directory for the share's mount, and
    for a mount inside the share the first directory met on it, which is its root.
    """

    def __init__(self, mode: str, root_fd: int, fds: FdBudget) -> None:
        if mode not in file_handles.MODES:
            raise ValueError(f"unknown inode file handle mode {mode!r}")
        self._fds = fds
        self._mount_fds: dict[int, int] = {}
        """mount id -> an O_RDONLY directory fd on it, counted in the budget."""
        self._without_handles: set[int] = set()
        """st_dev of file systems found to have no handles: their inodes pin fds."""
        self._enabled = mode != "never"
        if self._enabled:
            self._start(mode, root_fd)

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

    def adopt(self, fd: int, st: Stat) -> Inode:
        """The inode of ``fd``, an O_PATH fd just opened through the budget: by handle
        (and ``fd`` closed) where there is one, else pinning ``fd``."""
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
        self._fds.close(fd)
        return Inode(handle=handle)

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
            return contextlib.nullcontext(inode.fd)
        return _Reopened(self._mount_fds[inode.handle.mount_id], inode.handle)

    def release(self, inode: Inode) -> None:
        """The core forgot ``inode``: give back its fd, if it pins one."""
        if inode.handle is None:
            self._fds.close(inode.fd)
            inode.fd = -1

    @staticmethod
    def same(known: Inode, found: Inode) -> bool:
        """Whether two inodes with one (st_dev, st_ino) are one inode: a pinned one cannot
        be freed and its number reused, a handle carries the inode's generation."""
        if known.handle is None or found.handle is None:
            return True
        return known.handle == found.handle

    def close(self) -> None:
        for fd in self._mount_fds.values():
            self._fds.close(fd)
        self._mount_fds.clear()
