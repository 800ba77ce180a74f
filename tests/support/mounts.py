"""A real ``hostfs mount`` in a child process, for tests that drive it with syscalls.

The daemon runs in its own process, as a user would run it: the test process
then makes ordinary blocking syscalls on the mount point without stalling the
daemon's trio loop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

MOUNT_TIMEOUT = 20.0
"""A cold ``python -m hostfs`` start takes ~0.5 s here; CI machines are noisier."""

UNMOUNT_TIMEOUT = 20.0


@dataclass(frozen=True)
class EngineVariant:
    """A mount-suite engine: the ``--engine`` it runs and the flags that make it a variant."""

    engine: str
    args: tuple[str, ...] = ()
    local_only: bool = False
    """Whether it differs from its engine only on a local share (an NFS share has no
    FUSE passthrough, so there it would repeat the plain engine's run)."""


VARIANTS: dict[str, EngineVariant] = {
    "devfuse": EngineVariant("devfuse"),
    "devfuse-nopassthrough": EngineVariant("devfuse", ("--no-passthrough",), local_only=True),
    "pyfuse3": EngineVariant("pyfuse3"),
    "uring": EngineVariant("uring"),
}
"""By the name tests are parametrized with.  ``devfuse`` on a local share uses FUSE
passthrough, so the kernel does READ/WRITE itself; ``devfuse-nopassthrough`` sends them
through hostfs's codec, the data path a VM uses.  A name not listed is an engine as it is."""


def variant(name: str) -> EngineVariant:
    return VARIANTS.get(name, EngineVariant(name))


def is_mounted(path: str) -> bool:
    target = os.path.realpath(path)
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def mount_words(path: str) -> set[str]:
    """The options /proc/mounts shows for the mount at ``path``."""
    target = os.path.realpath(path)
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if fields[1] == target:
                return set(fields[3].split(","))
    raise AssertionError(f"{path} is not mounted")


@dataclass
class Mount:
    """A live mount: ``path`` is the mount point, ``host_dir`` the backend's real directory."""

    path: str
    host_dir: str
    engine: str
    """The ``--engine`` (``devfuse`` for every devfuse variant)."""
    backend: str
    process: subprocess.Popen
    variant: str = ""
    """The name the suite ran it under (:data:`VARIANTS`), e.g. ``devfuse-nopassthrough``."""

    def daemon_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@contextlib.contextmanager
def hostfs_mount(
    engine: str,
    shared_dir: str,
    mountpoint: str,
    host_dir: str,
    backend: str = "local",
    extra_args: tuple[str, ...] = ("--xattr",),
    allow_other: bool = True,
) -> Iterator[Mount]:
    """Mount with ``engine``, a :data:`VARIANTS` name (or any ``--engine``).

    ``allow_other`` (on for the suite, which acts as other users too) mounts with
    ``--allow-other``, so with the kernel's ``default_permissions``."""
    chosen = variant(engine)
    command = [
        sys.executable, "-m", "hostfs", "mount", "--engine", chosen.engine, *chosen.args,
        "--shared-dir", shared_dir, *extra_args, *(["--allow-other"] if allow_other else []),
        mountpoint,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not is_mounted(mountpoint):
            if process.poll() is not None:
                raise RuntimeError(f"hostfs mount exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("hostfs mount did not mount in time")
            time.sleep(0.02)
        yield Mount(mountpoint, host_dir, chosen.engine, backend, process, engine)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(UNMOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if is_mounted(mountpoint):
            subprocess.run(["umount", "-l", mountpoint], check=False)
