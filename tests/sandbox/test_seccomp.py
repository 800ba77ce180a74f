"""The filter, in the daemon and in a forked child that calls what the list forbids."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

from hostfs.sandbox.allowlist import ALLOWED
from hostfs.sandbox.seccomp import install_filter, syscall_number
from tests.support.serve import SERVE, serving

SECCOMP_MODE_FILTER = "2"
"""proc(5), /proc/PID/status ``Seccomp:``."""
FORBIDDEN = "ptrace"
"""Never needed to serve; what an attacker in the daemon would reach for first."""


def run_filtered(mode: str, syscall: str) -> int:
    """Fork, install the daemon's filter in ``mode``, call ``syscall``; the wait status."""
    number = syscall_number(syscall)
    child = os.fork()
    if child == 0:
        install_filter(mode)
        ctypes.CDLL(None, use_errno=True).syscall(number, 0, 0, 0, 0)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    return status


def test_every_entry_is_a_known_syscall() -> None:
    assert FORBIDDEN not in ALLOWED
    assert all(syscall_number(name) >= 0 for name in ALLOWED)


def test_an_allowed_syscall_goes_through() -> None:
    status = run_filtered("kill", "getpid")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_a_signal_the_daemon_raises_itself_is_delivered() -> None:
    """trio re-raises a SIGTERM that arrives as its signal receiver closes (on the way
    out after a disconnect): raise(3) is tgkill, and must end the daemon by SIGTERM,
    not by seccomp's SIGSYS."""
    child = os.fork()
    if child == 0:
        install_filter("kill")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def test_kill_mode_kills_with_sigsys() -> None:
    status = run_filtered("kill", FORBIDDEN)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_trap_mode_raises_sigsys() -> None:
    status = run_filtered("trap", FORBIDDEN)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_log_mode_allows_and_the_kernel_logs() -> None:
    before = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    status = run_filtered("log", FORBIDDEN)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    after = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    new = after[len(before) :] if after.startswith(before[:200]) else after
    pattern = rf"type=1326 .* syscall={syscall_number(FORBIDDEN)} .*code=0x7ffc0000"
    assert re.search(pattern, new)


async def test_the_daemon_runs_filtered(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share)) as daemon:
        assert daemon.status("Seccomp") == SECCOMP_MODE_FILTER
        assert daemon.status("NoNewPrivs") == "1"


async def test_seccomp_none_installs_no_filter(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    async with serving(tmp_path, str(share), "--seccomp", "none") as daemon:
        assert daemon.status("Seccomp") == "0"


def test_log_mode_says_so_in_hostfs_log(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    command = [*SERVE, "--shared-dir", str(tmp_path), "--fd", str(theirs.fileno())]
    process = subprocess.Popen(
        [*command, "--seccomp", "log"], pass_fds=[theirs.fileno()], stderr=subprocess.PIPE
    )
    theirs.close()
    ours.close()  # the front-end leaves at once: the daemon sets up, logs, and exits
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert b"--seccomp log: system calls outside the allow-list are only logged" in stderr
