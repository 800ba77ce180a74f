"""Memory region fds a front-end can shrink: refused when too small, sealed when possible."""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostfs.fuse.abi import ROOT_ID
from hostfs.testing.frontend import Frontend
from hostfs.vhost.memory import GuestMemory, GuestMemoryError
from hostfs.vhost.messages import (
    MemoryRegionDesc,
    Request,
    decode_u64,
    encode_memory_table,
    encode_single_region,
)
from tests.support.serve import serving
from tests.vhost.conftest import Served

PAGE = mmap.PAGESIZE
REGION = MemoryRegionDesc(0x10000, 2 * PAGE, 0x7000_0000, 0)
QEMU_SEALS = fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
"""What QEMU's memory-backend-memfd (seal=on, the default) puts on its memfd."""


@pytest.fixture
def memory() -> Iterator[GuestMemory]:
    memory = GuestMemory()
    yield memory
    memory.clear()


def memfd(size: int, flags: int = os.MFD_ALLOW_SEALING) -> int:
    fd = os.memfd_create("guest-ram", os.MFD_CLOEXEC | flags)
    os.ftruncate(fd, size)
    return fd


@pytest.mark.parametrize(
    "desc",
    [
        MemoryRegionDesc(0x10000, 4 * PAGE, 0x7000_0000, 0),  # longer than the file
        MemoryRegionDesc(0x10000, 2 * PAGE, 0x7000_0000, PAGE),  # offset pushes it past the end
    ],
)
def test_region_beyond_the_end_of_its_file_is_refused(memory: GuestMemory, desc) -> None:
    fd = memfd(2 * PAGE)
    with pytest.raises(GuestMemoryError, match="beyond its file"):
        memory.add(desc, fd)
    os.close(fd)
    assert memory.regions == []


def test_sealable_memfd_is_sealed_against_shrinking(memory: GuestMemory, caplog) -> None:
    fd = memfd(2 * PAGE)
    memory.add(REGION, fd)
    with pytest.raises(PermissionError):
        os.ftruncate(fd, PAGE)
    os.ftruncate(fd, 4 * PAGE)  # growing does no harm and stays allowed
    assert "cannot be sealed" not in caplog.text
    os.close(fd)


def test_qemu_sealed_memfd_is_accepted(memory: GuestMemory, caplog) -> None:
    fd = memfd(2 * PAGE)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, QEMU_SEALS)
    memory.add(REGION, fd)
    assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == QEMU_SEALS
    assert "cannot be sealed" not in caplog.text
    os.close(fd)


def unsealable_memfd(tmp_path: Path) -> int:
    return memfd(2 * PAGE, flags=0)


def shm_file(tmp_path: Path) -> int:
    """memory-backend-file,mem-path=/dev/shm/...: a tmpfs file, seals start as F_SEAL_SEAL."""
    path = Path("/dev/shm") / f"hostfs-test-{os.getpid()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    path.unlink()
    os.ftruncate(fd, 2 * PAGE)
    return fd


def plain_file(tmp_path: Path) -> int:
    fd = os.open(tmp_path / "ram", os.O_RDWR | os.O_CREAT)
    os.ftruncate(fd, 2 * PAGE)
    return fd


@pytest.mark.parametrize("make_fd", [unsealable_memfd, shm_file, plain_file])
def test_unsealable_fds_are_accepted_with_a_warning(
    memory: GuestMemory, tmp_path: Path, caplog, make_fd
) -> None:
    """QEMU's memory-backend-file (/dev/shm, hugetlbfs) must keep working."""
    fd = make_fd(tmp_path)
    with caplog.at_level(logging.WARNING):
        memory.add(REGION, fd)
    assert "cannot be sealed" in caplog.text
    memory.buffers(REGION.guest_phys_addr, REGION.memory_size)[0][:4] = b"used"
    os.close(fd)


async def test_mem_table_with_a_short_fd_is_refused(served: Served) -> None:
    """Python's mmap() refused these before region_fd did; this pins it at the message."""
    async with Frontend.connect(served.socket_path) as frontend:
        await frontend.realize()
        short = memfd(PAGE)
        region = frontend.ram.region()
        for request, payload in [
            (Request.SET_MEM_TABLE, encode_memory_table([region])),
            (Request.ADD_MEM_REG, encode_single_region(region)),
        ]:
            reply = await frontend.call(request, payload, [short], need_reply=True)
            assert reply is not None and decode_u64(reply) != 0
        os.close(short)
        assert served.device.memory.regions == []


async def test_front_end_shrinking_guest_ram_cannot_crash_the_daemon(tmp_path: Path) -> None:
    """A shrink after SET_MEM_TABLE would SIGBUS the daemon on its next access to the
    rings: hence ``hostfs serve`` in a process of its own."""
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share)) as daemon:
        with pytest.raises(PermissionError):
            os.ftruncate(daemon.frontend.ram.fd, 0)
        await daemon.fuse.create(ROOT_ID, b"still-served")
