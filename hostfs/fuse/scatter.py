"""Byte ranges over a list of buffers: a virtqueue chain or one /dev/fuse read.

A request or reply may be split across buffers at arbitrary points (one per
descriptor).  These helpers address such a list as one byte string without
joining it, so payloads stay zero-copy memoryviews.
"""

from __future__ import annotations

from collections.abc import Sequence


def total_length(buffers: Sequence[memoryview]) -> int:
    return sum(map(len, buffers))  # a third of a generator's cost, per request


def slices(buffers: Sequence[memoryview], start: int, length: int) -> list[memoryview]:
    """Views of ``length`` bytes from ``start``, one per buffer touched (fewer if the
    buffers end first)."""
    views = []
    for buffer in buffers:
        size = len(buffer)
        if start >= size:
            start -= size
            continue
        if length <= 0:
            break
        view = buffer[start : start + length]
        views.append(view)
        length -= len(view)
        start = 0
    return views


def gather(buffers: Sequence[memoryview], start: int, length: int) -> memoryview:
    """``length`` contiguous bytes from ``start``: a view when one buffer holds them all,
    else a copy.  Shorter if the buffers end first."""
    pieces = slices(buffers, start, length)
    if len(pieces) == 1:
        return pieces[0]
    return memoryview(b"".join(pieces))


def scatter_into(buffers: Sequence[memoryview], start: int, data: memoryview) -> int:
    """Copy ``data`` into the buffers from byte ``start``; return how much fitted.

    A walk of the buffers, no list of slices: every reply split over descriptors
    (the guest's out header has one of its own) comes through here."""
    copied = 0
    left = len(data)
    for buffer in buffers:
        if not left:
            break
        size = len(buffer)
        if start >= size:
            start -= size
            continue
        size = min(size - start, left)
        buffer[start : start + size] = data[copied : copied + size]
        copied += size
        left -= size
        start = 0
    return copied
