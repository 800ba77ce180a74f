"""FUSE requests as the Linux virtiofs driver puts them on a virtqueue.

``virtio_fs_enqueue_req`` (fs/fuse/virtio_fs.c): device-readable are the
``fuse_in_header``, the in-arguments copied into one buffer, then WRITE's
data pages; device-writable are the ``fuse_out_header``, one buffer for the
out-arguments, then READ's data pages.  Layouts are ``hostfs.fuse.abi``'s.
"""

from __future__ import annotations

import errno
import os
from typing import Any, NamedTuple

from hostfs.fuse import abi
from hostfs.fuse.abi import Opcode
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_wire import dirents, in_header, names, read_in, split_reply, write_in

REQUEST_QUEUE = 1
HIPRIO_QUEUE = 0
PAGE = 4096


class FuseReply(NamedTuple):
    error: int
    """A positive errno, 0 for success."""
    body: bytes


class FuseError(OSError):
    """A FUSE reply with an error (``errno`` is its errno), or one that does not answer
    the request sent (EPROTO: another ``unique``)."""


class GuestFuseClient:
    """A FUSE client on one request queue of a :class:`Frontend`."""

    def __init__(self, frontend: Frontend, queue: int = REQUEST_QUEUE, *, indirect: bool = False):
        self.frontend = frontend
        self.queue = queue
        self.indirect = indirect
        self._unique = 0

    async def call(
        self,
        opcode: int,
        nodeid: int,
        args: bytes = b"",
        *,
        reply_size: int = 4096,
        data: list[bytes] | None = None,
        pages: int = 0,
        queue: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        extensions: bytes = b"",
    ) -> FuseReply:
        """One request; the caller is this process unless ``uid``/``gid`` say otherwise.
        ``extensions`` (whole 8-byte units) follow the arguments, counted in the header's
        ``total_extlen``, as the kernel appends them (fuse_in_header, 7.36)."""
        self._unique += 2
        expected = self._unique  # calls may run concurrently: remember our own
        data = data or []
        args += extensions
        length = abi.IN_HEADER.size + len(args) + sum(len(chunk) for chunk in data)
        header = in_header(
            length,
            opcode,
            expected,
            nodeid,
            os.getuid() if uid is None else uid,
            os.getgid() if gid is None else gid,
            os.getpid(),
            len(extensions) // 8,
        )
        readable = [header] + ([args] if args else []) + data
        writable = [abi.OUT_HEADER.size] + ([reply_size] if reply_size else []) + [PAGE] * pages
        raw = await self.frontend.request(
            self.queue if queue is None else queue, readable, writable, indirect=self.indirect
        )
        if not raw:
            return FuseReply(0, b"")
        reply = split_reply(raw)
        if reply.unique != expected:
            raise FuseError(errno.EPROTO, f"reply for {reply.unique}, expected {expected}")
        return FuseReply(-reply.error, reply.payload)

    async def ok(self, opcode: int, nodeid: int, args: bytes = b"", **kwargs: object) -> bytes:
        reply = await self.call(opcode, nodeid, args, **kwargs)  # type: ignore[arg-type]
        if reply.error:
            raise FuseError(reply.error, f"{Opcode(opcode).name}: {os.strerror(reply.error)}")
        return reply.body

    async def init(self, extra_flags: int = 0) -> bytes:
        """INIT as Linux 6.1's driver sends it, plus ``extra_flags`` (bits 32.. go in
        ``flags2``, with FUSE_INIT_EXT)."""
        flags = abi.ASYNC_READ | abi.BIG_WRITES | abi.MAX_PAGES | abi.DO_READDIRPLUS | extra_flags
        if flags >> 32:
            flags |= abi.INIT_EXT
        args = abi.INIT_IN.pack(
            abi.KERNEL_VERSION, abi.KERNEL_MINOR_VERSION, 128 << 10, flags & 0xFFFFFFFF, flags >> 32
        )
        return await self.ok(Opcode.INIT, 0, args)

    async def lookup(self, parent: int, name: bytes) -> int:
        """The nodeid; a negative entry (nodeid 0) raises ENOENT, as the kernel's
        negative dentry answers the caller."""
        body = await self.ok(Opcode.LOOKUP, parent, names(name))
        nodeid: int = abi.ENTRY_OUT.unpack_from(body)[0]
        if nodeid == 0:
            raise FuseError(errno.ENOENT, os.strerror(errno.ENOENT))
        return nodeid

    async def create(
        self, parent: int, name: bytes, mode: int = 0o644, **caller: Any
    ) -> tuple[int, int]:
        """``caller``: ``uid``, ``gid``, ``extensions`` as :meth:`call` takes them."""
        args = abi.CREATE_IN.pack(os.O_RDWR | os.O_CREAT, mode, 0o022, 0) + names(name)
        body = await self.ok(Opcode.CREATE, parent, args, **caller)
        nodeid = abi.ENTRY_OUT.unpack_from(body)[0]
        fh = abi.OPEN_OUT.unpack_from(body, abi.ENTRY_OUT.size)[0]
        return nodeid, fh

    async def mkdir(self, parent: int, name: bytes, mode: int = 0o755, **caller: Any) -> int:
        args = abi.MKDIR_IN.pack(mode, 0o022) + names(name)
        body = await self.ok(Opcode.MKDIR, parent, args, **caller)
        return abi.ENTRY_OUT.unpack_from(body)[0]

    async def symlink(self, parent: int, name: bytes, target: bytes, **caller: Any) -> int:
        body = await self.ok(Opcode.SYMLINK, parent, names(name, target), **caller)
        return abi.ENTRY_OUT.unpack_from(body)[0]

    async def open(self, nodeid: int, flags: int = os.O_RDWR) -> int:
        body = await self.ok(Opcode.OPEN, nodeid, abi.OPEN_IN.pack(flags, 0))
        return abi.OPEN_OUT.unpack_from(body)[0]

    async def write(self, nodeid: int, fh: int, offset: int, data: bytes) -> int:
        args = write_in(fh, offset, len(data), flags=os.O_RDWR)
        chunks = [data[i : i + PAGE] for i in range(0, len(data), PAGE)]
        body = await self.ok(Opcode.WRITE, nodeid, args, data=chunks, reply_size=abi.WRITE_OUT.size)
        return abi.WRITE_OUT.unpack_from(body)[0]

    async def read(self, nodeid: int, fh: int, offset: int, size: int) -> bytes:
        args = read_in(fh, offset, size, flags=os.O_RDWR)
        return await self.ok(Opcode.READ, nodeid, args, reply_size=0, pages=-(-size // PAGE))

    async def release(self, nodeid: int, fh: int) -> None:
        await self.ok(Opcode.RELEASE, nodeid, abi.RELEASE_IN.pack(fh, os.O_RDWR, 0, 0))

    async def opendir(self, nodeid: int) -> int:
        body = await self.ok(Opcode.OPENDIR, nodeid, abi.OPEN_IN.pack(os.O_RDONLY, 0))
        return abi.OPEN_OUT.unpack_from(body)[0]

    async def readdir(self, nodeid: int, fh: int) -> list[bytes]:
        """Every name, over as many READDIR calls as it takes."""
        found: list[bytes] = []
        offset = 0
        while True:
            args = read_in(fh, offset, PAGE, flags=os.O_RDONLY)
            body = await self.ok(Opcode.READDIR, nodeid, args, reply_size=PAGE)
            if not body:
                return found
            entries = dirents(body, plus=False)
            found += [name for name, *_ in entries]
            offset = entries[-1][2]  # the next READDIR starts after the last entry

    async def releasedir(self, nodeid: int, fh: int) -> None:
        await self.ok(Opcode.RELEASEDIR, nodeid, abi.RELEASE_IN.pack(fh, 0, 0, 0))

    async def rename(self, parent: int, name: bytes, new_parent: int, new_name: bytes) -> None:
        args = abi.RENAME_IN.pack(new_parent) + names(name, new_name)
        await self.ok(Opcode.RENAME, parent, args)

    async def unlink(self, parent: int, name: bytes) -> None:
        await self.ok(Opcode.UNLINK, parent, names(name))

    async def forget(self, nodeid: int, nlookup: int) -> None:
        """On the hiprio queue, as the driver sends it; the device returns it without a reply."""
        await self.call(
            Opcode.FORGET, nodeid, abi.FORGET_IN.pack(nlookup), reply_size=0, queue=HIPRIO_QUEUE
        )

    async def batch_forget(self, nodes: list[tuple[int, int]]) -> None:
        """FUSE_BATCH_FORGET of (nodeid, nlookup) pairs, on the hiprio queue, without reply."""
        args = abi.BATCH_FORGET_IN.pack(len(nodes), 0)
        args += b"".join(abi.FORGET_ONE.pack(node, count) for node, count in nodes)
        await self.call(Opcode.BATCH_FORGET, 0, args, reply_size=0, queue=HIPRIO_QUEUE)
