"""Whether this kernel will carry FUSE over io_uring, in one line when it will not.

The switch is the fuse module's ``enable_uring`` parameter (fs/fuse/dev_uring.c,
off by default; ``CONFIG_FUSE_IO_URING``, Linux >= 6.14).  When it is off the
kernel offers no FUSE_OVER_IO_URING in INIT and answers EOPNOTSUPP to every
ring command, so ``hostfs mount --engine uring`` refuses before mounting.
"""

from __future__ import annotations

ENABLE_URING = "/sys/module/fuse/parameters/enable_uring"


def unavailable(parameter: str = ENABLE_URING) -> str | None:
    """Why FUSE over io_uring cannot be used here, or None when it can."""
    try:
        with open(parameter) as switch:
            enabled = switch.read().strip()
    except FileNotFoundError:
        return (
            "this kernel has no FUSE over io_uring (needs Linux >= 6.14 with "
            f"CONFIG_FUSE_IO_URING, and the fuse module loaded; {parameter} is missing)"
        )
    except OSError as error:
        return f"cannot read {parameter}: {error.strerror}"
    if enabled != "Y":
        return f"FUSE over io_uring is off in this kernel: echo Y > {parameter} (as root)"
    return None


def enabled() -> bool:
    return unavailable() is None
