"""The io_uring and FUSE-over-io_uring ABIs: numbers and layouts, no I/O.

io_uring: ``<linux/io_uring.h>`` (struct io_uring_params, io_uring_sqe,
io_uring_cqe, the mmap offsets) and io_uring_setup(2)/io_uring_enter(2).
FUSE over io_uring: ``<linux/fuse.h>`` 7.42 (struct fuse_uring_cmd_req,
fuse_uring_req_header, fuse_uring_ent_in_out, enum fuse_uring_cmd) and
fs/fuse/dev_uring.c for what the kernel does with them; see
Documentation/filesystems/fuse-io-uring.rst.

Everything here packs into or unpacks from caller-owned buffers, so the ring
driver (hostfs.uring.ring) and the session (hostfs.uring.session) stay the
only code that touches the kernel.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

# -- system calls (asm/unistd_64.h; the same numbers on every architecture since 5.1) --
SYS_IO_URING_SETUP = 425
SYS_IO_URING_ENTER = 426

# -- io_uring_params.flags (IORING_SETUP_*) --
SETUP_CQSIZE = 1 << 3
"""``cq_entries`` is ours, not twice ``sq_entries``."""
SETUP_COOP_TASKRUN = 1 << 8
"""Task work (where fuse copies a request into an entry, fuse_uring_send_in_task)
waits for this thread's next kernel entry instead of interrupting it with an IPI
(5.19); a thread asleep in epoll is still woken."""
SETUP_TASKRUN_FLAG = 1 << 9
"""With COOP_TASKRUN: the kernel sets :data:`SQ_TASKRUN` in the SQ ring's flags while
task work waits, so a polling loop knows to enter the kernel (5.19)."""
SETUP_SQE128 = 1 << 10
"""128-byte SQEs (5.19): fuse_uring_cmd() answers EINVAL without IO_URING_F_SQE128,
because ``struct fuse_uring_cmd_req`` lives in the SQE's second half."""

# -- io_uring_params.features (IORING_FEAT_*) --
FEAT_SINGLE_MMAP = 1 << 0
"""SQ and CQ rings share one mapping (5.4)."""

# -- the SQ ring's flags word (IORING_SQ_*) --
SQ_TASKRUN = 1 << 2
"""Task work is pending: enter the kernel to run it."""

# -- io_uring_enter(2) flags --
ENTER_GETEVENTS = 1 << 0

# -- mmap(2) offsets on the ring fd --
OFF_SQ_RING = 0
OFF_CQ_RING = 0x8000000
OFF_SQES = 0x10000000

# -- opcodes (enum io_uring_op) --
OP_URING_CMD = 46
"""IORING_OP_URING_CMD (5.19): hand ``sqe->cmd`` to the file's ``uring_cmd``, here
/dev/fuse's fuse_uring_cmd()."""

PARAMS = struct.Struct("<10I" + "7IIQ" + "8IQ")
"""``struct io_uring_params`` (120 bytes): sq_entries, cq_entries, flags,
sq_thread_cpu, sq_thread_idle, features, wq_fd, resv[3]; then
``io_sqring_offsets`` (head, tail, ring_mask, ring_entries, flags, dropped, array,
resv1, resv2) and ``io_cqring_offsets`` (head, tail, ring_mask, ring_entries,
overflow, cqes, flags, resv1, user_addr)."""

SQE_SIZE = 128
"""With IORING_SETUP_SQE128 each SQE is 128 bytes: 64 of ``io_uring_sqe`` whose last
16 (``cmd[]``) run on into 64 more, 80 bytes of command in all."""

SQE_URING_CMD = struct.Struct("<BBHiIIQIIQHHi")
"""The head of ``struct io_uring_sqe`` for IORING_OP_URING_CMD: opcode, flags,
ioprio, fd, cmd_op + __pad1 (the ``off`` union), addr, len, uring_cmd_flags,
user_data, buf_index, personality, file_index: 48 bytes; ``cmd[]`` starts at 48."""

