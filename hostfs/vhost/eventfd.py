"""The kick, call and err eventfds a front-end hands over (SET_VRING_KICK/CALL/ERR).

vhost-user.rst, "Communication": they are eventfds.  The fd comes from the
front-end, so it is checked when received: anything else (a pipe, a file,
an O_PATH fd) would make a read return end of file or a write block the
one thread that runs the device.
"""

from __future__ import annotations

import logging
import os
import struct

import trio

from hostfs import procfd
from hostfs.fuse.ratelimit import RateLimitedLog

logger = logging.getLogger(__name__)
guest_errors = RateLimitedLog(logger)
"""A failing call or err fd fails on every request."""

EVENTFD_VALUE = struct.Struct("<Q")
"""An eventfd is read and written as one native u64 (eventfd(2))."""
_ONE = EVENTFD_VALUE.pack(1)
"""What a signal writes, packed once: a ring sends one per interrupt."""

EVENTFD_LINK = "anon_inode:[eventfd]"
"""What /proc/self/fd/N links to for an eventfd: ``eventfd_fops`` is an anonymous
inode named "[eventfd]" (fs/eventfd.c, ``anon_inode_getfile``)."""


class NotAnEventfd(Exception):
    """The front-end sent some other kind of fd."""


def adopt_eventfd(fd: int) -> None:
    """Check ``fd`` is an eventfd and make it non-blocking; the caller still owns ``fd``.

    Non-blocking is what QEMU's own ``event_notifier_init`` asks for (EFD_NONBLOCK):
    a write to a counter at its maximum then fails with EAGAIN instead of blocking.
    """
    try:
        link = os.readlink(procfd.fd_path(fd))
    except OSError as error:
        raise NotAnEventfd(f"fd {fd}: {error}") from error
    if link != EVENTFD_LINK:
        raise NotAnEventfd(f"fd {fd} is {link!r}, not an eventfd")
    os.set_blocking(fd, False)


def signal_eventfd(fd: int) -> None:
    """Add 1 to the counter: an interrupt (call) or an error report (err)."""
    try:
        os.write(fd, _ONE)
    except BlockingIOError:
        pass  # the counter is saturated: the other side has a notification pending anyway
    except OSError as error:
        guest_errors.log(
            "eventfd signals", logging.WARNING, "cannot signal eventfd %d: %s", fd, error
        )


def close_fd(fd: int | None) -> None:
    """Close an eventfd a trio task may be waiting on."""
    if fd is not None:
        trio.lowlevel.notify_closing(fd)
        os.close(fd)
