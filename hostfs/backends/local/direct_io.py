"""Reads and writes of files the guest opened with O_DIRECT (``--allow-direct-io``).

open(2), "O_DIRECT": the user buffer must be aligned to the file system's
logical block size.  The guest's pages are aligned in the guest, but the
buffers they land in here (a /dev/fuse read buffer, a slice of a virtqueue
descriptor) are not, so the host answers EINVAL.  Then the data goes through
a page-aligned bounce buffer (an anonymous mmap); offset and length stay the
guest's own, so a request the host file system cannot take directly still
fails as it would natively.  Without ``--allow-direct-io`` O_DIRECT never
reaches the host (virtiofsd's default) and none of this runs.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from collections.abc import Sequence


def preadv(fd: int, buffers: Sequence[memoryview], offset: int) -> int:
    try:
        return os.preadv(fd, buffers, offset)
    except OSError as error:
        if not _unaligned_direct(fd, error):
            raise
    with mmap.mmap(-1, _length(buffers)) as bounce, memoryview(bounce) as view:
        done = os.preadv(fd, [view], offset)
        _scatter(view[:done], buffers)
    return done


def pwritev(fd: int, buffers: Sequence[memoryview], offset: int) -> int:
    try:
        return os.pwritev(fd, buffers, offset)
    except OSError as error:
        if not _unaligned_direct(fd, error):
            raise
    with mmap.mmap(-1, _length(buffers)) as bounce:
        position = 0
        for buffer in buffers:
            bounce[position : position + len(buffer)] = buffer
            position += len(buffer)
        return os.pwritev(fd, [bounce], offset)


def _unaligned_direct(fd: int, error: OSError) -> bool:
    return error.errno == errno.EINVAL and bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def _length(buffers: Sequence[memoryview]) -> int:
    return max(1, sum(len(buffer) for buffer in buffers))


def _scatter(data: memoryview, buffers: Sequence[memoryview]) -> None:
    position = 0
    for buffer in buffers:
        chunk = data[position : position + len(buffer)]
        buffer[: len(chunk)] = chunk
        position += len(chunk)
        if position == len(data):
            return
