"""What a host process sees of a shared file's locks, for the host-lock tests."""

from __future__ import annotations

import errno
import fcntl
import os


def host_try(path: str | os.PathLike[str], kind: str = "posix") -> str:
    """Whether a host process could take an exclusive lock on the file now: ``"free"``,
    else the errno's name (``EAGAIN``).  ``kind`` is ``"flock"`` for flock(2), else a
    POSIX record lock (lockf(3), i.e. fcntl F_SETLK on the whole file)."""
    fd = os.open(path, os.O_RDWR)
    try:
        (fcntl.flock if kind == "flock" else fcntl.lockf)(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        return errno.errorcode[error.errno]
    finally:
        os.close(fd)
    return "free"
