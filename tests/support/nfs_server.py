"""A loopback nfs-ganesha server for tests and benchmarks.

:class:`GaneshaServer` renders ``scripts/ganesha.conf.in`` for one export
directory, runs ``ganesha.nfsd`` in the foreground as a child process and
waits (bounded) until it accepts connections; :meth:`GaneshaServer.stop` and
:meth:`GaneshaServer.start` let a test take the server away and bring it back
on the same ports with the same export (the outage test).

ganesha registers with rpcbind, and two instances on one machine collide on
that registration, so one server serves a whole test session
(:func:`nfs_server` is the session fixture).  The URL bypasses the portmapper
with ``nfsport=``/``mountport=``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CONFIG_TEMPLATE = REPO / "scripts" / "ganesha.conf.in"

NFS_PORT = 12049
MNT_PORT = 12048
"""The ports of the verified recipe (/work/shared/recipes/ganesha.conf)."""

START_TIMEOUT = 20.0
"""ganesha 4.3 answers within ~1 s here; 20 s leaves room for a loaded CI box."""

STOP_TIMEOUT = 10.0
"""SIGTERM takes ganesha ~1.3 s here (it unregisters from rpcbind first)."""


class GaneshaUnavailable(RuntimeError):
    """ganesha or rpcbind is missing, or the server did not come up in time."""


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ensure_rpcbind() -> None:
    """ganesha refuses to serve NFSv3 unless it can register with rpcbind."""
    if _port_open(111):
        return
    rpcbind = shutil.which("rpcbind") or "/usr/sbin/rpcbind"
    if not os.path.exists(rpcbind):
        raise GaneshaUnavailable("rpcbind is not installed (apt-get install rpcbind)")
    subprocess.run([rpcbind, "-w"], check=True)
    deadline = time.monotonic() + 5.0
    while not _port_open(111):
        if time.monotonic() > deadline:
            raise GaneshaUnavailable("rpcbind did not start listening on port 111")
        time.sleep(0.05)


def _stopped(task: Path) -> bool:
    """Whether a thread (``/proc/PID/task/TID``) is stopped by a signal, or gone."""
    try:
        state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("T", "t")


class GaneshaServer:
    """One ganesha process exporting ``export_dir`` on 127.0.0.1."""

    def __init__(
        self,
        export_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str],
        nfs_port: int = NFS_PORT,
        mnt_port: int = MNT_PORT,
    ) -> None:
        self.export_dir = Path(export_dir).resolve()
        self.state_dir = Path(state_dir).resolve()
        self.nfs_port = nfs_port
        self.mnt_port = mnt_port
        self.config = self.state_dir / "ganesha.conf"
        self.log = self.state_dir / "ganesha.log"
        self.pidfile = self.state_dir / "ganesha.pid"
        self.output = self.state_dir / "ganesha.out"
        """stdout and stderr of a detached server (:meth:`start`)."""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The libnfs URL of the export (NFSv3, portmapper bypassed)."""
        return f"nfs://127.0.0.1{self.export_dir}?nfsport={self.nfs_port}&mountport={self.mnt_port}"

    def write_config(self) -> None:
        (self.state_dir / "recovery").mkdir(parents=True, exist_ok=True)
        text = CONFIG_TEMPLATE.read_text()
        for key, value in {
            "NFS_PORT": str(self.nfs_port),
            "MNT_PORT": str(self.mnt_port),
            "EXPORT_DIR": str(self.export_dir),
            "STATE_DIR": str(self.state_dir),
        }.items():
            text = text.replace(f"@{key}@", value)
        self.config.write_text(text)

    def start(self, detach: bool = False) -> None:
        """Start ganesha and wait until both of its ports accept connections.

        ``detach``: ganesha's stdout and stderr go to ``ganesha.out`` in the state
        directory, not ours, so a caller reading our output to its end (the shell's
        ``URL=$(scripts/nfs-server start DIR)``) is not kept waiting by the server.
        """
        if self.process is not None:
            return
        ganesha = shutil.which("ganesha.nfsd") or "/usr/bin/ganesha.nfsd"
        if not os.path.exists(ganesha):
            raise GaneshaUnavailable("ganesha.nfsd is not installed (apt-get install nfs-ganesha)")
        if _port_open(self.nfs_port) or _port_open(self.mnt_port):
            raise GaneshaUnavailable(
                f"ports {self.nfs_port}/{self.mnt_port} are taken (another ganesha? "
                f"see scripts/nfs-server stop)"
            )
        ensure_rpcbind()
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        command = [ganesha, "-F", "-f", str(self.config), "-L", str(self.log)]
        command += ["-p", str(self.pidfile), "-N", "NIV_WARN"]
        with contextlib.ExitStack() as files:
            output = files.enter_context(self.output.open("ab")) if detach else None
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not (_port_open(self.nfs_port) and _port_open(self.mnt_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise GaneshaUnavailable(f"ganesha did not come up; see {self.log}")
            time.sleep(0.05)
        logger.info("ganesha %d serves %s", self.process.pid, self.url)

    def stop(self, crash: bool = False) -> None:
        """Stop ganesha: SIGTERM (clean), or SIGKILL with ``crash`` (a server crash)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections but answers nothing (a hung server)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)
            # The stop reaches each thread on its way back to user space: wait until
            # every one is stopped, or a call sent right now may still be answered.
            tasks = Path(f"/proc/{self.process.pid}/task")
            deadline = time.monotonic() + STOP_TIMEOUT
            while not all(_stopped(task) for task in tasks.iterdir()):
                if time.monotonic() > deadline:
                    raise GaneshaUnavailable("ganesha did not stop on SIGSTOP")
                time.sleep(0.01)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> GaneshaServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def ganesha_server(nfs_port: int = NFS_PORT, mnt_port: int = MNT_PORT) -> Iterator[GaneshaServer]:
    """A server exporting a fresh temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="hostfs-nfs-") as tmp:
        server = GaneshaServer(Path(tmp) / "export", Path(tmp) / "state", nfs_port, mnt_port)
        with server:
            yield server


@pytest.fixture(scope="session")
def nfs_server() -> Iterator[GaneshaServer]:
    """The session's loopback NFS server.

    A missing or failing ganesha fails the tests that need it (scripts/setup
    installs it): an NFS test that quietly skipped would pass for nothing.
    """
    with ganesha_server() as server:
        yield server
