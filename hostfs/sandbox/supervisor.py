"""The process outside the new pid namespace: it waits for the daemon and passes on signals.

A new pid namespace only takes effect for children (unshare(2), CLONE_NEWPID), so, as
virtiofsd, hostfs forks once: the child serves as pid 1 of the new namespace, the parent
stays on the host, forwards SIGTERM/SIGINT/SIGHUP (and SIGUSR1, the statistics) and
exits with the child's status.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from hostfs import libc

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)

SIGNAL_EXIT_BASE = 128
"""A child killed by signal N exits the supervisor with 128 + N, as a shell reports it."""


def supervise(child: int, cleanup: Callable[[], None]) -> int:
    """Wait for ``child``; then ``cleanup()`` (what only the host side can still name)."""

    def forward(signum: int, _frame: object) -> None:
        os.kill(child, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    try:
        # PEP 475: waitpid is retried after a signal handler ran.
        _, status = os.waitpid(child, 0)
    finally:
        cleanup()
    code = os.waitstatus_to_exitcode(status)
    return SIGNAL_EXIT_BASE - code if code < 0 else code


def prepare_child() -> None:
    """In the child, before anything else: die with the parent, and take its own signals.

    pid_namespaces(7): the init of a pid namespace receives only signals it has a handler
    for, so SIGTERM gets one now (a KeyboardInterrupt, as SIGINT) until trio installs its own.
    Its own process group keeps a terminal's Ctrl-C from arriving twice (once forwarded).
    """
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.default_int_handler)
    os.setpgid(0, 0)
