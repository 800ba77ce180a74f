"""The io_uring and FUSE-over-io_uring layouts against <linux/io_uring.h> and fuse.h 7.42."""

from __future__ import annotations

import struct

import pytest

from hostfs.uring import abi


def test_struct_sizes_match_the_uapi_headers() -> None:
    assert abi.PARAMS.size == 120  # sizeof(struct io_uring_params)
    assert abi.CQE.size == 16  # sizeof(struct io_uring_cqe) without CQE32
    assert abi.CMD_REQ.size == 24  # sizeof(struct fuse_uring_cmd_req)
    assert abi.ENT_IN_OUT.size == 32  # sizeof(struct fuse_uring_ent_in_out)
    assert abi.REQ_HEADER_SIZE == 288  # sizeof(struct fuse_uring_req_header)


def test_params_ask_for_flags_and_decode_the_offsets() -> None:
    params = abi.encode_params(abi.SETUP_SQE128 | abi.SETUP_CQSIZE, cq_entries=4096)
    assert struct.unpack_from("<III", params) == (0, 4096, (1 << 10) | (1 << 3))
    # What the kernel writes back: sizes, features, then the two offset blocks.
    answer = abi.PARAMS.pack(
        64, 4096, 0, 0, 0, abi.FEAT_SINGLE_MMAP, 0, 0, 0, 0,
        0, 64, 256, 264, 276, 272, 65856, 0, 0,
        128, 192, 260, 268, 284, 320, 280, 0, 0,
    )  # fmt: skip
    offsets = abi.decode_params(answer)
    assert (offsets.sq_entries, offsets.cq_entries) == (64, 4096)
    assert (offsets.sq_head, offsets.sq_tail, offsets.sq_mask, offsets.sq_array) == (
        0, 64, 256, 65856,
    )  # fmt: skip
    assert (offsets.cq_head, offsets.cq_tail, offsets.cq_mask, offsets.cqes) == (128, 192, 260, 320)
    assert offsets.sq_ring_size == 65856 + 64 * 4
    assert offsets.cq_ring_size == 320 + 4096 * 16


def test_a_uring_cmd_sqe_carries_the_command_after_byte_48() -> None:
    sqe = memoryview(bytearray(b"\xff" * abi.SQE_SIZE))
    command = abi.encode_cmd_req(qid=1, commit_id=77)
    abi.encode_uring_cmd(sqe, 9, abi.CMD_REGISTER, 5, command, addr=0x1000, length=2)
    opcode, flags, _ioprio, fd, cmd_op, _pad, addr, length, _f, user_data, *_ = (
        abi.SQE_URING_CMD.unpack_from(sqe)
    )
    assert (opcode, flags, fd, cmd_op, addr, length, user_data) == (46, 0, 9, 1, 0x1000, 2, 5)
    assert bytes(sqe[48:72]) == command
    assert bytes(sqe[72:]) == bytes(56), "the rest of the command area is zeroed"
    assert abi.CMD_REQ.unpack(command) == (0, 77, 1)


def test_a_command_longer_than_80_bytes_is_refused() -> None:
    with pytest.raises(ValueError):
        abi.encode_uring_cmd(memoryview(bytearray(128)), 0, 1, 0, bytes(81))


def headers_with(length: int, unique: int, payload_size: int) -> memoryview:
    headers = memoryview(bytearray(abi.REQ_HEADER_SIZE))
    struct.pack_into("<IIQ", headers, 0, length, 1, unique)  # fuse_in_header: len, opcode, unique
    abi.ENT_IN_OUT.pack_into(headers, abi.ENT_IN_OUT_OFFSET, 0, unique, payload_size, 0, 0)
    return headers


def test_a_request_splits_into_in_header_op_in_and_payload() -> None:
    # MKDIR: fuse_mkdir_in (8 bytes) in op_in, the name "d\0" in the payload.
    commit_id, op_in_size, payload_size = abi.decode_ring_request(headers_with(40 + 8 + 2, 42, 2))
    assert (commit_id, op_in_size, payload_size) == (42, 8, 2)
    assert abi.commit_id(headers_with(40, 42, 0)) == 42


@pytest.mark.parametrize(("length", "payload"), [(30, 0), (40 + 129, 0), (50, 20)])
def test_sizes_outside_the_buffers_are_refused(length: int, payload: int) -> None:
    with pytest.raises(ValueError):
        abi.decode_ring_request(headers_with(length, 1, payload))


def test_a_reply_puts_the_out_header_first_and_the_payload_size_in_ent_in_out() -> None:
    headers = headers_with(40, 7, 0)
    out = struct.pack("<IiQ", 16 + 120, 0, 7)
    abi.encode_ring_reply(headers, memoryview(out), 120)
    assert bytes(headers[:16]) == out
    assert abi.ENT_IN_OUT.unpack_from(headers, abi.ENT_IN_OUT_OFFSET)[2] == 120


def test_the_payload_buffer_fits_the_kernels_largest_request() -> None:
    assert abi.max_payload(1 << 20, 256) == 1 << 20
    assert abi.max_payload(4096, 1) == 8192  # FUSE_MIN_READ_BUFFER
    assert abi.max_payload(1 << 17, 256) == 1 << 20  # max_pages wins
