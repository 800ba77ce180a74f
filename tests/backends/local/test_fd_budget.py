"""The local backend's fd budget: the guest's nodes, open files and directory
streams stop at the soft RLIMIT_NOFILE minus a reserve, with ENFILE to the guest,
so the fds the vhost-user front-end sends later still arrive.

Nodes cost an fd each with ``--inode-file-handles never``, which most tests here
ask for; with ``prefer`` (the default) only hot nodes hold one, and those give
way to what the guest opens."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from collections.abc import Iterator

import pytest
import trio

from hostfs.backends.local import LocalBackend
from hostfs.backends.local.fd_budget import CONTROL_PLANE_RESERVE, FdBudget, open_fd_count
from hostfs.cli.serve import make_device
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import FuseError, GuestFuseClient
from hostfs.vhost.messages import Request, VringFile
from hostfs.vhost.server import VhostUserServer, listen_on_path
from tests.support.core import ROOT, open_fds

GUEST_FDS = 40
"""What the lowered limits below leave for the guest's objects."""


def fill(share: str, count: int) -> None:
    for i in range(count):
        os.close(os.open(os.path.join(share, f"f{i}"), os.O_CREAT))


@pytest.fixture
def lowered_nofile() -> Iterator[int]:
    """The soft RLIMIT_NOFILE just above what is open now plus the reserve and GUEST_FDS."""
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = open_fd_count() + CONTROL_PLANE_RESERVE + GUEST_FDS
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, saved[1]))
    try:
        yield soft
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)


async def test_every_kind_of_fd_counts_and_beyond_the_budget_is_enfile(share):
    fill(share, 10)
    root_fd = os.open(share, os.O_PATH | os.O_DIRECTORY)
    fs = FileSystem(LocalBackend(root_fd, 0, FdBudget(6), "never"))  # the root's node takes one
    await fs.start()
    try:
        fds = open_fds()
        nodes = [(await fs.lookup(ROOT, ROOT_NODEID, b"f%d" % i)).nodeid for i in range(3)]
        fh = (await fs.open(ROOT, nodes[0], os.O_RDONLY)).fh
        dh = (await fs.opendir(ROOT, ROOT_NODEID, 0)).fh
        assert open_fds() == fds + 5
        for refused in (
            fs.lookup(ROOT, ROOT_NODEID, b"f9"),
            fs.open(ROOT, nodes[1], os.O_RDONLY),
            fs.opendir(ROOT, ROOT_NODEID, 0),
            fs.create(ROOT, ROOT_NODEID, b"new", 0o600, os.O_RDWR),
            fs.mkdir(ROOT, ROOT_NODEID, b"dir", 0o700),
            fs.symlink(ROOT, ROOT_NODEID, b"sym", b"f0"),
            fs.mknod(ROOT, ROOT_NODEID, b"fifo", 0o10600, 0),
            fs.link(ROOT, nodes[0], ROOT_NODEID, b"hard"),
        ):
            with pytest.raises(OSError) as raised:
                await refused
            assert raised.value.errno == errno.ENFILE
        assert open_fds() == fds + 5
        assert sorted(os.listdir(share)) == sorted(f"f{i}" for i in range(10))  # undone
        # A lookup of a node already held needs no new fd.
        assert (await fs.lookup(ROOT, ROOT_NODEID, b"f0")).nodeid == nodes[0]
        # Each kind gives its fd back.
        await fs.release(ROOT, nodes[0], fh)
        await fs.releasedir(ROOT, ROOT_NODEID, dh)
        fs.forget(nodes[2], 1)
        for i in range(7, 10):
            await fs.lookup(ROOT, ROOT_NODEID, b"f%d" % i)
        assert open_fds() == fds + 5
    finally:
        await fs.close()
    assert fs.backend._fds.held == 0


