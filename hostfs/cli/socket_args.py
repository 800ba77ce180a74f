"""Checks of ``--socket-path``, ``--fd`` and ``--socket-group`` before anything is made.

Each refusal names the argument and says why in one line, and nothing is left
behind: a socket file bound before its group turned out unknown would stay on
disk (virtiofsd checks the group after binding and leaves it; hostfs checks first).
"""

from __future__ import annotations

import grp
import os
import stat

from hostfs.cli.common import UsageError


def check_socket_arguments(socket_path: str | None, fd: int | None, group: str | None) -> None:
    if (socket_path is None) == (fd is None):
        raise UsageError("give exactly one of --socket-path and --fd")
    if group is not None:
        _check_group(group)
    if socket_path is not None:
        _check_socket_path(socket_path)
    if fd is not None:
        _check_fd(fd)


def _check_group(group: str) -> None:
    try:
        grp.getgrnam(group)
    except KeyError:
        raise UsageError(f"--socket-group {group}: no such group") from None


def _check_socket_path(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"--socket-path {path}: directory {directory} does not exist")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        # A stale socket is replaced; anything else is the user's file.
        raise UsageError(f"--socket-path {path}: exists and is not a socket")


def _check_fd(fd: int) -> None:
    try:
        mode = os.fstat(fd).st_mode
    except OSError as error:
        raise UsageError(f"--fd {fd}: not an open file descriptor ({error.strerror})") from None
    if not stat.S_ISSOCK(mode):
        raise UsageError(f"--fd {fd}: not a socket")
