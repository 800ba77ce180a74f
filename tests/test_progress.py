"""hostfs.progress: a status line on a terminal's stderr, nothing in a pipe or under CI."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from hostfs.progress import ERASE_LINE

WORK = """
import logging, sys
from hostfs.progress import phase
logging.basicConfig(level=logging.INFO, format="log: %(message)s")
with phase("step one") as status:
    status.show("step two")
    logging.info("a record")
print("done", file=sys.stderr)
"""


def environment(**changes: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "HOSTFS_PROGRESS")}
    env.update({key: value for key, value in changes.items() if value is not None})
    return env


def stderr_on_a_pty(command: list[str], env: dict[str, str]) -> str:
    """What ``command`` wrote to a stderr that is a terminal (stdout is a pipe)."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(command, stderr=slave, stdout=subprocess.PIPE, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        process.communicate(timeout=120)
        assert process.returncode == 0
    finally:
        os.close(master)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_a_pipe_gets_nothing_but_the_program_s_own_lines() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WORK], capture_output=True, text=True, env=environment(), timeout=60
    )
    assert result.stderr == "log: a record\ndone\n"


def test_a_terminal_sees_the_line_redrawn_around_a_log_record_and_erased() -> None:
    seen = stderr_on_a_pty([sys.executable, "-c", WORK], environment())
    expected = ERASE_LINE + "step one" + ERASE_LINE + "step two"
    expected += ERASE_LINE + "log: a record\n" + ERASE_LINE + "step two" + ERASE_LINE + "done\n"
    assert seen == expected


@pytest.mark.parametrize("variable", ["CI", "HOSTFS_PROGRESS"])
def test_ci_or_the_opt_out_keeps_a_terminal_quiet(variable: str) -> None:
    value = "true" if variable == "CI" else "0"
    seen = stderr_on_a_pty([sys.executable, "-c", WORK], environment(**{variable: value}))
    assert seen == "log: a record\ndone\n"


def test_the_guest_benchmark_shows_its_rounds(tmp_path: Path) -> None:
    """scripts/bench-guest's loop, on the native peer only (no guest boots)."""
    argv = ["--peers", "native", "--mib", "1", "--files", "5", "--ops", "5", "--rounds", "2"]
    argv += ["--dir", str(tmp_path)]
    code = f"from hostfs.guest.bench import main; main({argv!r})"
    seen = stderr_on_a_pty([sys.executable, "-c", code], environment())
    assert ERASE_LINE + "bench round 1: native on host" in seen
    assert ERASE_LINE + "bench round 2: native on host" in seen
    quiet = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment()
    )
    assert "bench round" not in quiet.stderr and "\x1b" not in quiet.stderr