async def test_with_prefer_hot_nodes_give_their_fds_to_open_files(share):
    fill(share, 10)
    root_fd = os.open(share, os.O_PATH | os.O_DIRECTORY)
    # The root's node and the mount fd take two; four open files, and one fd for
    # the node an operation is on (opened from its handle).
    fs = FileSystem(LocalBackend(root_fd, 0, FdBudget(7), "prefer"))
    await fs.start()
    try:
        nodes = [(await fs.lookup(ROOT, ROOT_NODEID, b"f%d" % i)).nodeid for i in range(10)]
        assert fs.backend._fds.held == 2 + fs.backend._inodes.hot_limit  # at most hot_limit hot
        fhs = [(await fs.open(ROOT, node, os.O_RDONLY)).fh for node in nodes[:4]]
        assert fs.backend._fds.held == 7  # a hot fd was closed for each open file beyond
        with pytest.raises(OSError) as raised:
            await fs.open(ROOT, nodes[4], os.O_RDONLY)
        assert raised.value.errno == errno.ENFILE
        assert (await fs.lookup(ROOT, ROOT_NODEID, b"f9")).nodeid == nodes[9]
        for node, fh in zip(nodes, fhs, strict=False):
            await fs.release(ROOT, node, fh)
    finally:
        await fs.close()
    assert fs.backend._fds.held == 0


@pytest.mark.parametrize("mode", ["never", "prefer"])
async def test_the_budget_leaves_the_reserve_of_the_soft_limit(share, lowered_nofile, mode):
    fill(share, 2 * GUEST_FDS)
    fs = FileSystem(LocalBackend.from_path(share, rlimit_nofile=0, inode_file_handles=mode))
    await fs.start()
    try:
        refused = 0
        for i in range(2 * GUEST_FDS):
            try:
                await fs.lookup(ROOT, ROOT_NODEID, b"f%d" % i)
            except OSError as error:
                assert error.errno == errno.ENFILE
                refused += 1
        if mode == "never":  # a node is an fd
            assert 0 < refused < 2 * GUEST_FDS
        else:  # a node by handle is no fd
            assert refused == 0
        assert lowered_nofile - open_fd_count() >= CONTROL_PLANE_RESERVE
    finally:
        await fs.close()


async def test_a_guest_out_of_fds_gets_enfile_and_the_front_end_still_sends_fds(
    tmp_path, share, lowered_nofile, nursery
):
    files = CONTROL_PLANE_RESERVE + 2 * GUEST_FDS  # more than the whole limit leaves
    fill(share, files)
    # Pinned nodes, so that lookups alone spend the budget.
    fs = FileSystem(LocalBackend.from_path(share, rlimit_nofile=0, inode_file_handles="never"))
    await fs.start()
    server = VhostUserServer(make_device(fs, num_request_queues=1), reconnect=True)
    listener = await listen_on_path(str(tmp_path / "vhost.sock"))
    nursery.start_soon(server.serve_listener, listener)
    try:
        async with Frontend.connect(str(tmp_path / "vhost.sock")) as frontend:
            await frontend.realize()
            await frontend.start(2)
            guest = GuestFuseClient(frontend)
            await guest.init()
            errors = []
            for i in range(files):
                try:
                    await guest.lookup(ROOT_NODEID, b"f%d" % i)
                except FuseError as error:
                    errors.append(error.errno)
            assert errors and set(errors) == {errno.ENFILE}
            # The front-end replaces a call eventfd (as QEMU does on a vhost restart):
            # the fd arrives whole, and the device keeps answering on that queue.
            call_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            try:
                await frontend.call_ok(
                    Request.SET_VRING_CALL, VringFile(1, False).encode(), [call_fd]
                )
                frontend.queues[1].call_fd, old = call_fd, frontend.queues[1].call_fd
                os.close(old)
                call_fd = -1
            finally:
                if call_fd >= 0:
                    os.close(call_fd)
            with trio.fail_after(10):
                assert await guest.lookup(ROOT_NODEID, b"f0") > ROOT_NODEID
            frontend.close_queues()
    finally:
        server.shutdown()
        listener.close()
        await fs.close()


def test_rlimit_nofile_sets_both_limits_as_virtiofsd():
    code = (
        "import resource;"
        "from hostfs.backends.local.fd_budget import set_nofile_limit;"
        "set_nofile_limit(300); print(*resource.getrlimit(resource.RLIMIT_NOFILE));"
        "set_nofile_limit(0); print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["300 300", "300 300"]
