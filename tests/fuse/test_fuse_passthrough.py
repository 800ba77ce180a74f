"""Backing-id bookkeeping for FUSE passthrough, against a fake /dev/fuse."""

from __future__ import annotations

import errno

import pytest

from hostfs.fuse.passthrough import BackingFiles


class FakeDevice:
    def __init__(self, error: int = 0) -> None:
        self.error = error
        self.registered: dict[int, int] = {}
        self._next = 1

    def open_backing(self, fd: int) -> int:
        if self.error:
            raise OSError(self.error, "refused")
        self.registered[self._next] = fd
        self._next += 1
        return self._next - 1

    def close_backing(self, backing_id: int) -> None:
        del self.registered[backing_id]


def test_one_id_per_node_closed_with_its_last_handle() -> None:
    device = FakeDevice()
    backing = BackingFiles(device)
    assert backing.acquire(nodeid=5, fh=1, fd=30) == 1
    assert backing.acquire(nodeid=5, fh=2, fd=31) == 1
    assert backing.acquire(nodeid=6, fh=3, fd=32) == 2
    assert device.registered == {1: 30, 2: 32}
    backing.release(1)
    assert 1 in device.registered
    backing.release(2)
    backing.release(2)  # a handle released twice, or never passed through: no effect
    backing.release(99)
    assert device.registered == {2: 32} and len(backing) == 1


@pytest.mark.parametrize("error", [errno.EPERM, errno.EOPNOTSUPP, errno.ENOTTY])
def test_unsupported_turns_passthrough_off_for_the_session(error: int) -> None:
    device = FakeDevice(error)
    backing = BackingFiles(device)
    assert backing.acquire(5, 1, 30) is None
    device.error = 0
    assert backing.acquire(6, 2, 31) is None and not backing.enabled
    assert not device.registered


def test_a_file_that_cannot_be_backed_stays_without_passthrough_while_open() -> None:
    """The kernel refuses mixing cached and passthrough opens of one inode (EIO)."""
    device = FakeDevice(errno.ELOOP)
    backing = BackingFiles(device)
    assert backing.acquire(5, 1, 30) is None
    device.error = 0
    assert backing.acquire(5, 2, 31) is None, "same node, still open: same mode"
    assert backing.acquire(6, 3, 32) == 1 and backing.enabled
    backing.release(1)
    backing.release(2)
    assert backing.acquire(5, 4, 33) == 2, "all handles gone: a fresh try"
