"""How many file descriptors the local backend may hold for the guest.

Every node pins an O_PATH fd, every open file and directory stream one more,
all on the guest's say-so. Left unbounded they reach RLIMIT_NOFILE, and then
the next fd the vhost-user front-end sends (SCM_RIGHTS: a kick or call
eventfd, a memory region) arrives truncated (MSG_CTRUNC) and the connection
is lost. So the backend counts what it holds and stops short of the limit by
a reserve kept for the control plane.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Callable

from hostfs import procfd

CONTROL_PLANE_RESERVE = 64
"""fds kept free of the guest's objects, for what the daemon itself opens later:
16 for memory regions (SET_MEM_TABLE brings up to 8, VHOST_MEMORY_BASELINE_NREGIONS,
mapped before the old table's 8 are closed), 24 for kick/call/err eventfds of up
to 8 queues, 5 for the sockets, the back-end request channel, the dirty log and
the inflight area, about 6 for trio's epoll and wake-up pair and for logging, and
what one request opens for a moment (fsyncdir, syncfs, flush's dup)."""

REFUSAL = errno.ENFILE
"""The errno a guest gets when the budget is spent. ENFILE ("the system-wide limit
on the total number of open files has been reached", open(2)), not EMFILE: the
calling guest process has not reached its own limit, which it could inspect or
raise; the share's limit is shared by every process of the guest, as the system
file table is shared by every process of a host."""


def set_nofile_limit(limit: int | None) -> None:
    """``--rlimit-nofile``: N sets soft and hard to N, as virtiofsd does; 0 leaves the
    limits as they are; None (the default) lifts the soft limit to the hard one, since
    each node costs an fd (virtiofsd raises it too, to min(1000000, fs.nr_open))."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limit is None:
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    elif limit > 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        except ValueError:  # above the hard limit without CAP_SYS_RESOURCE
            raise OSError(errno.EPERM, f"cannot set RLIMIT_NOFILE to {limit}") from None


def open_fd_count() -> int:
    """The fds this process has open now (the listing's own fd not counted)."""
    return len(os.listdir(procfd.fd_directory())) - 1


class FdBudget:
    """The backend's fd count against its share of the soft RLIMIT_NOFILE."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.reclaim: Callable[[int], None] | None = None
        """Asked to close that many fds of a cache (inodes.py's hot fds) before a
        request is refused: cached fds are counted, but never cost the guest an ENFILE."""

    @classmethod
    def from_rlimit(cls, reserve: int = CONTROL_PLANE_RESERVE) -> FdBudget:
        """What the soft limit leaves once the fds open now and the reserve are set aside."""
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return cls(max(0, soft - open_fd_count() - reserve))

    def check(self, count: int = 1) -> None:
        """Refuse now an operation that will need ``count`` more fds: one that creates
        a name first and pins it after must not leave the name behind when refused."""
        if self.held + count > self.limit and self.reclaim is not None:
            self.reclaim(self.held + count - self.limit)
        if self.held + count > self.limit:
            raise OSError(REFUSAL, f"the share holds {self.held} fds, its limit")

    def open(self, opener: Callable[..., int], *args: object, **kwargs: object) -> int:
        """``opener(*args, **kwargs)``, a call that returns a new fd, if the budget allows one."""
        self.check()
        fd = opener(*args, **kwargs)
        self.held += 1
        return fd

    def close(self, fd: int) -> None:
        os.close(fd)
        self.held -= 1
