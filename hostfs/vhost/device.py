"""The vhost-user-fs device: answers the front-end's messages and runs the rings.

Messages are those QEMU 7.2's ``vhost-user-fs`` sends (vhost-user.rst,
"Front-end message types"); the virtio side is the File System Device of
virtio 1.2 §5.11: queue 0 is the hiprio queue (FORGET, INTERRUPT), queues
1..N carry requests, config space is ``struct virtio_fs_config``.  Migration
(vhost-user.rst, "Migration", QEMU >= 8.2) adds the dirty log (SET_LOG_BASE,
VHOST_F_LOG_ALL: dirty_log.py) and the device-state transfer (SET_DEVICE_STATE_FD,
CHECK_DEVICE_STATE), whose content is hostfs.migration's, handed in as ``migration``.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from hostfs.core.filesystem import FileSystem
from hostfs.fuse.ratelimit import RateLimitedLog
from hostfs.fuse.transport import RequestHandler
from hostfs.vhost.channel import Message
from hostfs.vhost.dirty_log import VHOST_F_LOG_ALL, VHOST_VRING_F_LOG, DirtyLog, DirtyLogError
from hostfs.vhost.eventfd import NotAnEventfd, adopt_eventfd, close_fd
from hostfs.vhost.memory import GuestMemory, GuestMemoryError
from hostfs.vhost.messages import (
    DEVICE_STATE_NO_FD,
    ConfigSpace,
    DeviceStateTransfer,
    LogArea,
    MessageError,
    ProtocolFeature,
    Request,
    TransferDirection,
    VringAddr,
    VringFile,
    VringState,
    decode_memory_table,
    decode_single_region,
    decode_u64,
    encode_reply,
    encode_u64,
    request_name,
)
from hostfs.vhost.polling import POLL_MAX_NS
from hostfs.vhost.ring import Ring
from hostfs.vhost.ring_state import RingStateError
from hostfs.vhost.virtqueue import (
    MAX_QUEUE_SIZE,
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    RingError,
)

logger = logging.getLogger(__name__)
guest_errors = RateLimitedLog(logger)
"""Refused messages: a front-end can send them in a loop."""

VIRTIO_F_VERSION_1 = 1 << 32
VHOST_USER_F_PROTOCOL_FEATURES = 1 << 30

DEVICE_FEATURES = (
    VIRTIO_F_VERSION_1
    | VIRTIO_RING_F_INDIRECT_DESC
    | VIRTIO_RING_F_EVENT_IDX
    | VHOST_USER_F_PROTOCOL_FEATURES
    | VHOST_F_LOG_ALL
)
"""What virtiofsd 1.x offers; the File System Device has no feature bits of its own.
Without LOG_ALL QEMU blocks migration ("vhost lacks VHOST_F_LOG_ALL feature")."""

PROTOCOL_FEATURES = (
    ProtocolFeature.MQ
    | ProtocolFeature.REPLY_ACK
    | ProtocolFeature.RESET_DEVICE
    | ProtocolFeature.CONFIGURE_MEM_SLOTS
    | ProtocolFeature.LOG_SHMFD
)
"""virtiofsd 1.x's set; CONFIG is added only with a tag, DEVICE_STATE only when the
device may migrate, as there."""

MAX_MEM_SLOTS = 32
"""GET_MAX_MEM_SLOTS: ``VHOST_USER_MAX_RAM_SLOTS`` of libvhost-user in QEMU 7.2."""

TAG_SIZE = 36
VIRTIO_FS_CONFIG = struct.Struct(f"<{TAG_SIZE}sI")
"""``struct virtio_fs_config`` (linux/virtio_fs.h): tag[36], le32 num_request_queues."""

HIPRIO_QUEUES = 1

MAX_REQUEST_QUEUES = 1023
"""QEMU's ``VIRTIO_QUEUE_MAX`` (1024 virtqueues a device) less the hiprio queue."""

DEFAULT_REQUEST_QUEUES = 1
"""QEMU's ``num-request-queues`` default and virtiofsd's only value.  Not larger: the
count is also ``num_request_queues`` in our config space, which a front-end reading it
(PROTOCOL_F_CONFIG, the ``--tag`` case) hands to the guest as the queues to set up, so
it must equal the front-end's count, not exceed it."""


class DeviceError(Exception):
    """A message that is well formed but cannot be honoured now."""


