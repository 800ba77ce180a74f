"""Both daemons get the same file system options, each in its own spelling."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hostfs.core.options import CACHE_POLICIES, FsOptions
from hostfs.guest import daemons
from hostfs.guest.daemons import VIRTIOFSD, daemon_command

SOCKET, SHARE = Path("/run/s.sock"), Path("/srv/share")


def test_hostfs_takes_virtiofsd_style_long_flags():
    options = FsOptions(cache=CACHE_POLICIES["never"], xattr=True, readdirplus=False)

    assert daemon_command("hostfs", SOCKET, SHARE, options) == [
        sys.executable,
        "-m",
        "hostfs",
        "serve",
        "--socket-path",
        "/run/s.sock",
        "--shared-dir",
        "/srv/share",
        "--cache",
        "never",
        "--xattr",
        "--no-readdirplus",
    ]


def test_c_virtiofsd_gets_dash_o_options():
    options = FsOptions(cache=CACHE_POLICIES["never"], locks=False)

    assert daemon_command("virtiofsd", SOCKET, SHARE, options) == [
        VIRTIOFSD,
        "--socket-path=/run/s.sock",
        "-o",
        "source=/srv/share,cache=none,no_xattr,no_writeback,no_posix_lock,no_flock",
    ]


def test_unknown_daemon():
    with pytest.raises(ValueError, match="virtiofsd"):
        daemon_command("nfsd", SOCKET, SHARE, FsOptions())


def test_hostfs_gets_its_request_queue_count():
    command = daemon_command("hostfs", SOCKET, SHARE, FsOptions(), request_queues=2)

    assert command[command.index("--num-request-queues") + 1] == "2"
    assert "--num-request-queues" not in daemon_command("hostfs", SOCKET, SHARE, FsOptions())


@pytest.mark.parametrize("daemon", ["virtiofsd", "rust-virtiofsd"])
def test_virtiofsds_serve_one_request_queue(daemon):
    with pytest.raises(ValueError, match="at most 1 request queues"):
        daemon_command(daemon, SOCKET, SHARE, FsOptions(), request_queues=2)


def test_rust_virtiofsd_gets_its_own_flags(monkeypatch):
    monkeypatch.setattr(daemons, "fetch_rust_virtiofsd", lambda: ["ld.so", "virtiofsd"])
    options = FsOptions(cache=CACHE_POLICIES["never"], xattr=True, readdirplus=False)

    assert daemon_command("rust-virtiofsd", SOCKET, SHARE, options) == [
        "ld.so",
        "virtiofsd",
        "--socket-path=/run/s.sock",
        "--shared-dir=/srv/share",
        "--cache=never",
        "--xattr",
        "--no-readdirplus",
    ]
