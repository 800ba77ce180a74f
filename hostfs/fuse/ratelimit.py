"""Log lines a guest can cause, rate-limited so that it cannot flood the log.

The kernel's printk_ratelimit() rule, per kind of message: at most ``burst``
lines per ``interval``; the first line after a suppressed spell says how many
were dropped ("N callbacks suppressed", lib/ratelimit.c).  Tracebacks are for
developers: they go out only at DEBUG.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

BURST = 10
INTERVAL = 5.0
"""DEFAULT_RATELIMIT_BURST and DEFAULT_RATELIMIT_INTERVAL (5 s) of <linux/ratelimit.h>."""


class _Window:
    __slots__ = ("printed", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.printed = 0
        self.suppressed = 0


class RateLimitedLog:
    """One logger; a separate budget for each ``kind`` (a short stable label)."""

    def __init__(
        self,
        logger: logging.Logger,
        burst: int = BURST,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def log(self, kind: str, level: int, message: str, *args: object, trace: bool = False) -> None:
        """Log ``message % args`` unless ``kind`` spent its budget; ``trace``: add the
        current exception's traceback when DEBUG is on."""
        if not self.logger.isEnabledFor(level):
            return
        now = self._clock()
        window = self._windows.get(kind)
        if window is None or now - window.start >= self.interval:
            if window is not None and window.suppressed:
                self.logger.log(level, "%s: %d messages suppressed", kind, window.suppressed)
            window = self._windows[kind] = _Window(now)
        if window.printed >= self.burst:
            window.suppressed += 1
            return
        window.printed += 1
        self.logger.log(
            level, message, *args, exc_info=trace and self.logger.isEnabledFor(logging.DEBUG)
        )
