"""Reply encoding: each struct decodes back to what was encoded."""

from __future__ import annotations

from hostfs.core.types import AttrReply, Entry, Lock, Opened, Stat, StatFs
from hostfs.fuse import abi, replies
from hostfs.fuse.scatter import gather, scatter_into, slices

ST = Stat(1, 77, 0o100644, 2, 1000, 100, 0x0803, 12345, 24, 4096, -1_500_000_000, 2**40, 7)


def buffer() -> memoryview:
    return memoryview(bytearray(512))


def test_attr_fields_split_times_and_keep_pre_epoch_dates() -> None:
    fields = replies.attr_fields(ST)
    assert fields[:3] == (77, 12345, 24)
    assert fields[3:9] == (-2, 2**40 // 10**9, 0, 500_000_000, 2**40 % 10**9, 7)
    assert fields[9:] == (0o100644, 2, 1000, 100, 0x0803, 4096, 0)


def test_entry_out_round_trip() -> None:
    out = buffer()
    replies.entry_out(out, 16, Entry(5, 1, ST, 1.5, 0.0))
    fields = abi.ENTRY_OUT.unpack_from(out, 16)
    assert fields[:6] == (5, 1, 1, 0, 500_000_000, 0)
    assert fields[6:] == replies.attr_fields(ST)


def test_attr_out_round_trip() -> None:
    out = buffer()
    replies.attr_out(out, 16, AttrReply(ST, 86400.0))
    assert abi.ATTR_OUT.unpack_from(out, 16) == (86400, 0, 0, *replies.attr_fields(ST))


def test_open_statfs_lock() -> None:
    out = buffer()
    replies.open_out(out, 0, Opened(9, direct_io=True, keep_cache=True, cache_dir=True))
    flags = abi.FOPEN_DIRECT_IO | abi.FOPEN_KEEP_CACHE | abi.FOPEN_CACHE_DIR
    assert abi.OPEN_OUT.unpack_from(out) == (9, flags, 0)
    replies.statfs_out(out, 0, StatFs(1, 2, 3, 4, 5, 4096, 255, 512))
    assert abi.KSTATFS.unpack_from(out) == (1, 2, 3, 4, 5, 4096, 255, 512, 0)
    replies.lk_out(out, 0, Lock(0, 2**63 - 1, 1, 42))
    assert abi.FILE_LOCK.unpack_from(out) == (0, 2**63 - 1, 1, 42)
    replies.out_header(out, 16, -2, 99)
    assert abi.OUT_HEADER.unpack_from(out) == (16, -2, 99)


def test_timeouts() -> None:
    assert replies.split_timeout(0) == (0, 0)
    assert replies.split_timeout(-1) == (0, 0)
    assert replies.split_timeout(2.25) == (2, 250_000_000)


def test_dirent_padding_and_fit() -> None:
    out = memoryview(bytearray(b"\xff" * 64))
    after = replies.dirent(out, 0, 64, b"abc", 7, 1, 8)
    assert after == 32
    assert abi.DIRENT.unpack_from(out) == (7, 1, 3, 8)
    assert bytes(out[24:32]) == b"abc\0\0\0\0\0"
    assert replies.dirent(out, after, 64, b"x" * 9, 8, 2, 8) == -1
    assert replies.dirent(out, after, 64, b"x" * 8, 8, 2, 8) == 64


def test_direntplus_with_and_without_entry() -> None:
    out = memoryview(bytearray(1024))
    after = replies.direntplus(out, 0, 1024, b".", 1, 1, 4, None)
    assert after == abi.rec_align(abi.DIRENTPLUS_SIZE + 1)
    assert abi.ENTRY_OUT.unpack_from(out)[0] == 0
    end = replies.direntplus(out, after, 1024, b"f", 77, 2, 8, Entry(5, 0, ST, 1, 1))
    assert abi.ENTRY_OUT.unpack_from(out, after)[0] == 5
    assert abi.DIRENT.unpack_from(out, after + abi.ENTRY_OUT.size) == (77, 2, 1, 8)
    assert replies.direntplus(out, end, end + 100, b"g", 1, 3, 8, None) == -1


def test_scatter_helpers() -> None:
    data = bytearray(range(10))
    pieces = [memoryview(data)[:3], memoryview(data)[3:4], memoryview(data)[4:]]
    assert [bytes(v) for v in slices(pieces, 2, 5)] == [b"\2", b"\3", b"\4\5\6"]
    assert bytes(gather(pieces, 2, 5)) == bytes(range(2, 7))
    assert gather(pieces, 4, 3).obj is data
    assert slices(pieces, 8, 10)[0].tobytes() == b"\x08\x09"
    target = bytearray(10)
    views = [memoryview(target)[:4], memoryview(target)[4:]]
    assert scatter_into(views, 2, memoryview(b"abcdefghijkl")) == 8
    assert target == b"\0\0abcdefgh"
