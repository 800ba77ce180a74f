"""The vhost-user-fs daemons a guest can boot with, as command lines.

hostfs takes virtiofsd's flags, so the same runner boots any of them: hostfs
under test; QEMU 7.2's C virtiofsd and Rust virtiofsd 1.13 (trixie's, see
:mod:`hostfs.guest.rust_virtiofsd`) as the references it is compared with.
All get the same file system options.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from hostfs.core.options import FsOptions
from hostfs.guest.rust_virtiofsd import fetch_rust_virtiofsd

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
DAEMONS = ("hostfs", "virtiofsd", "rust-virtiofsd")

MAX_REQUEST_QUEUES = {"hostfs": 1023, "virtiofsd": 1, "rust-virtiofsd": 1}
"""Request queues each daemon serves: hostfs as many as ``--num-request-queues`` asks;
the virtiofsds one.  QEMU 7.2's C virtiofsd ends on a second one ("fv_panic:
libvhost-user: Invalid queue index: 2", seen here with num-request-queues=2), Rust
virtiofsd 1.13 has no option for more (QEMU 10: "Error starting vhost", peers.md)."""


HOSTFS_SERVE = (sys.executable, "-m", "hostfs", "serve")


def daemon_command(
    daemon: str,
    socket_path: Path,
    shared_dir: Path | str,
    options: FsOptions,
    request_queues: int = 1,
    extra_args: Sequence[str] = (),
    *,
    serve: Sequence[str] = HOSTFS_SERVE,
) -> list[str]:
    """The command that serves ``shared_dir`` on ``socket_path`` with ``daemon``.

    ``shared_dir`` is a directory, or (hostfs only) an NFS URL as a string.
    ``request_queues`` beyond ``MAX_REQUEST_QUEUES[daemon]`` is a ValueError.
    ``extra_args`` are appended as they are, in the daemon's own spelling (e.g.
    ``--readonly``, ``--translate-uid``, ``--xattrmap``: policies FsOptions
    holds parsed, which the command line must spell again).  For hostfs, ``serve`` is
    the command before its flags (``hostfs.testing.unprivileged.serve_as``: as an
    ordinary user).
    """
    if daemon not in DAEMONS:
        raise ValueError(f"unknown daemon {daemon!r}; choose from {', '.join(DAEMONS)}")
    if not 1 <= request_queues <= MAX_REQUEST_QUEUES[daemon]:
        raise ValueError(f"{daemon} serves at most {MAX_REQUEST_QUEUES[daemon]} request queues")
    if daemon == "hostfs":
        command = _hostfs_command(serve, socket_path, shared_dir, options, request_queues)
    elif daemon == "virtiofsd":
        command = _virtiofsd_command(socket_path, shared_dir, options)
    else:
        command = _rust_virtiofsd_command(socket_path, shared_dir, options)
    return [*command, *extra_args]


def _hostfs_command(
    serve: Sequence[str],
    socket_path: Path,
    shared_dir: Path | str,
    options: FsOptions,
    request_queues: int,
) -> list[str]:
    command = [*serve, "--socket-path", str(socket_path)]
    command += ["--num-request-queues", str(request_queues)] if request_queues != 1 else []
    command += ["--shared-dir", str(shared_dir), "--cache", options.cache.name]
    command += ["--xattr"] if options.xattr else []
    command += ["--writeback"] if options.writeback else []
    command += [] if options.readdirplus else ["--no-readdirplus"]
    command += [] if options.host_locks else ["--locks", "local"]
    return command + ([] if options.locks else ["-o", "no_posix_lock,no_flock"])


def _virtiofsd_command(socket_path: Path, shared_dir: Path | str, options: FsOptions) -> list[str]:
    """QEMU 7.2's C daemon: everything as ``-o``, and ``never`` is spelled ``none``."""
    words = [
        f"source={shared_dir}",
        f"cache={'none' if options.cache.name == 'never' else options.cache.name}",
        "xattr" if options.xattr else "no_xattr",
        "writeback" if options.writeback else "no_writeback",
        "posix_lock,flock" if options.locks else "no_posix_lock,no_flock",
    ]
    words += [] if options.readdirplus else ["no_readdirplus"]
    return [VIRTIOFSD, f"--socket-path={socket_path}", "-o", ",".join(words)]


def _rust_virtiofsd_command(
    socket_path: Path, shared_dir: Path | str, options: FsOptions
) -> list[str]:
    """virtiofsd 1.13's own flags.  It has no POSIX locks (it answers ENOSYS to them),
    so ``options.locks`` has no flag to map to."""
    command = [*fetch_rust_virtiofsd(), f"--socket-path={socket_path}"]
    command += [f"--shared-dir={shared_dir}", f"--cache={options.cache.name}"]
    command += ["--xattr"] if options.xattr else []
    command += ["--writeback"] if options.writeback else []
    return command + ([] if options.readdirplus else ["--no-readdirplus"])
