"""Per-opcode counters: calls, errors and time spent, cheap enough to keep always on."""

from __future__ import annotations

import logging
import signal
import threading

import trio

from hostfs.fuse.abi import MAX_OPCODE, Opcode

log = logging.getLogger(__name__)


class OpStats:
    """Counters indexed by opcode (slot 0 collects opcodes outside the enum)."""

    __slots__ = ("calls", "errors", "latency_ns")

    def __init__(self) -> None:
        self.calls = [0] * (MAX_OPCODE + 1)
        self.errors = [0] * (MAX_OPCODE + 1)
        self.latency_ns = [0] * (MAX_OPCODE + 1)

    def record(self, opcode: int, failed: bool, elapsed_ns: int) -> None:
        if not 0 < opcode <= MAX_OPCODE:
            opcode = 0
        self.calls[opcode] += 1
        if failed:
            self.errors[opcode] += 1
        self.latency_ns[opcode] += elapsed_ns

    def format(self) -> str:
        """A table of the opcodes seen so far, busiest first."""
        rows = [f"{'opcode':<16}{'calls':>10}{'errors':>10}{'avg us':>10}{'total ms':>12}"]
        seen = sorted(
            (opcode for opcode, calls in enumerate(self.calls) if calls),
            key=lambda opcode: -self.calls[opcode],
        )
        for opcode in seen:
            name = Opcode(opcode).name if opcode else "unknown"
            calls = self.calls[opcode]
            total_us = self.latency_ns[opcode] / 1000
            rows.append(
                f"{name:<16}{calls:>10}{self.errors[opcode]:>10}"
                f"{total_us / calls:>10.1f}{total_us / 1000:>12.1f}"
            )
        return "\n".join(rows)

    def log(self, level: int = logging.INFO) -> None:
        if log.isEnabledFor(level):
            log.log(level, "FUSE requests:\n%s", self.format())


async def log_on_signal(stats: OpStats, signum: int = signal.SIGUSR1) -> None:
    """Log the table at INFO each time ``signum`` arrives (``kill -USR1``); returns at
    once where signals cannot be received (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return
    with trio.open_signal_receiver(signum) as signals:
        async for _ in signals:
            stats.log()
