"""A request's arguments: the bytes after ``fuse_in_header``, read where they lie.

A request may be split across buffers at any point (one per descriptor; the
guest's virtio-fs driver gives each argument its own: ``sg_init_fuse_args`` in
fs/fuse/virtio_fs.c).  Decoders read fixed structs, bounded strings and
payloads out of :class:`Args` without joining the buffers first, so a request
costs no more than the fields it holds: a copy is made only of a range that
straddles buffers, and only of that range.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

from hostfs.fuse.scatter import gather, slices


class Args:
    """``size`` bytes from byte ``start`` of ``buffers``; offsets below are relative to it."""

    __slots__ = ("_buffers", "_one", "_start", "size")

    def __init__(self, buffers: Sequence[memoryview], start: int, size: int) -> None:
        self._buffers = buffers
        self._one = buffers[0] if len(buffers) == 1 else None
        self._start = start
        self.size = size

    def view(self, offset: int, length: int) -> memoryview:
        """``length`` contiguous bytes (fewer at the end): a view where one buffer holds
        them, else a copy of just this range."""
        length = max(0, min(length, self.size - offset))
        start = self._start + offset
        if self._one is not None:
            return self._one[start : start + length]
        return gather(self._buffers, start, length)

    def unpack(self, layout: struct.Struct, offset: int = 0) -> tuple[Any, ...]:
        """A fixed struct at ``offset``; ``struct.error`` when the arguments end first."""
        one = self._one
        if one is not None and offset >= 0 and offset + layout.size <= self.size:
            return layout.unpack_from(one, self._start + offset)  # in place: no view made
        return layout.unpack_from(self.view(offset, layout.size))

    def copy(self, offset: int, length: int) -> bytes:
        """``length`` bytes as ``bytes``: one copy, even across buffers."""
        if self._one is not None:
            return bytes(self.view(offset, length))
        return b"".join(self.views(offset, length))

    def views(self, offset: int, length: int) -> list[memoryview]:
        """``length`` bytes as views of the buffers, one per buffer touched: zero-copy."""
        length = max(0, min(length, self.size - offset))
        return slices(self._buffers, self._start + offset, length)

    def records(self, layout: struct.Struct, offset: int, count: int) -> Iterator[tuple[Any, ...]]:
        """``count`` consecutive structs, decoded one at a time as the caller iterates:
        no list, and a copy only of a record that straddles two buffers."""
        size = layout.size
        carry = b""
        for piece in self.views(offset, count * size):
            if carry:
                need = size - len(carry)
                carry += bytes(piece[:need])
                piece = piece[need:]
                if len(carry) < size:
                    continue
                yield layout.unpack(carry)
            whole = len(piece) - len(piece) % size
            yield from layout.iter_unpack(piece[:whole])
            carry = bytes(piece[whole:])
