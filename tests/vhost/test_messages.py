"""The vhost-user message codec (vhost-user.rst, "Message format")."""

from __future__ import annotations

import pytest

from hostfs.vhost import messages as m


def test_header_round_trip() -> None:
    data = m.encode_message(m.Request.SET_FEATURES, m.encode_u64(1 << 32), m.FLAG_NEED_REPLY)
    header = m.decode_header(data[: m.HEADER.size])
    assert (header.request, header.size, header.need_reply) == (2, 8, True)
    assert m.decode_u64(data[m.HEADER.size :]) == 1 << 32


@pytest.mark.parametrize(
    "raw",
    [
        m.HEADER.pack(1, 0, 0),  # version 0
        m.HEADER.pack(1, 2, 0),  # version 2
        m.HEADER.pack(1, 1, m.MAX_PAYLOAD + 1),
        b"\x01\x00",
    ],
)
def test_bad_headers_are_refused(raw: bytes) -> None:
    with pytest.raises(m.MessageError):
        m.decode_header(raw)


def test_reply_flags() -> None:
    header = m.decode_header(m.encode_reply(m.Request.GET_FEATURES, b"")[: m.HEADER.size])
    assert header.flags == m.VERSION | m.FLAG_REPLY


def test_vring_structs_round_trip() -> None:
    state = m.VringState(3, 256)
    assert m.VringState.decode(state.encode()) == state
    addr = m.VringAddr(1, 0, 0x1000, 0x3000, 0x2000, 0)
    assert m.VringAddr.decode(addr.encode()) == addr
    assert m.VringFile.decode(m.encode_u64(0x105)) == m.VringFile(5, True)
    assert m.VringFile.decode(m.VringFile(2, False).encode()) == m.VringFile(2, False)


def test_memory_table() -> None:
    regions = [
        m.MemoryRegionDesc(0, 1 << 20, 0x7F0000000000, 0),
        m.MemoryRegionDesc(1 << 30, 4096, 1, 8192),
    ]
    assert m.decode_memory_table(m.encode_memory_table(regions)) == regions
    single = m.encode_single_region(regions[1])
    assert m.decode_single_region(single) == regions[1]


def test_memory_table_limits() -> None:
    too_many = m.MEMORY_TABLE_HEADER.pack(9, 0) + bytes(9 * m.MEMORY_REGION.size)
    with pytest.raises(m.MessageError, match="regions"):
        m.decode_memory_table(too_many)
    truncated = m.MEMORY_TABLE_HEADER.pack(2, 0) + bytes(m.MEMORY_REGION.size)
    with pytest.raises(m.MessageError):
        m.decode_memory_table(truncated)
    with pytest.raises(m.MessageError):
        m.decode_single_region(bytes(16))


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x01\x02", m.VRING_STATE.pack(1, 2)[:7]],
)
def test_short_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(m.MessageError):
        m.VringState.decode(payload)
    with pytest.raises(m.MessageError):
        m.VringAddr.decode(payload)


def test_config_space() -> None:
    config = m.ConfigSpace(0, 40, 0, bytes(range(40)))
    assert m.ConfigSpace.decode(config.encode()) == config
    with pytest.raises(m.MessageError):
        m.ConfigSpace.decode(m.CONFIG_HEADER.pack(0, 40, 0) + bytes(10))
    with pytest.raises(m.MessageError):
        m.ConfigSpace.decode(m.CONFIG_HEADER.pack(0, 4096, 0))


def test_request_names() -> None:
    assert m.request_name(5) == "VHOST_USER_SET_MEM_TABLE"
    assert m.request_name(999) == "unknown request 999"
