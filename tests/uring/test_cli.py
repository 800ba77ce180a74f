"""``hostfs mount --engine uring`` as a user runs it: SIGTERM and umount end it cleanly,
and a kernel with FUSE over io_uring switched off gets one line before anything is
mounted."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import trio

from hostfs.cli.mount import DEFAULT_REASON
from hostfs.uring import session as uring_engine
from hostfs.uring.support import ENABLE_URING
from tests.devfuse.mounting import devfuse_mount, in_thread
from tests.support.mounts import MOUNT_TIMEOUT, UNMOUNT_TIMEOUT, is_mounted


@contextlib.contextmanager
def uring_mount(
    tmp_path: Path, engine: tuple[str, ...] = ("--engine", "uring")
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    share, mnt = tmp_path / "share", tmp_path / "mnt"
    share.mkdir()
    mnt.mkdir()
    command = [sys.executable, "-m", "hostfs", "mount", *engine]
    command += ["--log-level", "info", "--shared-dir", str(share), str(mnt)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not is_mounted(str(mnt)):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "no mount in time"
            time.sleep(0.02)
        yield process, mnt
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if is_mounted(str(mnt)):
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def ring_requests(log: str) -> int:
    found = re.search(r"(\d+) requests over the rings, (\d+) over /dev/fuse", log)
    assert found, log
    return int(found.group(1))


def touch_files(mnt: Path) -> None:
    for index in range(20):
        (mnt / f"f{index}").write_text("x")
    assert len(os.listdir(mnt)) == 20


def test_sigterm_unmounts_and_exits_zero(tmp_path: Path) -> None:
    with uring_mount(tmp_path) as (process, mnt):
        touch_files(mnt)
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=UNMOUNT_TIMEOUT)
        assert process.returncode == 0, log
        assert not is_mounted(str(mnt))
        assert "SIGTERM: unmounting" in log
        assert ring_requests(log) >= 20


def test_umount_from_outside_ends_the_server(tmp_path: Path) -> None:
    with uring_mount(tmp_path) as (process, mnt):
        touch_files(mnt)
        subprocess.run(["umount", str(mnt)], check=True)
        _, log = process.communicate(timeout=UNMOUNT_TIMEOUT)
        assert process.returncode == 0, log
        assert "unmounted from outside" in log
        assert ring_requests(log) >= 20


def test_without_engine_the_log_names_the_default_and_why(tmp_path: Path) -> None:
    with uring_mount(tmp_path, engine=()) as (process, _):
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=UNMOUNT_TIMEOUT)
    assert process.returncode == 0, log
    assert f"(devfuse engine: {DEFAULT_REASON})" in log
    assert "io_uring" not in log.replace(DEFAULT_REASON, "")


@contextlib.contextmanager
def enable_uring(value: str) -> Iterator[None]:
    """Set fuse.enable_uring for the body, then restore it.  The suite runs serially
    and the kernel reads the switch only at INIT and before a connection has rings
    (fuse_uring_cmd), so mounts already up are unaffected."""
    with open(ENABLE_URING) as switch:
        saved = switch.read().strip()
    try:
        with open(ENABLE_URING, "w") as switch:
            switch.write(value)
        yield
    finally:
        with open(ENABLE_URING, "w") as switch:
            switch.write(saved)


def test_with_the_switch_off_the_engine_refuses_and_the_session_falls_back(
    tmp_path: Path,
) -> None:
    (tmp_path / "mnt").mkdir()
    command = [sys.executable, "-m", "hostfs", "mount", "--engine", "uring"]
    command += ["--shared-dir", str(tmp_path), str(tmp_path / "mnt")]

    async def fall_back() -> tuple[bool, int, str]:
        async with devfuse_mount(tmp_path / "inner", None, uring_engine) as mount:
            data = await in_thread(lambda: ((mount.path / "f").write_text("y"), "ok")[1])
            return mount.session.fell_back, mount.session.transport.requests, data

    os.mkdir(tmp_path / "inner")
    with enable_uring("N"):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        fell_back, over_rings, data = trio.run(fall_back)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"echo Y > {ENABLE_URING}" in lines[0], result.stderr
    assert not is_mounted(str(tmp_path / "mnt"))
    # Past the CLI's check (a switch turned off between the check and INIT): the kernel
    # offers no FUSE_OVER_IO_URING, and the session serves everything over /dev/fuse.
    assert (fell_back, over_rings, data) == (True, 0, "ok")
