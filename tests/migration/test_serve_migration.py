"""Two real ``hostfs serve`` processes (sandboxed, under seccomp, as deployed) migrate a
session: the device offers DEVICE_STATE, the sandboxed source names its nodes from
inside its pivot_root, and ``--migration-on-error`` reaches the device."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostfs.core.filesystem import ROOT_NODEID
from hostfs.migration import state
from hostfs.testing.frontend import Frontend, FrontendError
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.vhost.messages import ProtocolFeature, Request
from tests.support.serve import serve_command, wait_for_socket


@pytest.mark.parametrize("policy", ["abort", "guest-error"])
async def test_serve_migrates_by_its_policy(tmp_path: Path, policy: str) -> None:
    sockets = [tmp_path / "a.sock", tmp_path / "b.sock"]
    flags = ["--migration-on-error", policy]
    daemons = [
        subprocess.Popen(serve_command(tmp_path, "--socket-path", str(sock), *flags))
        for sock in sockets
    ]
    try:
        for sock in sockets:
            await wait_for_socket(sock)
        async with Frontend.connect(str(sockets[0])) as source:
            offered = await source.get_u64(Request.GET_PROTOCOL_FEATURES)
            await source.realize()
            await source.start(2)
            guest = GuestFuseClient(source)
            await guest.init()
            directory = await guest.mkdir(ROOT_NODEID, b"dir")
            nodeid, fh = await guest.create(directory, b"kept")
            await guest.create(directory, b"gone")
            await guest.unlink(directory, b"gone")
            for index in range(2):
                await source.stop_queue(index)
            try:
                data = await source.save_state()
            except FrontendError:
                data = None
        if data is not None:
            async with Frontend.connect(str(sockets[1])) as destination:
                await destination.realize()
                loaded = await destination.load_state(data)
                await destination.start(2)
                wrote = await GuestFuseClient(destination).write(nodeid, fh, 0, b"moved")
                destination.close_queues()
    finally:
        for daemon in daemons:
            daemon.terminate()
            daemon.wait(timeout=10)
    assert offered & ProtocolFeature.DEVICE_STATE
    if policy == "abort":
        assert data is None  # the file unlinked while open cannot be carried
    else:
        assert data is not None
        assert sorted(node.path for node in state.decode(data).nodes) == [b"dir", b"dir/kept"]
        assert (loaded, wrote) == (0, 5)
        assert (tmp_path / "share" / "dir" / "kept").read_bytes() == b"moved"
