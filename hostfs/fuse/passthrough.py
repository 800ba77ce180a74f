"""FUSE passthrough: the kernel reads and writes an open file's backing file itself.

With FUSE_PASSTHROUGH negotiated (fuse.h 7.40, Linux 6.9), the server
registers a host file descriptor with ``FUSE_DEV_IOC_BACKING_OPEN``, gets a
backing id, and answers OPEN/CREATE with ``FOPEN_PASSTHROUGH`` and that id:
from then on read, write and mmap of the file never reach the server.

Kernel rules this follows (fs/fuse/iomode.c): every passthrough open of one
inode must name the same backing file, and an inode cannot be open with and
without passthrough at once — either mistake fails the guest's open() with
EIO.  So a node gets one backing id, shared by all its handles and closed
with the last of them, and a node that could not get one stays without
passthrough until its handles are gone.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

_UNSUPPORTED = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL})
"""The ioctl's answers for "not here at all": no CAP_SYS_ADMIN, passthrough not
negotiated or not built in, no such ioctl.  Any other failure concerns one file."""


class BackingDevice(Protocol):
    """What the transport does for us: the two /dev/fuse ioctls."""

    def open_backing(self, fd: int) -> int: ...

    def close_backing(self, backing_id: int) -> None: ...


@dataclass
class _NodeBacking:
    backing_id: int | None
    """None: this node's handles are open without passthrough."""
    handles: int = 0


class BackingFiles:
    """Backing ids of open nodes, counted by the handles that use them."""

    def __init__(self, device: BackingDevice) -> None:
        self.device = device
        self.enabled = True
        self._nodes: dict[int, _NodeBacking] = {}
        self._handles: dict[int, int] = {}
        """fh -> nodeid, for every handle counted in ``_nodes``."""

    def __len__(self) -> int:
        """How many nodes are open (with passthrough or, having failed, without)."""
        return len(self._nodes)

    def acquire(self, nodeid: int, fh: int, fd: int) -> int | None:
        """The backing id for a new handle ``fh`` of ``nodeid`` (host file ``fd``),
        or None to open it without passthrough."""
        node = self._nodes.get(nodeid)
        if node is None:
            if not self.enabled:
                return None
            node = self._nodes[nodeid] = _NodeBacking(self._register(fd))
        node.handles += 1
        self._handles[fh] = nodeid
        return node.backing_id

    def _register(self, fd: int) -> int | None:
        try:
            return self.device.open_backing(fd)
        except OSError as error:
            if error.errno in _UNSUPPORTED:
                self.enabled = False
                log.warning("FUSE passthrough unavailable (%s): serving reads and writes", error)
            else:
                log.debug("no passthrough for one file (%s): serving its reads and writes", error)
            return None

    def release(self, fh: int) -> None:
        """Handle ``fh`` is gone; its node's backing id goes with the last handle."""
        nodeid = self._handles.pop(fh, None)
        if nodeid is None:
            return
        node = self._nodes[nodeid]
        node.handles -= 1
        if node.handles == 0:
            del self._nodes[nodeid]
            if node.backing_id is not None:
                try:
                    self.device.close_backing(node.backing_id)
                except OSError as error:  # the connection is going away
                    log.debug("closing backing id %d: %s", node.backing_id, error)