SQE_CMD_OFFSET = 48
assert SQE_URING_CMD.size == SQE_CMD_OFFSET

CQE = struct.Struct("<QiI")
"""``struct io_uring_cqe``: user_data, res, flags (16 bytes without CQE32)."""


class RingOffsets(NamedTuple):
    """What io_uring_setup(2) wrote back: sizes and where each field sits in the maps."""

    sq_entries: int
    cq_entries: int
    features: int
    sq_head: int
    sq_tail: int
    sq_mask: int
    sq_flags: int
    sq_array: int
    cq_head: int
    cq_tail: int
    cq_mask: int
    cqes: int

    @property
    def sq_ring_size(self) -> int:
        return self.sq_array + self.sq_entries * 4

    @property
    def cq_ring_size(self) -> int:
        return self.cqes + self.cq_entries * CQE.size


def encode_params(flags: int, cq_entries: int = 0) -> bytearray:
    """A zeroed ``io_uring_params`` asking for ``flags`` (and a CQ size with CQSIZE)."""
    params = bytearray(PARAMS.size)
    struct.pack_into("<II", params, 4, cq_entries, flags)
    return params


def decode_params(params: bytes | bytearray | memoryview) -> RingOffsets:
    fields = PARAMS.unpack(params)
    sq_entries, cq_entries, _flags, _cpu, _idle, features = fields[:6]
    sq_head, sq_tail, sq_mask, _sq_count, sq_flags, _dropped, sq_array = fields[10:17]
    cq_head, cq_tail, cq_mask, _cq_count, _overflow, cqes = fields[19:25]
    return RingOffsets(
        sq_entries,
        cq_entries,
        features,
        sq_head,
        sq_tail,
        sq_mask,
        sq_flags,
        sq_array,
        cq_head,
        cq_tail,
        cq_mask,
        cqes,
    )


def encode_uring_cmd(
    sqe: memoryview,
    fd: int,
    cmd_op: int,
    user_data: int,
    command: bytes,
    addr: int = 0,
    length: int = 0,
) -> None:
    """Fill one 128-byte SQE with IORING_OP_URING_CMD ``cmd_op`` on ``fd``;
    ``command`` goes to ``sqe->cmd`` (at most 80 bytes), the rest is zeroed."""
    if len(command) > SQE_SIZE - SQE_CMD_OFFSET:
        raise ValueError("a uring command has 80 bytes")
    SQE_URING_CMD.pack_into(
        sqe, 0, OP_URING_CMD, 0, 0, fd, cmd_op, 0, addr, length, 0, user_data, 0, 0, 0
    )
    end = SQE_CMD_OFFSET + len(command)
    sqe[SQE_CMD_OFFSET:end] = command
    sqe[end:SQE_SIZE] = bytes(SQE_SIZE - end)


# -- FUSE over io_uring (fuse.h 7.42, Linux 6.14) --

CMD_REGISTER = 1
"""``FUSE_IO_URING_CMD_REGISTER``: hand the kernel an entry's buffers (``sqe->addr``
is an array of two iovecs, ``sqe->len`` 2) and wait for a request in them."""
CMD_COMMIT_AND_FETCH = 2
"""``FUSE_IO_URING_CMD_COMMIT_AND_FETCH``: the entry holds the reply to request
``commit_id``; take it and wait for the next request in the same buffers."""

IOV_SEGS = 2
"""``FUSE_URING_IOV_SEGS``: headers, then payload."""

CMD_REQ = struct.Struct("<QQH6x")
"""``struct fuse_uring_cmd_req`` (in ``sqe->cmd``): flags, commit_id, qid, padding."""

IN_OUT_HEADER_SIZE = 128
"""``FUSE_URING_IN_OUT_HEADER_SZ``: room for fuse_in_header / fuse_out_header."""
OP_IN_OUT_SIZE = 128
"""``FUSE_URING_OP_IN_OUT_SZ``: room for the opcode's fixed argument (``in_args[0]``)."""