class StateTransfer(Protocol):
    """One SAVE or LOAD of the session's state under way (hostfs.migration.transfer)."""

    async def result(self) -> str | None:
        """None once the whole state went through, else why not."""

    @property
    def resume(self) -> Callable[[], Awaitable[None]] | None:
        """After a save: what to do if the rings start again (the migration failed)."""


class Migration(Protocol):
    """What moves a session's state through SET_DEVICE_STATE_FD's pipe; the device
    itself knows nothing of the state (hostfs.migration does)."""

    def start(
        self,
        nursery: trio.Nursery,
        session: RequestHandler,
        direction: TransferDirection,
        fd: int,
    ) -> StateTransfer:
        """Start saving into or loading from ``fd`` (taken over); ValueError if this
        session cannot."""


Handler = Callable[["VhostUserFsDevice", Message], Awaitable[bytes | None]]
_HANDLERS: dict[int, Handler] = {}
_ERROR_REPLIES: dict[int, bytes] = {}


def handles(request: Request, error_reply: bytes | None = None) -> Callable[[Handler], Handler]:
    """Register a message handler; ``error_reply`` marks messages that always get a reply."""

    def register(function: Handler) -> Handler:
        _HANDLERS[request] = function
        if error_reply is not None:
            _ERROR_REPLIES[request] = error_reply
        return function

    return register


