"""The daemon's view of the host, observed from outside through /proc/PID."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hostfs import libc
from tests.support.serve import SERVE, round_trip, serving


def same_file(a: str | Path, b: str | Path) -> bool:
    first, second = os.stat(a), os.stat(b)
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def host_namespace(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


async def test_namespace_mode_is_the_default(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share)) as daemon:
        assert same_file(f"/proc/{daemon.pid}/root", share)
        for kind in ("mnt", "pid", "net"):
            assert daemon.namespace(kind) != host_namespace(kind)
        assert daemon.pid != daemon.process.pid
        await round_trip(daemon.fuse, b"through-the-sandbox", b"guest data")
        # The only proc it still reaches is its own namespace's: it is pid 1 there.
        assert os.readlink(f"/proc/{daemon.pid}/cwd") == "/1/fd"
    assert (share / "through-the-sandbox").read_bytes() == b"guest data"


async def test_chroot_mode(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share), "--sandbox", "chroot") as daemon:
        assert same_file(f"/proc/{daemon.pid}/root", share)
        for kind in ("mnt", "pid", "net"):
            assert daemon.namespace(kind) == host_namespace(kind)
        await round_trip(daemon.fuse, b"chrooted", b"chroot data")
    assert (share / "chrooted").read_bytes() == b"chroot data"


async def test_libvirt_spelling_o_sandbox(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share), "-o", "sandbox=chroot") as daemon:
        assert same_file(f"/proc/{daemon.pid}/root", share)
        assert daemon.namespace("mnt") == host_namespace("mnt")


async def test_none_mode_stays_on_the_host(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share), "--sandbox", "none") as daemon:
        assert daemon.pid == daemon.process.pid
        assert same_file(f"/proc/{daemon.pid}/root", "/")
        await round_trip(daemon.fuse, b"unconfined", b"x")
    assert (share / "unconfined").read_bytes() == b"x"


async def test_nfs_backend_keeps_the_network_only(tmp_path: Path, nfs_server) -> None:
    async with serving(tmp_path, nfs_server.url) as daemon:
        assert os.listdir(f"/proc/{daemon.pid}/root") == []
        assert daemon.namespace("net") == host_namespace("net")
        assert daemon.namespace("mnt") != host_namespace("mnt")
        assert daemon.namespace("pid") != host_namespace("pid")
        await round_trip(daemon.fuse, b"over-nfs-sandboxed", b"nfs data")
    assert (nfs_server.export_dir / "over-nfs-sandboxed").read_bytes() == b"nfs data"


def _without_sys_admin() -> None:
    # Dropped from the bounding set, root's exec(2) does not get it back (capabilities(7)).
    libc.prctl(libc.PR_CAPBSET_DROP, 21)  # CAP_SYS_ADMIN


def test_no_namespaces_allowed_is_one_line_exit_2(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    command = [*SERVE, "--shared-dir", str(share), "--socket-path", str(tmp_path / "s.sock")]
    result = subprocess.run(
        command, capture_output=True, text=True, preexec_fn=_without_sys_admin, check=False
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "hostfs-vhost-user-fs: error: --sandbox namespace: unshare: Operation not permitted "
        "(try --sandbox chroot or none)"
    )
