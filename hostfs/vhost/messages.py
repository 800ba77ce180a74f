"""The vhost-user message codec: bytes in, typed values out, no I/O.

Everything here follows QEMU's ``docs/interop/vhost-user.rst`` ("Message
format", "Front-end message types"): a 12-byte header (``request``,
``flags``, ``size``, native endian = little endian on the hosts we run on)
followed by ``size`` bytes of payload; file descriptors travel beside the
message as SCM_RIGHTS.  Decoders raise :class:`MessageError` for anything
malformed; nothing else escapes.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

HEADER = struct.Struct("<III")
"""``request``, ``flags``, ``size``."""

VERSION = 0x1
"""``flags`` bits 0-1: the protocol version, always 1."""
VERSION_MASK = 0x3
FLAG_REPLY = 1 << 2
"""``flags`` bit 2: this message is a reply."""
FLAG_NEED_REPLY = 1 << 3
"""``flags`` bit 3: the sender wants a REPLY_ACK (``VHOST_USER_PROTOCOL_F_REPLY_ACK``)."""

MAX_PAYLOAD = 4096
"""The largest payload we accept.  The largest real one is GET/SET_CONFIG
(12 + 256 bytes) or a full memory table (8 + 8 * 32); anything bigger is a
broken stream we cannot resynchronise on."""

MAX_FDS = 8
"""At most 8 fds come with one message (``VHOST_MEMORY_BASELINE_NREGIONS``)."""

MAX_MEMORY_REGIONS = 8
"""``VHOST_MEMORY_BASELINE_NREGIONS``: the SET_MEM_TABLE limit."""

MAX_CONFIG_SIZE = 256
"""``VHOST_USER_MAX_CONFIG_SIZE`` in QEMU's ``hw/virtio/vhost-user.c``."""


class Request(enum.IntEnum):
    """``VHOST_USER_*`` front-end message types (vhost-user.rst, "Front-end message types")."""

    GET_FEATURES = 1
    SET_FEATURES = 2
    SET_OWNER = 3
    RESET_OWNER = 4
    SET_MEM_TABLE = 5
    SET_LOG_BASE = 6
    SET_LOG_FD = 7
    SET_VRING_NUM = 8
    SET_VRING_ADDR = 9
    SET_VRING_BASE = 10
    GET_VRING_BASE = 11
    SET_VRING_KICK = 12
    SET_VRING_CALL = 13
    SET_VRING_ERR = 14
    GET_PROTOCOL_FEATURES = 15
    SET_PROTOCOL_FEATURES = 16
    GET_QUEUE_NUM = 17
    SET_VRING_ENABLE = 18
    SEND_RARP = 19
    NET_SET_MTU = 20
    SET_BACKEND_REQ_FD = 21
    IOTLB_MSG = 22
    SET_VRING_ENDIAN = 23
    GET_CONFIG = 24
    SET_CONFIG = 25
    CREATE_CRYPTO_SESSION = 26
    CLOSE_CRYPTO_SESSION = 27
    POSTCOPY_ADVISE = 28
    POSTCOPY_LISTEN = 29
    POSTCOPY_END = 30
    GET_INFLIGHT_FD = 31
    SET_INFLIGHT_FD = 32
    GPU_SET_SOCKET = 33
    RESET_DEVICE = 34
    VRING_KICK = 35
    GET_MAX_MEM_SLOTS = 36
    ADD_MEM_REG = 37
    REM_MEM_REG = 38
    SET_STATUS = 39
    GET_STATUS = 40
    GET_SHARED_OBJECT = 41
    SET_DEVICE_STATE_FD = 42
    CHECK_DEVICE_STATE = 43


class ProtocolFeature(enum.IntFlag):
    """``VHOST_USER_PROTOCOL_F_*`` bits (vhost-user.rst, "Protocol features")."""

    MQ = 1 << 0
    LOG_SHMFD = 1 << 1
    RARP = 1 << 2
    REPLY_ACK = 1 << 3
    MTU = 1 << 4
    BACKEND_REQ = 1 << 5
    CROSS_ENDIAN = 1 << 6
    CRYPTO_SESSION = 1 << 7
    PAGEFAULT = 1 << 8
    CONFIG = 1 << 9
    BACKEND_SEND_FD = 1 << 10
    HOST_NOTIFIER = 1 << 11
    INFLIGHT_SHMFD = 1 << 12
    RESET_DEVICE = 1 << 13
    INBAND_NOTIFICATIONS = 1 << 14
    CONFIGURE_MEM_SLOTS = 1 << 15
    STATUS = 1 << 16
    XEN_MMAP = 1 << 17
    SHARED_OBJECT = 1 << 18
    DEVICE_STATE = 1 << 19


