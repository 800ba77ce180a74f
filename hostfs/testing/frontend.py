"""A vhost-user front-end in Python: what QEMU does for a vhost-user-fs device.

It negotiates features, shares a memfd as guest RAM (SET_MEM_TABLE), lays
out split rings in it, hands over kick/call/err eventfds and then plays the
guest driver on those rings (:class:`~hostfs.testing.driver_queue.DriverQueue`).
The message order follows what QEMU 7.2 sends on device realize and start.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from hostfs.testing.driver_queue import DriverQueue, Submitted
from hostfs.testing.guest_ram import GuestRam
from hostfs.vhost.channel import Message, receive_message, send_message
from hostfs.vhost.device import DEVICE_FEATURES, VHOST_USER_F_PROTOCOL_FEATURES
from hostfs.vhost.messages import (
    DEVICE_STATE_NO_FD,
    FLAG_NEED_REPLY,
    FLAG_REPLY,
    DeviceStateTransfer,
    MigrationPhase,
    ProtocolFeature,
    Request,
    TransferDirection,
    VringAddr,
    VringFile,
    VringState,
    decode_u64,
    encode_memory_table,
    encode_message,
    encode_u64,
)

logger = logging.getLogger(__name__)

REPLYING = {
    Request.GET_FEATURES,
    Request.GET_PROTOCOL_FEATURES,
    Request.GET_VRING_BASE,
    Request.GET_QUEUE_NUM,
    Request.GET_CONFIG,
    Request.GET_MAX_MEM_SLOTS,
    Request.SET_LOG_BASE,
    Request.SET_DEVICE_STATE_FD,
    Request.CHECK_DEVICE_STATE,
}
"""Messages that always get a reply (vhost-user.rst marks them "reply")."""

REPLY_TIMEOUT = 10.0


class FrontendError(Exception):
    """The device answered something unexpected."""


class Frontend:
    """One connection to a vhost-user-fs device, with simulated guest RAM and rings."""

    def __init__(self, sock: trio.socket.SocketType, ram: GuestRam, queue_size: int) -> None:
        self.sock = sock
        self.ram = ram
        self.queue_size = queue_size
        self.queues: list[DriverQueue] = []
        self.features = 0
        self.protocol_features = 0

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, path: str, *, ram_size: int = 16 << 20, queue_size: int = 64
    ) -> AsyncIterator[Frontend]:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ram = GuestRam(ram_size)
        try:
            await sock.connect(path)
            yield cls(sock, ram, queue_size)
        finally:
            sock.close()
            ram.close()

    def close_queues(self) -> None:
        for queue in self.queues:
            queue.close()
        self.queues = []

    # -- messages -------------------------------------------------------------

    async def send(
        self, request: int, payload: bytes = b"", fds: list[int] | None = None, flags: int = 0
    ) -> None:
        await send_message(self.sock, encode_message(request, payload, flags), fds)

    async def receive(self) -> Message:
        with trio.fail_after(REPLY_TIMEOUT):
            message = await receive_message(self.sock)
        if not message.header.flags & FLAG_REPLY:
            raise FrontendError(f"expected a reply, got request {message.header.request}")
        return message

    async def call(
        self,
        request: int,
        payload: bytes = b"",
        fds: list[int] | None = None,
        *,
        need_reply: bool | None = None,
    ) -> bytes | None:
        """Send; return the reply payload for GET_* and for NEED_REPLY (an ack) messages.

        ``need_reply`` defaults to "whenever REPLY_ACK was negotiated", as QEMU does.
        """
        if need_reply is None:
            need_reply = bool(self.protocol_features & ProtocolFeature.REPLY_ACK)
        want_reply = request in REPLYING or need_reply
        await self.send(request, payload, fds, FLAG_NEED_REPLY if need_reply else 0)
        if not want_reply:
            return None
        reply = await self.receive()
        if reply.header.request != request:
            raise FrontendError(f"reply to {reply.header.request}, expected {request}")
        return reply.payload

    async def call_ok(
        self, request: int, payload: bytes = b"", fds: list[int] | None = None
    ) -> None:
        """A message whose REPLY_ACK must say success."""
        ack = await self.call(request, payload, fds, need_reply=True)
        if ack is None or decode_u64(ack) != 0:
            raise FrontendError(f"{Request(request).name} refused")

    async def get_u64(self, request: int) -> int:
        reply = await self.call(request)
        assert reply is not None
        return decode_u64(reply)

    # -- device setup, in QEMU 7.2's order --------------------------------------

    async def realize(self) -> int:
        """vhost_dev_init: features, protocol features, queue count, owner.  Returns max queues."""
        offered = await self.get_u64(Request.GET_FEATURES)
        if offered & VHOST_USER_F_PROTOCOL_FEATURES:
            protocol = await self.get_u64(Request.GET_PROTOCOL_FEATURES)
            wanted = (
                ProtocolFeature.MQ
                | ProtocolFeature.REPLY_ACK
                | ProtocolFeature.CONFIG
                | ProtocolFeature.RESET_DEVICE
                | ProtocolFeature.LOG_SHMFD
                | ProtocolFeature.DEVICE_STATE
            )
            await self.call(Request.SET_PROTOCOL_FEATURES, encode_u64(protocol & wanted))
            self.protocol_features = protocol & wanted
        max_queues = await self.get_u64(Request.GET_QUEUE_NUM)
        await self.call(Request.SET_OWNER)
        return max_queues

    async def start(
        self, num_queues: int, *, features: int = DEVICE_FEATURES, used_event: int | None = None
    ) -> None:
        """vhost_dev_start: features, memory table, then every ring, then enable them."""
        self.features = features
        await self.call_ok(Request.SET_FEATURES, encode_u64(features))
        await self.call_ok(
            Request.SET_MEM_TABLE, encode_memory_table([self.ram.region()]), [self.ram.fd]
        )
        self.ram.reset_allocations()
        self.close_queues()
        self.queues = [DriverQueue(self.ram, i, self.queue_size) for i in range(num_queues)]
        self.ram.keep_allocations()
        for queue in self.queues:
            if used_event is not None:
                queue.set_used_event(used_event)
            await self.start_queue(queue)

    async def start_queue(self, queue: DriverQueue, base: int = 0) -> None:
        index = queue.index
        await self.call_ok(Request.SET_VRING_NUM, VringState(index, queue.size).encode())
        await self.call_ok(Request.SET_VRING_BASE, VringState(index, base).encode())
        addr = VringAddr(
            index,
            0,
            self.ram.frontend_addr(queue.desc_addr),
            self.ram.frontend_addr(queue.used_addr),
            self.ram.frontend_addr(queue.avail_addr),
            0,
        )
        await self.call_ok(Request.SET_VRING_ADDR, addr.encode())
        await self.call_ok(Request.SET_VRING_ERR, VringFile(index, False).encode(), [queue.err_fd])
        await self.call_ok(
            Request.SET_VRING_CALL, VringFile(index, False).encode(), [queue.call_fd]
        )
        await self.call_ok(
            Request.SET_VRING_KICK, VringFile(index, False).encode(), [queue.kick_fd]
        )
        if self.features & VHOST_USER_F_PROTOCOL_FEATURES:
            await self.call_ok(Request.SET_VRING_ENABLE, VringState(index, 1).encode())

    async def stop_queue(self, index: int) -> int:
        """GET_VRING_BASE: the device finishes in-flight requests and says where it stopped."""
        reply = await self.call(Request.GET_VRING_BASE, VringState(index, 0).encode())
        assert reply is not None
        return VringState.decode(reply).num

    # -- migration (QEMU's vhost_save_backend_state / vhost_load_backend_state) ---------

    async def save_state(self) -> bytes:
        """SET_DEVICE_STATE_FD (save) with a pipe, read it to its end, CHECK_DEVICE_STATE."""
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            await self._set_device_state_fd(TransferDirection.SAVE, write_fd)
        finally:
            os.close(write_fd)
        chunks = []
        async with trio.lowlevel.FdStream(read_fd) as stream:
            with trio.fail_after(REPLY_TIMEOUT):
                while chunk := await stream.receive_some(1 << 16):
                    chunks.append(chunk)
        if await self.get_u64(Request.CHECK_DEVICE_STATE) != 0:
            raise FrontendError("CHECK_DEVICE_STATE: the save failed")
        return b"".join(chunks)

    async def load_state(self, data: bytes) -> int:
        """SET_DEVICE_STATE_FD (load), write ``data`` and close; CHECK_DEVICE_STATE's answer
        (0: loaded).  A device that stops reading early makes the write fail: ignored, as
        the check then says."""
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            await self._set_device_state_fd(TransferDirection.LOAD, read_fd)
        finally:
            os.close(read_fd)
        async with trio.lowlevel.FdStream(write_fd) as stream:
            try:
                with trio.fail_after(REPLY_TIMEOUT):
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass
        return await self.get_u64(Request.CHECK_DEVICE_STATE)

    async def _set_device_state_fd(self, direction: TransferDirection, fd: int) -> None:
        transfer = DeviceStateTransfer(direction, MigrationPhase.STOPPED)
        reply = await self.call(Request.SET_DEVICE_STATE_FD, transfer.encode(), [fd])
        assert reply is not None
        if decode_u64(reply) != DEVICE_STATE_NO_FD:
            raise FrontendError(f"SET_DEVICE_STATE_FD refused ({decode_u64(reply):#x})")

    async def reboot(self, num_queues: int) -> None:
        """What QEMU 7.2 does when the guest resets the device: stop every ring, start afresh."""
        for queue in self.queues:
            await self.stop_queue(queue.index)
        await self.start(num_queues, features=self.features)

    # -- requests ---------------------------------------------------------------

    async def request(
        self,
        queue_index: int,
        readable: list[bytes],
        writable: list[int],
        *,
        indirect: bool = False,
        timeout: float = 5.0,
    ) -> bytes:
        """Submit one chain, kick, and wait for the device to return it."""
        queue = self.queues[queue_index]
        submitted = queue.submit(readable, writable, indirect=indirect)
        queue.kick()
        return await self.wait_for(queue, submitted, timeout)

    async def wait_for(self, queue: DriverQueue, submitted: Submitted, timeout: float) -> bytes:
        with trio.fail_after(timeout):
            while True:
                queue.collect()
                if submitted.reply is not None:
                    return submitted.reply
                await queue.wait_call()
