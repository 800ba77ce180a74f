"""The vhost-user-fs daemons a guest can boot with, as command lines.

hostfs takes virtiofsd's flags, so the same runner boots either one: hostfs
under test, QEMU's C virtiofsd as the reference it is compared with. Both get
the same file system options.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hostfs.core.options import FsOptions

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
DAEMONS = ("hostfs", "virtiofsd")


def daemon_command(
    daemon: str, socket_path: Path, shared_dir: Path | str, options: FsOptions
) -> list[str]:
    """The command that serves ``shared_dir`` on ``socket_path`` with ``daemon``.

    ``shared_dir`` is a directory, or (hostfs only) an NFS URL as a string.
    """
    if daemon == "hostfs":
        return _hostfs_command(socket_path, shared_dir, options)
    if daemon == "virtiofsd":
        return _virtiofsd_command(socket_path, shared_dir, options)
    raise ValueError(f"unknown daemon {daemon!r}; choose from {', '.join(DAEMONS)}")


def _hostfs_command(socket_path: Path, shared_dir: Path | str, options: FsOptions) -> list[str]:
    command = [sys.executable, "-m", "hostfs", "serve", "--socket-path", str(socket_path)]
    command += ["--shared-dir", str(shared_dir), "--cache", options.cache.name]
    command += ["--xattr"] if options.xattr else []
    command += ["--writeback"] if options.writeback else []
    command += [] if options.readdirplus else ["--no-readdirplus"]
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
