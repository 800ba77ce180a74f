"""FUSE operations as pre-built :class:`~hostfs.testing.pipeline.Sequence` s, for a benchmark.

Each operation is what one guest system call costs the device when the guest
caches nothing: a LOOKUP of a known name, a GETATTR, a 4 KiB READ or WRITE
(``fs/fuse/virtio_fs.c`` lays the data out as whole pages), a CREATE then
RELEASE then UNLINK of a name of its own.  Requests of one workload carry
distinct ``unique`` values, as the kernel's in-flight requests do.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID, Opcode
from hostfs.testing.driver_queue import DriverQueue
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.testing.fuse_wire import in_header
from hostfs.testing.pipeline import Sequence, copy_field, step

PAGE = 4096
U64 = struct.Struct("<Q")
IN_HEADER_NODEID = 16
"""Offset of ``fuse_in_header.nodeid``: after len, opcode (u32 each) and unique (u64)."""
UNIQUE_BASE = 1 << 32
"""Benchmark requests use uniques from here: set-up requests used small ones."""


def request(opcode: int, nodeid: int, args: bytes, unique: int, data_size: int = 0) -> bytes:
    """``fuse_in_header`` + ``args`` (the data pages, if any, follow in their own buffers)."""
    length = abi.IN_HEADER.size + len(args) + data_size
    return in_header(length, opcode, unique, nodeid, os.getuid(), os.getgid(), os.getpid()) + args


@dataclass(frozen=True)
class Targets:
    """What the set-up looked up and opened: the benchmark's known name and files."""

    known_name: bytes
    known_node: int
    read_node: int
    read_fh: int
    write_node: int
    write_fh: int
    created: list[int] = field(default_factory=list)
    """Nodes CREATE made and nothing forgot yet."""


Builder = Callable[[DriverQueue, int, Targets], Sequence]
"""(queue, slot number, targets) -> one operation's sequence."""


def _unique(slot: int, step_index: int) -> int:
    return UNIQUE_BASE + 4 * slot + step_index


def lookup(queue: DriverQueue, slot: int, targets: Targets) -> Sequence:
    args = targets.known_name + b"\0"
    readable = [request(Opcode.LOOKUP, ROOT_ID, args, _unique(slot, 0))]
    return Sequence(queue, [step(queue, readable, [abi.OUT_HEADER.size, abi.ENTRY_OUT.size])])


def getattr_(queue: DriverQueue, slot: int, targets: Targets) -> Sequence:
    args = abi.GETATTR_IN.pack(0, 0, 0)
    readable = [request(Opcode.GETATTR, targets.known_node, args, _unique(slot, 0))]
    return Sequence(queue, [step(queue, readable, [abi.OUT_HEADER.size, abi.ATTR_OUT.size])])


def read(queue: DriverQueue, slot: int, targets: Targets) -> Sequence:
    args = abi.READ_IN.pack(targets.read_fh, 0, PAGE, 0, 0, os.O_RDWR, 0)
    readable = [request(Opcode.READ, targets.read_node, args, _unique(slot, 0))]
    return Sequence(queue, [step(queue, readable, [abi.OUT_HEADER.size, PAGE])])


def write(queue: DriverQueue, slot: int, targets: Targets) -> Sequence:
    args = abi.WRITE_IN.pack(targets.write_fh, PAGE * slot, PAGE, 0, 0, os.O_RDWR, 0)
    header = request(Opcode.WRITE, targets.write_node, args, _unique(slot, 0), PAGE)
    readable = [header, bytes([slot & 0xFF]) * PAGE]
    return Sequence(queue, [step(queue, readable, [abi.OUT_HEADER.size, abi.WRITE_OUT.size])])


def create_release_unlink(queue: DriverQueue, slot: int, targets: Targets) -> Sequence:
    """Three requests; RELEASE gets the node and file handle CREATE returned.

    The node each CREATE made is noted in ``targets.created`` for the caller to
    FORGET between runs (:func:`forget_created`, one BATCH_FORGET per 256), as the
    guest's kernel does once it drops the unlinked inode; else the device keeps
    every node (virtiofsd runs out of file descriptors).  Batched, not a detached
    FORGET per operation: it keeps the measured loop to the three requests.
    """
    name = b"bench-%d" % slot + b"\0"
    create_args = abi.CREATE_IN.pack(os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o100644, 0o022, 0)
    create = step(
        queue,
        [request(Opcode.CREATE, ROOT_ID, create_args + name, _unique(slot, 0))],
        [abi.OUT_HEADER.size, abi.ENTRY_OUT.size + abi.OPEN_OUT.size],
    )
    release_args = abi.RELEASE_IN.pack(0, os.O_RDWR, 0, 0)
    release = step(
        queue,
        [request(Opcode.RELEASE, 0, release_args, _unique(slot, 1))],
        [abi.OUT_HEADER.size],
    )
    unlink = step(
        queue,
        [request(Opcode.UNLINK, ROOT_ID, name, _unique(slot, 2))],
        [abi.OUT_HEADER.size],
    )
    ram = queue.ram
    entry = ram.offset(create.chain.writable[1][0])
    release_in = ram.offset(release.chain.readable[0][0])
    copy_node = copy_field(entry, release_in + IN_HEADER_NODEID, U64)
    copy_fh = copy_field(entry + abi.ENTRY_OUT.size, release_in + abi.IN_HEADER.size, U64)
    created = targets.created

    def carry(view: memoryview) -> None:
        copy_node(view)
        copy_fh(view)
        created.append(U64.unpack_from(view, entry)[0])

    create.fixup = carry
    return Sequence(queue, [create, release, unlink])


WORKLOADS: dict[str, Builder] = {
    "lookup": lookup,
    "getattr": getattr_,
    "read 4k": read,
    "write 4k": write,
    "create+release+unlink": create_release_unlink,
}


KNOWN, READ_FILE, WRITE_FILE = b"known", b"read-me", b"write-me"


def populate(share: str) -> None:
    """The files :func:`open_targets` expects, made on the host side of the share."""
    for name in (KNOWN, READ_FILE, WRITE_FILE):
        with open(os.path.join(share, name.decode()), "wb") as file:
            file.write(b"x" * PAGE)


async def open_targets(client: GuestFuseClient) -> Targets:
    """Look up the known name and open the files READ and WRITE use, as a guest would."""
    known = await client.lookup(ROOT_ID, KNOWN)
    read_node = await client.lookup(ROOT_ID, READ_FILE)
    write_node = await client.lookup(ROOT_ID, WRITE_FILE)
    return Targets(
        KNOWN,
        known,
        read_node,
        await client.open(read_node),
        write_node,
        await client.open(write_node),
    )


FORGET_BATCH = 256
"""Nodes per BATCH_FORGET request (one page of ``fuse_forget_one`` records)."""


async def forget_created(client: GuestFuseClient, targets: Targets) -> None:
    """BATCH_FORGET every node :func:`create_release_unlink` made (one lookup each)."""
    nodes, targets.created[:] = list(targets.created), []
    for start in range(0, len(nodes), FORGET_BATCH):
        await client.batch_forget([(node, 1) for node in nodes[start : start + FORGET_BATCH]])
