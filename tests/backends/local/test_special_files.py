"""Only regular files are opened for I/O (CVE-2020-35517).

A guest that can make the daemon open a device node reads the host's devices;
one that makes it open a FIFO blocks the daemon's only thread.  virtiofsd
opens only regular files and directories and answers EBADF otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterator

import pytest

from hostfs.core.filesystem import ROOT_NODEID
from hostfs.core.types import Caller
from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID, Opcode
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.testing.fuse_wire import in_header, split_reply
from tests.support.core import ROOT, open_fds
from tests.vhost.conftest import Served, client, guest, served

__all__ = ["client", "guest", "served"]

USER = Caller(1000, 1000, 1)
KMSG = os.makedev(1, 11)
"""/dev/kmsg: reading it is reading the host's kernel log."""
DISK = os.makedev(8, 0)
"""/dev/sda: the host's first disk."""


@contextlib.contextmanager
def writer_for(path: str) -> Iterator[None]:
    """A thread that opens ``path`` (a FIFO) for writing, so that a reader's
    blocking open(2) returns instead of hanging the test; unblocked at the end
    by a reader of our own, if no one else opened it."""
    thread = threading.Thread(target=lambda: os.close(os.open(path, os.O_WRONLY)), daemon=True)
    thread.start()
    try:
        yield
    finally:
        # Held open until the writer's open(2) has returned: a reader that came and
        # went before the writer started would leave it blocked for good.
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            thread.join()
        finally:
            os.close(reader)


@pytest.mark.parametrize(
    "kind, rdev", [(stat.S_IFCHR, KMSG), (stat.S_IFBLK, DISK)], ids=["chr", "blk"]
)
async def test_device_nodes_are_never_opened(fs, share, kind, rdev):
    entry = await fs.mknod(ROOT, ROOT_NODEID, b"dev", kind | 0o666, rdev)
    assert os.stat(os.path.join(share, "dev")).st_rdev == rdev  # root may create them
    for flags in (os.O_RDONLY, os.O_RDWR, os.O_WRONLY):
        with pytest.raises(OSError) as info:
            await fs.open(ROOT, entry.nodeid, flags)
        assert info.value.errno == errno.EBADF
    assert len(fs.files) == 0


async def test_a_fifo_is_refused_without_blocking(fs, share):
    entry = await fs.mknod(ROOT, ROOT_NODEID, b"fifo", stat.S_IFIFO | 0o666, 0)
    with writer_for(os.path.join(share, "fifo")), pytest.raises(OSError) as info:
        await fs.open(ROOT, entry.nodeid, os.O_RDONLY)
    assert info.value.errno == errno.EBADF


async def test_create_of_an_existing_fifo_is_refused(fs, share):
    os.mkfifo(os.path.join(share, "fifo"))
    fds = open_fds()
    with writer_for(os.path.join(share, "fifo")), pytest.raises(OSError) as info:
        await fs.create(ROOT, ROOT_NODEID, b"fifo", 0o644, os.O_RDONLY)
    assert info.value.errno == errno.EBADF
    assert len(fs.files) == 0 and open_fds() == fds  # nothing left pinned


async def test_create_of_an_existing_file_opens_it(fs, share):
    with open(os.path.join(share, "file"), "wb") as file:
        file.write(b"kept")
    entry, opened = await fs.create(ROOT, ROOT_NODEID, b"file", 0o600, os.O_RDWR)
    buffer = bytearray(4)
    assert await fs.read(ROOT, entry.nodeid, opened.fh, 0, [memoryview(buffer)]) == 4
    assert buffer == b"kept"


async def test_a_tty_is_never_opened(fs, share):
    master, slave = os.openpty()
    try:
        rdev = os.fstat(slave).st_rdev
    finally:
        os.close(master)
        os.close(slave)
    entry = await fs.mknod(ROOT, ROOT_NODEID, b"tty", stat.S_IFCHR | 0o666, rdev)
    with pytest.raises(OSError) as info:
        await fs.open(ROOT, entry.nodeid, os.O_RDWR)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("kind", [stat.S_IFCHR, stat.S_IFBLK], ids=["chr", "blk"])
async def test_only_root_creates_device_nodes(fs, share, kind):
    os.chmod(share, 0o777)
    with pytest.raises(OSError) as info:
        await fs.mknod(USER, ROOT_NODEID, b"dev", kind | 0o666, os.makedev(10, 234))
    assert info.value.errno == errno.EPERM
    assert not os.path.lexists(os.path.join(share, "dev"))


async def test_anyone_creates_fifos_and_sockets(fs, share):
    os.chmod(share, 0o777)
    for name, kind in ((b"fifo", stat.S_IFIFO), (b"socket", stat.S_IFSOCK)):
        entry = await fs.mknod(USER, ROOT_NODEID, name, kind | 0o644, 0)
        assert stat.S_IFMT(entry.attr.mode) == kind
        assert os.lstat(os.path.join(share, os.fsdecode(name))).st_uid == USER[0]


# -- through the vhost-user device ---------------------------------------------


async def call_as(
    client: GuestFuseClient, who: Caller, opcode: int, nodeid: int, args: bytes
) -> tuple[int, bytes]:
    """One FUSE request with ``who`` in its header, as a guest kernel
    (or a hostile one) would send it: (positive errno or 0, reply body)."""
    length = abi.IN_HEADER.size + len(args)
    header = in_header(length, opcode, 1 << 40, nodeid, who.uid, who.gid, who.pid)
    raw = await client.frontend.request(client.queue, [header, args], [abi.OUT_HEADER.size, 4096])
    reply = split_reply(raw)
    return -reply.error, reply.payload


async def test_device_refuses_special_files(client: GuestFuseClient, served: Served):
    os.chmod(served.share, 0o777)
    mknod = abi.MKNOD_IN.pack(stat.S_IFCHR | 0o666, os.makedev(10, 234), 0, 0) + b"dev\0"
    assert (await call_as(client, USER, Opcode.MKNOD, ROOT_ID, mknod))[0] == errno.EPERM
    assert not (served.share / "dev").exists()

    mknod = abi.MKNOD_IN.pack(stat.S_IFIFO | 0o666, 0, 0, 0) + b"fifo\0"
    error, body = await call_as(client, USER, Opcode.MKNOD, ROOT_ID, mknod)
    assert error == 0
    nodeid = abi.ENTRY_OUT.unpack_from(body)[0]
    with writer_for(str(served.share / "fifo")):
        opened = await call_as(client, USER, Opcode.OPEN, nodeid, abi.OPEN_IN.pack(0, 0))
    assert opened[0] == errno.EBADF
