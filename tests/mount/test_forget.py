"""FORGET/BATCH_FORGET: nodes the kernel forgets are released by the daemon.

Measured through the local backend only: it pins every node with one O_PATH
descriptor, so the daemon's descriptor count is a direct count of live nodes.
The nfs backend holds NFS file handles in memory and no descriptor per node,
so there is nothing to count from outside the daemon there.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.mount.compare import write_file

j = os.path.join

FILES = 300
SETTLE_TIMEOUT = 5.0
SLACK = 5
"""Descriptors the daemon may legitimately still hold (directories in use, the
root, a straggling handle)."""


def forget_everything_unused() -> None:
    """Drop dentries and inodes: the kernel sends FORGET for every unused node."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


def settled_fd_count(mount) -> int:
    """The daemon's descriptor count once FORGETs stop arriving (unchanged for 0.3 s)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    samples = [mount.daemon_fds()]
    while time.monotonic() < deadline and (len(samples) < 4 or len(set(samples[-4:])) > 1):
        time.sleep(0.1)
        samples.append(mount.daemon_fds())
    return samples[-1]


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_forgotten_nodes_release_their_descriptors(twin):
    forget_everything_unused()
    before = settled_fd_count(twin.mount)

    directory = j(twin.mnt, "work")
    os.mkdir(directory)
    for i in range(FILES):
        path = j(directory, f"f{i}")
        write_file(path, b"data")
        with open(path, "rb") as f:
            f.read()
        os.stat(path)
    for i in range(0, FILES, 2):
        os.unlink(j(directory, f"f{i}"))
    held = twin.mount.daemon_fds()
    assert held >= before + FILES // 2, "the workload did not pin nodes: nothing is measured"

    forget_everything_unused()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while twin.mount.daemon_fds() > before + SLACK and time.monotonic() < deadline:
        time.sleep(0.05)
    assert twin.mount.daemon_fds() <= before + SLACK