class MessageError(Exception):
    """A message that does not follow vhost-user.rst; the text says what is wrong."""


def request_name(request: int) -> str:
    try:
        return f"VHOST_USER_{Request(request).name}"
    except ValueError:
        return f"unknown request {request}"


@dataclass(frozen=True, slots=True)
class Header:
    request: int
    flags: int
    size: int

    @property
    def need_reply(self) -> bool:
        return bool(self.flags & FLAG_NEED_REPLY)


def decode_header(data: bytes) -> Header:
    """Check version and size: a bad header means the stream cannot be trusted any more."""
    if len(data) != HEADER.size:
        raise MessageError(f"short header ({len(data)} of {HEADER.size} bytes)")
    request, flags, size = HEADER.unpack(data)
    if flags & VERSION_MASK != VERSION:
        raise MessageError(f"unsupported protocol version {flags & VERSION_MASK}")
    if size > MAX_PAYLOAD:
        raise MessageError(f"payload of {size} bytes exceeds {MAX_PAYLOAD}")
    return Header(request, flags, size)


def encode_message(request: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """A complete message: header (version 1 plus ``flags``) and payload."""
    return HEADER.pack(request, VERSION | flags, len(payload)) + payload


def encode_reply(request: int, payload: bytes) -> bytes:
    return encode_message(request, payload, FLAG_REPLY)


def _unpack(layout: struct.Struct, payload: bytes, what: str) -> tuple[int, ...]:
    if len(payload) < layout.size:
        raise MessageError(f"{what}: payload of {len(payload)} bytes, need {layout.size}")
    return layout.unpack_from(payload)


U64 = struct.Struct("<Q")
"""``u64`` payload: features, protocol features, ack, slot counts, queue counts."""


def decode_u64(payload: bytes) -> int:
    return _unpack(U64, payload, "u64")[0]


def encode_u64(value: int) -> bytes:
    return U64.pack(value)


VRING_STATE = struct.Struct("<II")
"""``struct vhost_vring_state``: ``index``, ``num``."""


@dataclass(frozen=True, slots=True)
class VringState:
    index: int
    num: int

    @classmethod
    def decode(cls, payload: bytes) -> VringState:
        return cls(*_unpack(VRING_STATE, payload, "vring state"))

    def encode(self) -> bytes:
        return VRING_STATE.pack(self.index, self.num)


VRING_ADDR = struct.Struct("<IIQQQQ")
"""``struct vhost_vring_addr``: index, flags, descriptor / used / available ring
addresses (front-end virtual addresses), log address."""


@dataclass(frozen=True, slots=True)
class VringAddr:
    index: int
    flags: int
    desc_user_addr: int
    used_user_addr: int
    avail_user_addr: int
    log_guest_addr: int

    @classmethod
    def decode(cls, payload: bytes) -> VringAddr:
        return cls(*_unpack(VRING_ADDR, payload, "vring address"))

    def encode(self) -> bytes:
        return VRING_ADDR.pack(
            self.index,
            self.flags,
            self.desc_user_addr,
            self.used_user_addr,
            self.avail_user_addr,
            self.log_guest_addr,
        )


VRING_INDEX_MASK = 0xFF
VRING_NOFD = 1 << 8
"""SET_VRING_KICK/CALL/ERR payload: bits 0-7 the ring index, bit 8 "no fd" (polling)."""


@dataclass(frozen=True, slots=True)
class VringFile:
    """The u64 payload of SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR."""

    index: int
    nofd: bool

    @classmethod
    def decode(cls, payload: bytes) -> VringFile:
        value = decode_u64(payload)
        return cls(value & VRING_INDEX_MASK, bool(value & VRING_NOFD))

    def encode(self) -> bytes:
        return encode_u64(self.index | (VRING_NOFD if self.nofd else 0))


MEMORY_REGION = struct.Struct("<QQQQ")
"""``VhostUserMemoryRegion``: guest address, size, user address, mmap offset."""

MEMORY_TABLE_HEADER = struct.Struct("<II")
"""``VhostUserMemory``: ``nregions``, padding, then the regions."""

SINGLE_REGION_PADDING = struct.Struct("<Q")
"""``VhostUserMemRegMsg`` (ADD_MEM_REG/REM_MEM_REG): u64 padding, then one region."""


@dataclass(frozen=True, slots=True)
class MemoryRegionDesc:
    guest_phys_addr: int
    memory_size: int
    userspace_addr: int
    mmap_offset: int

    def encode(self) -> bytes:
        return MEMORY_REGION.pack(
            self.guest_phys_addr, self.memory_size, self.userspace_addr, self.mmap_offset
        )


def decode_memory_table(payload: bytes) -> list[MemoryRegionDesc]:
    """SET_MEM_TABLE: one fd per region comes with the message."""
    nregions, _padding = _unpack(MEMORY_TABLE_HEADER, payload, "memory table")
    if nregions > MAX_MEMORY_REGIONS:
        raise MessageError(f"memory table with {nregions} regions (at most {MAX_MEMORY_REGIONS})")
    needed = MEMORY_TABLE_HEADER.size + nregions * MEMORY_REGION.size
    if len(payload) < needed:
        raise MessageError(f"memory table of {nregions} regions needs {needed} bytes")
    return [
        MemoryRegionDesc(
            *MEMORY_REGION.unpack_from(payload, MEMORY_TABLE_HEADER.size + i * MEMORY_REGION.size)
        )
        for i in range(nregions)
    ]


def encode_memory_table(regions: list[MemoryRegionDesc]) -> bytes:
    return MEMORY_TABLE_HEADER.pack(len(regions), 0) + b"".join(r.encode() for r in regions)


def decode_single_region(payload: bytes) -> MemoryRegionDesc:
    """ADD_MEM_REG / REM_MEM_REG (``VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS``)."""
    needed = SINGLE_REGION_PADDING.size + MEMORY_REGION.size
    if len(payload) < needed:
        raise MessageError(f"memory region: payload of {len(payload)} bytes, need {needed}")
    return MemoryRegionDesc(*MEMORY_REGION.unpack_from(payload, SINGLE_REGION_PADDING.size))


def encode_single_region(region: MemoryRegionDesc) -> bytes:
    return SINGLE_REGION_PADDING.pack(0) + region.encode()


CONFIG_HEADER = struct.Struct("<III")
"""``VhostUserConfig``: offset, size, flags, then ``size`` bytes of config space."""


@dataclass(frozen=True, slots=True)
class ConfigSpace:
    offset: int
    size: int
    flags: int
    data: bytes

    @classmethod
    def decode(cls, payload: bytes) -> ConfigSpace:
        offset, size, flags = _unpack(CONFIG_HEADER, payload, "config space")
        if size > MAX_CONFIG_SIZE:
            raise MessageError(f"config space of {size} bytes (at most {MAX_CONFIG_SIZE})")
        data = payload[CONFIG_HEADER.size : CONFIG_HEADER.size + size]
        if len(data) < size:
            raise MessageError(f"config space claims {size} bytes, carries {len(data)}")
        return cls(offset, size, flags, bytes(data))

    def encode(self) -> bytes:
        return CONFIG_HEADER.pack(self.offset, self.size, self.flags) + self.data


LOG = struct.Struct("<QQ")
"""``VhostUserLog`` (SET_LOG_BASE with LOG_SHMFD): ``mmap_size``, ``mmap_offset``."""


@dataclass(frozen=True, slots=True)
class LogArea:
    """Where the dirty log lies in the shared memory fd that comes with SET_LOG_BASE."""

    size: int
    offset: int

    @classmethod
    def decode(cls, payload: bytes) -> LogArea:
        return cls(*_unpack(LOG, payload, "log area"))

    def encode(self) -> bytes:
        return LOG.pack(self.size, self.offset)


class TransferDirection(enum.IntEnum):
    """``transfer_direction`` of SET_DEVICE_STATE_FD (vhost-user.rst)."""

    SAVE = 0
    LOAD = 1


class MigrationPhase(enum.IntEnum):
    """``migration_phase`` of SET_DEVICE_STATE_FD: only "stopped" is defined (the rings
    are stopped, the back-end is suspended)."""

    STOPPED = 0


DEVICE_STATE_TRANSFER = struct.Struct("<II")
"""SET_DEVICE_STATE_FD payload: u32 ``transfer_direction``, u32 ``migration_phase``."""

DEVICE_STATE_NO_FD = 1 << 8
"""SET_DEVICE_STATE_FD reply, u64: bits 0-7 an error code (0 = success), bit 8 set when
the back-end returns no fd of its own (the front-end's fd is used)."""


@dataclass(frozen=True, slots=True)
class DeviceStateTransfer:
    direction: TransferDirection
    phase: MigrationPhase

    @classmethod
    def decode(cls, payload: bytes) -> DeviceStateTransfer:
        direction, phase = _unpack(DEVICE_STATE_TRANSFER, payload, "device state transfer")
        try:
            return cls(TransferDirection(direction), MigrationPhase(phase))
        except ValueError:
            raise MessageError(f"transfer direction {direction}, phase {phase}") from None

    def encode(self) -> bytes:
        return DEVICE_STATE_TRANSFER.pack(self.direction, self.phase)
