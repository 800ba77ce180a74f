"""Args: fields read where they lie, copies only of ranges that straddle buffers."""

from __future__ import annotations

import itertools
import struct

import pytest

from hostfs.fuse.args import Args

RECORD = struct.Struct("<QQ")
DATA = b"hd" + b"".join(RECORD.pack(i, 2 * i) for i in range(6))


def split_at(data: bytes, *cuts: int) -> list[memoryview]:
    points = [0, *cuts, len(data)]
    return [memoryview(data)[a:b] for a, b in itertools.pairwise(points)]


@pytest.mark.parametrize("cuts", [(), (2,), (9,), (18,), (9, 11, 40), tuple(range(1, 98))])
def test_records_decode_the_same_however_split(cuts: tuple[int, ...]) -> None:
    args = Args(split_at(DATA, *cuts), 2, len(DATA) - 2)
    assert list(args.records(RECORD, 0, 6)) == [(i, 2 * i) for i in range(6)]
    assert list(args.records(RECORD, RECORD.size, 2)) == [(1, 2), (2, 4)]


def test_views_are_zero_copy_and_copy_is_one_bytes() -> None:
    data = bytearray(DATA)
    buffers = split_at(data, 10, 20)
    args = Args(buffers, 2, len(data) - 2)
    views = args.views(4, 20)
    assert [len(view) for view in views] == [4, 10, 6]
    assert all(view.obj is data for view in views)
    assert args.copy(4, 20) == bytes(data[6:26])
    assert args.view(0, 5) == data[2:7] and args.view(0, 5).obj is data
    assert bytes(args.view(6, 8)) == bytes(data[8:16])


def test_reads_stop_at_the_end_of_the_arguments() -> None:
    args = Args([memoryview(DATA)], 2, 10)
    assert len(args.view(6, 100)) == 4
    assert args.views(20, 5) == []
    with pytest.raises(struct.error):
        args.unpack(RECORD, 0)