ENT_IN_OUT = struct.Struct("<QQII Q")
"""``struct fuse_uring_ent_in_out``: flags, commit_id, payload_sz, padding, reserved."""

OP_IN_OFFSET = IN_OUT_HEADER_SIZE
ENT_IN_OUT_OFFSET = IN_OUT_HEADER_SIZE + OP_IN_OUT_SIZE
PAYLOAD_SZ_OFFSET = ENT_IN_OUT_OFFSET + 16
REQ_HEADER_SIZE = ENT_IN_OUT_OFFSET + ENT_IN_OUT.size
"""``sizeof(struct fuse_uring_req_header)`` = 288: the kernel refuses a smaller
first iovec (fuse_uring_create_ring_ent)."""

IN_HEADER_SIZE = 40
"""``sizeof(struct fuse_in_header)``."""
OUT_HEADER_SIZE = 16
"""``sizeof(struct fuse_out_header)``."""


def encode_cmd_req(qid: int, commit_id: int = 0) -> bytes:
    return CMD_REQ.pack(0, commit_id, qid)


COMMIT_ID = struct.Struct("<Q")
COMMIT_ID_OFFSET = SQE_CMD_OFFSET + 8
"""Where ``fuse_uring_cmd_req.commit_id`` sits in an SQE: an entry's COMMIT_AND_FETCH
differs from its last one only there (hostfs.uring.session fills the rest once)."""


def max_payload(max_write: int, max_pages: int, page_size: int = 4096) -> int:
    """The smallest payload buffer the kernel takes: ``ring->max_payload_sz`` is
    max(FUSE_MIN_READ_BUFFER, max_write, max_pages * PAGE_SIZE) (fuse_uring_create)."""
    return max(8192, max_write, max_pages * page_size)


_REQUEST_SIZES = struct.Struct(f"<I{ENT_IN_OUT_OFFSET + 8 - 4}xQI")
"""``fuse_in_header.len``, then ``ring_ent_in_out.commit_id`` and ``payload_sz``: the
three words a request's decoding needs, in one unpack."""


def decode_ring_request(headers: memoryview) -> tuple[int, int, int]:
    """Where one request sits in an entry the kernel filled: (commit_id, op_in_size,
    payload_size).  The kernel writes ``fuse_in_header`` to ``in_out``, ``in_args[0]``
    (the opcode's fixed part, possibly empty) to ``op_in`` and every later argument
    back to back into the payload (fuse_uring_args_to_ring).

    ``fuse_in_header.len`` counts all arguments, so the size of ``op_in`` is what
    the payload does not hold.  A size outside the buffers raises ValueError."""
    length, commit_id, payload_size = _REQUEST_SIZES.unpack_from(headers)
    op_in_size = length - IN_HEADER_SIZE - payload_size
    if not 0 <= op_in_size <= OP_IN_OUT_SIZE:
        raise ValueError(f"request of {length} bytes with a payload of {payload_size}")
    return commit_id, op_in_size, payload_size


def commit_id(headers: memoryview) -> int:
    """``ring_ent_in_out.commit_id``: the ``unique`` of the request in the entry."""
    value: int = ENT_IN_OUT.unpack_from(headers, ENT_IN_OUT_OFFSET)[1]
    return value


def encode_ring_reply(headers: memoryview, out_header: memoryview, payload_size: int) -> None:
    """Put a reply's ``fuse_out_header`` into ``in_out`` and its payload's length into
    ``ring_ent_in_out.payload_sz``; the kernel takes both at COMMIT_AND_FETCH
    (fuse_uring_commit, fuse_uring_copy_from_ring)."""
    headers[:OUT_HEADER_SIZE] = out_header[:OUT_HEADER_SIZE]
    struct.pack_into("<I", headers, PAYLOAD_SZ_OFFSET, payload_size)
