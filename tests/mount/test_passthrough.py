"""The passthrough axis of the mount suite: who reads a local file's data.

``devfuse`` on a local share registers backing files (FUSE passthrough), so the
kernel reads the host file itself; ``devfuse-nopassthrough`` (and pyfuse3) get READ
requests, and the daemon reads the data: the codec's READ/WRITE path, as a VM's.
"""

from __future__ import annotations

import os

import pytest

from tests.support.mounts import Mount

j = os.path.join

SIZE = 4 << 20


def daemon_rchar(mount: Mount) -> int:
    """Bytes the daemon's threads passed to read(2)-like calls (proc(5), /proc/PID/io)."""
    with open(f"/proc/{mount.process.pid}/io") as io:
        for line in io:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar")


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_with_passthrough_the_kernel_reads_the_data_else_the_daemon(twin) -> None:
    data = os.urandom(SIZE)
    with open(j(twin.host, "data"), "wb") as host_file:
        host_file.write(data)
    before = daemon_rchar(twin.mount)
    with open(j(twin.mnt, "data"), "rb") as mounted:
        assert mounted.read() == data
    read_by_daemon = daemon_rchar(twin.mount) - before
    if twin.mount.variant in ("devfuse", "uring"):  # the engines with FUSE passthrough on
        assert read_by_daemon < SIZE // 4, "passthrough on, yet the daemon read the data"
    else:
        assert read_by_daemon >= SIZE, "the daemon did not serve the READs"