class VhostUserFsDevice:
    """Device state for one front-end connection at a time.

    ``new_session`` makes the FUSE request handler for a session (a
    ``hostfs.fuse.Dispatcher``); ``concurrency`` is how many requests each
    queue works on at once (0 = one, inline in the queue's task).

    A reset (RESET_DEVICE, RESET_OWNER, disconnect) destroys the session at
    once.  QEMU 7.2 reboots a guest without either: it stops every ring
    (GET_VRING_BASE) and starts them again (SET_FEATURES, ...), exactly as it
    pauses and resumes a VM, so that case is left to the next FUSE_INIT, on
    which ``FileSystem.init()`` destroys the old session; destroying on the
    stop would break a resumed guest.
    """

    def __init__(
        self,
        fs: FileSystem,
        new_session: Callable[[], RequestHandler],
        *,
        tag: str | None = None,
        num_request_queues: int = DEFAULT_REQUEST_QUEUES,
        concurrency: int = 0,
        migration: Migration | None = None,
        poll_max_ns: int = POLL_MAX_NS,
    ) -> None:
        """``migration``: None for a device that does not offer
        VHOST_USER_PROTOCOL_F_DEVICE_STATE.  ``poll_max_ns``: how long a ring may look
        for requests before it sleeps (hostfs.vhost.polling)."""
        if tag is not None and len(tag.encode()) > TAG_SIZE:
            raise ValueError(f"tag longer than {TAG_SIZE} bytes")
        if not 1 <= num_request_queues <= MAX_REQUEST_QUEUES:
            raise ValueError(f"request queues {num_request_queues} outside 1..{MAX_REQUEST_QUEUES}")
        self.fs = fs
        self.new_session = new_session
        self.handler = new_session()
        self.tag = tag
        self.num_queues = HIPRIO_QUEUES + num_request_queues
        self.concurrency = concurrency
        self.poll_max_ns = poll_max_ns
        self.memory = GuestMemory()
        self.rings = [Ring(i, self.poll_max_ns) for i in range(self.num_queues)]
        self.acked_features = 0
        self.acked_protocol_features = 0
        self._nursery: trio.Nursery | None = None
        self.migration = migration
        self._transfer: StateTransfer | None = None
        self._resume: Callable[[], Awaitable[None]] | None = None
        """Set by a save (hostfs.migration.transfer): run if the rings start again."""
        self.dirty_log: DirtyLog | None = None

    @property
    def protocol_features(self) -> int:
        features = PROTOCOL_FEATURES | (ProtocolFeature.CONFIG if self.tag is not None else 0)
        return features | (ProtocolFeature.DEVICE_STATE if self.migration is not None else 0)

    def attach(self, nursery: trio.Nursery) -> None:
        """A front-end connected: ring tasks run in ``nursery``."""
        self._nursery = nursery

    # -- messages ----------------------------------------------------------

    async def handle_message(self, message: Message) -> bytes | None:
        """The reply to send, if any; errors are logged and refused, never raised."""
        request = message.header.request
        name = request_name(request)
        handler = _HANDLERS.get(request)
        payload: bytes | None = None
        ok = False
        try:
            if handler is None:
                guest_errors.log("refused messages", logging.WARNING, "refusing %s", name)
            else:
                logger.debug("%s (%d bytes, %d fds)", name, len(message.payload), len(message.fds))
                payload = await handler(self, message)
                ok = True
        except (MessageError, DeviceError, GuestMemoryError, RingError, RingStateError) as error:
            guest_errors.log("refused messages", logging.ERROR, "%s refused: %s", name, error)
        finally:
            message.close_fds()
        if request in _ERROR_REPLIES:
            if not ok or payload is None:
                payload = _ERROR_REPLIES[request]
            return encode_reply(request, payload)
        if message.header.need_reply:
            # REPLY_ACK: 0 is success, anything else failure (vhost-user.rst, "REPLY_ACK").
            return encode_reply(request, encode_u64(0 if ok else 1))
        return None

    def _ring(self, index: int) -> Ring:
        if not 0 <= index < self.num_queues:
            raise DeviceError(f"no queue {index} (the device has {self.num_queues})")
        return self.rings[index]

    def _idle_ring(self, index: int) -> Ring:
        ring = self._ring(index)
        ring.lifecycle.check_configurable()
        return ring

    @handles(Request.GET_FEATURES, error_reply=encode_u64(0))
    async def _get_features(self, message: Message) -> bytes:
        return encode_u64(DEVICE_FEATURES)

    @handles(Request.SET_FEATURES)
    async def _set_features(self, message: Message) -> None:
        features = decode_u64(message.payload)
        if features & ~DEVICE_FEATURES:
            raise DeviceError(f"features {features & ~DEVICE_FEATURES:#x} were not offered")
        self.acked_features = features
        self._update_logging()

    @handles(Request.GET_PROTOCOL_FEATURES, error_reply=encode_u64(0))
    async def _get_protocol_features(self, message: Message) -> bytes:
        return encode_u64(self.protocol_features)

    @handles(Request.SET_PROTOCOL_FEATURES)
    async def _set_protocol_features(self, message: Message) -> None:
        features = decode_u64(message.payload)
        if features & ~self.protocol_features:
            extra = features & ~self.protocol_features
            raise DeviceError(f"protocol features {extra:#x} were not offered")
        self.acked_protocol_features = features

    @handles(Request.SET_OWNER)
    async def _set_owner(self, message: Message) -> None:
        """Nothing to do: one front-end per connection."""

    @handles(Request.RESET_OWNER)
    async def _reset_owner(self, message: Message) -> None:
        await self.reset()

    @handles(Request.RESET_DEVICE)
    async def _reset_device(self, message: Message) -> None:
        await self.reset()

    @handles(Request.GET_QUEUE_NUM, error_reply=encode_u64(0))
    async def _get_queue_num(self, message: Message) -> bytes:
        return encode_u64(self.num_queues)

    @handles(Request.GET_MAX_MEM_SLOTS, error_reply=encode_u64(0))
    async def _get_max_mem_slots(self, message: Message) -> bytes:
        return encode_u64(MAX_MEM_SLOTS)

    @handles(Request.SET_MEM_TABLE)
    async def _set_mem_table(self, message: Message) -> None:
        self.memory.replace(decode_memory_table(message.payload), message.fds)

    @handles(Request.ADD_MEM_REG)
    async def _add_mem_reg(self, message: Message) -> None:
        region = decode_single_region(message.payload)
        if len(message.fds) != 1:
            raise DeviceError(f"ADD_MEM_REG with {len(message.fds)} fds")
        if len(self.memory.regions) >= MAX_MEM_SLOTS:
            raise DeviceError(f"all {MAX_MEM_SLOTS} memory slots in use")
        self.memory.add(region, message.fds[0])

    @handles(Request.REM_MEM_REG)
    async def _rem_mem_reg(self, message: Message) -> None:
        self.memory.remove(decode_single_region(message.payload))

    @handles(Request.SET_VRING_NUM)
    async def _set_vring_num(self, message: Message) -> None:
        state = VringState.decode(message.payload)
        if not 0 < state.num <= MAX_QUEUE_SIZE:
            raise DeviceError(f"queue size {state.num} outside 1..{MAX_QUEUE_SIZE}")
        if state.num & (state.num - 1):
            # Virtio 1.2 §2.7: a split ring's "Queue Size ... must be a power of 2".
            raise DeviceError(f"queue size {state.num} is not a power of 2")
        self._idle_ring(state.index).size = state.num

    @handles(Request.SET_VRING_ADDR)
    async def _set_vring_addr(self, message: Message) -> None:
        """On a running ring only the log flag may change: QEMU turns used-ring logging
        on and off that way when a migration starts and ends (vhost_dev_set_log)."""
        addr = VringAddr.decode(message.payload)
        ring = self._ring(addr.index)
        if ring.running and not _same_rings(ring.addr, addr):
            raise DeviceError(f"queue {addr.index} is running")
        ring.addr = addr
        self._update_logging()

    @handles(Request.SET_VRING_BASE)
    async def _set_vring_base(self, message: Message) -> None:
        state = VringState.decode(message.payload)
        self._idle_ring(state.index).base = state.num & 0xFFFF

    @handles(Request.GET_VRING_BASE, error_reply=VringState(0, 0).encode())
    async def _get_vring_base(self, message: Message) -> bytes:
        state = VringState.decode(message.payload)
        ring = self._ring(state.index)
        base = await ring.stop()
        ring.lifecycle.get_base()
        ring.replace_kick(None)
        return VringState(state.index, base).encode()

    @handles(Request.SET_VRING_KICK)
    async def _set_vring_kick(self, message: Message) -> None:
        ring, fd = self._vring_file(message)
        ring.replace_kick(fd)
        ring.lifecycle.kick(
            protocol_features=bool(self.acked_features & VHOST_USER_F_PROTOCOL_FEATURES)
        )
        await self._maybe_start(ring)

    @handles(Request.SET_VRING_CALL)
    async def _set_vring_call(self, message: Message) -> None:
        ring, fd = self._vring_file(message)
        old, ring.call_fd = ring.call_fd, fd
        close_fd(old)

    @handles(Request.SET_VRING_ERR)
    async def _set_vring_err(self, message: Message) -> None:
        ring, fd = self._vring_file(message)
        old, ring.err_fd = ring.err_fd, fd
        close_fd(old)

    def _vring_file(self, message: Message) -> tuple[Ring, int | None]:
        """SET_VRING_KICK/CALL/ERR: an eventfd, unless the NOFD bit says the ring is polled.

        Any other kind of fd is refused (and closed with the message): the ring
        keeps the fd it had.
        """
        vring_file = VringFile.decode(message.payload)
        ring = self._ring(vring_file.index)
        if vring_file.nofd:
            return ring, None
        if not message.fds:
            raise MessageError("no fd and no NOFD flag")
        try:
            adopt_eventfd(message.fds[0])
        except NotAnEventfd as error:
            raise DeviceError(str(error)) from error
        return ring, message.take_fd()

    @handles(Request.SET_VRING_ENABLE)
    async def _set_vring_enable(self, message: Message) -> None:
        state = VringState.decode(message.payload)
        ring = self._ring(state.index)
        ring.lifecycle.enable(bool(state.num))
        if ring.lifecycle.enabled:
            await self._maybe_start(ring)
        else:
            await ring.stop()

    # -- migration (vhost-user.rst, "Migration") -----------------------------

    @handles(Request.SET_LOG_BASE, error_reply=encode_u64(1))
    async def _set_log_base(self, message: Message) -> bytes:
        """LOG_SHMFD: the dirty log arrives as an fd; QEMU waits for a reply (a u64)."""
        if not self.acked_protocol_features & ProtocolFeature.LOG_SHMFD:
            raise DeviceError("SET_LOG_BASE without VHOST_USER_PROTOCOL_F_LOG_SHMFD")
        area = LogArea.decode(message.payload)
        if not message.fds:
            raise MessageError("SET_LOG_BASE without a log fd")
        try:
            log = DirtyLog(message.fds[0], area)
        except DirtyLogError as error:
            raise DeviceError(str(error)) from error
        old, self.dirty_log = self.dirty_log, log
        self._update_logging()
        if old is not None:
            old.close()
        return encode_u64(0)

    def _update_logging(self) -> None:
        """Give running queues the log while VHOST_F_LOG_ALL is on (dirty_log.py)."""
        log = self.dirty_log if self.acked_features & VHOST_F_LOG_ALL else None
        for ring in self.rings:
            queue = ring.queue
            if queue is None:
                continue
            queue.dirty_log = log
            addr = ring.addr
            queue.used_log_addr = (
                addr.log_guest_addr if addr is not None and addr.flags & VHOST_VRING_F_LOG else None
            )

    @handles(Request.SET_DEVICE_STATE_FD, error_reply=encode_u64(DEVICE_STATE_NO_FD | 1))
    async def _set_device_state_fd(self, message: Message) -> bytes:
        """Start saving or loading the FUSE session's state through the pipe given
        (hostfs.migration.transfer); we return no fd of our own (reply bit 8)."""
        transfer = DeviceStateTransfer.decode(message.payload)
        if self.migration is None or not (
            self.acked_protocol_features & ProtocolFeature.DEVICE_STATE
        ):
            raise DeviceError("device state transfer was not negotiated")
        if any(ring.running for ring in self.rings):
            raise DeviceError("device state transfer while queues run (phase is 'stopped')")
        if self._nursery is None:
            raise DeviceError("no connection")
        fd = message.take_fd() if message.fds else None
        if fd is None:
            raise MessageError("SET_DEVICE_STATE_FD without an fd")
        try:
            self._transfer = self.migration.start(
                self._nursery, self.handler, transfer.direction, fd
            )
        except ValueError as error:
            raise DeviceError(str(error)) from error
        return encode_u64(DEVICE_STATE_NO_FD)

    @handles(Request.CHECK_DEVICE_STATE, error_reply=encode_u64(1))
    async def _check_device_state(self, message: Message) -> bytes:
        """Whether the last transfer wrote, or read and applied, the whole state."""
        transfer, self._transfer = self._transfer, None
        if transfer is None:
            raise DeviceError("no device state transfer to check")
        error = await transfer.result()
        if error is not None:
            raise DeviceError(f"device state transfer failed: {error}")
        self._resume = transfer.resume
        return encode_u64(0)

    @handles(Request.GET_CONFIG, error_reply=ConfigSpace(0, 0, 0, b"").encode())
    async def _get_config(self, message: Message) -> bytes:
        request = ConfigSpace.decode(message.payload)
        space = self.config_space()
        if request.offset + request.size > len(space):
            raise DeviceError(f"config read {request.offset}+{request.size} beyond {len(space)}")
        data = space[request.offset : request.offset + request.size]
        return ConfigSpace(request.offset, request.size, request.flags, data).encode()

    def config_space(self) -> bytes:
        tag = (self.tag or "").encode()
        return VIRTIO_FS_CONFIG.pack(tag, self.num_queues - HIPRIO_QUEUES)

    # -- rings and the FUSE session ------------------------------------------

    async def _maybe_start(self, ring: Ring) -> None:
        if not ring.lifecycle.may_serve:
            return
        if self._nursery is None:
            raise DeviceError("no connection")
        if self._resume is not None:
            resume, self._resume = self._resume, None
            logger.warning("migration: the source runs on; taking its host locks back")
            await resume()
        try:
            queue = ring.build_queue(
                self.memory,
                event_idx=bool(self.acked_features & VIRTIO_RING_F_EVENT_IDX),
                indirect=bool(self.acked_features & VIRTIO_RING_F_INDIRECT_DESC),
            )
        except RingError as error:
            ring.mark_broken(str(error))
            return
        await self._nursery.start(ring.serve, queue, self.handler, self.concurrency)
        self._update_logging()

    async def end_session(self) -> None:
        """Flush and close every handle, forget every node; the next INIT starts afresh."""
        logger.info("device reset: ending the FUSE session")
        await self.fs.destroy()
        self.handler = self.new_session()

    async def stop_rings(self) -> None:
        for ring in self.rings:
            await ring.stop()

    async def reset(self) -> None:
        """RESET_DEVICE / RESET_OWNER: rings back to their initial state, session over."""
        await self.stop_rings()
        for ring in self.rings:
            ring.close_fds()
        self.rings = [Ring(i, self.poll_max_ns) for i in range(self.num_queues)]
        self.acked_features = 0
        self._resume = None
        await self.end_session()

    async def disconnect(self) -> None:
        """The front-end went away: finish in-flight requests, release everything."""
        await self.reset()
        self.memory.clear()
        self.acked_protocol_features = 0
        self._nursery = None
        self._transfer = None
        self._resume = None
        if self.dirty_log is not None:
            self.dirty_log.close()
            self.dirty_log = None


def _same_rings(old: VringAddr | None, new: VringAddr) -> bool:
    """Whether ``new`` locates the rings where ``old`` did (only flags or log address differ)."""
    if old is None:
        return False
    where = (old.desc_user_addr, old.used_user_addr, old.avail_user_addr)
    return where == (new.desc_user_addr, new.used_user_addr, new.avail_user_addr)
