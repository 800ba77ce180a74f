"""``hostfs mount``: the core mounted on this host, for use and for debugging."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import trio

from hostfs.cli import common
from hostfs.cli.umask import clear_umask
from hostfs.fuse.engine import MountEngine
from hostfs.fuse.init import SessionConfig
from hostfs.uring import support as uring_support

log = logging.getLogger(__name__)

ENGINES = {
    "pyfuse3": "hostfs.libfuse.session",
    "devfuse": "hostfs.devfuse.session",
    "uring": "hostfs.uring.session",
}
"""Each module is a :class:`hostfs.fuse.engine.MountEngine` (mypy checks it below)."""

if TYPE_CHECKING:  # imported lazily at run time: pyfuse3 only for its engine
    from hostfs.devfuse import session as _devfuse
    from hostfs.libfuse import session as _libfuse
    from hostfs.uring import session as _uring

    _CHECKED: tuple[MountEngine, ...] = (_libfuse, _devfuse, _uring)

OWN_INIT = frozenset({"devfuse", "uring"})
"""Engines whose INIT reply is hostfs's own, so passthrough and allow-mmap can be offered."""

DEFAULT_ENGINE = "devfuse"
"""The VM's own byte path, and the fastest engine in scripts/bench-local, uring
included: on a 6.18 kernel with fuse.enable_uring=Y (2 vCPUs) uring measured
0.3-0.5x devfuse's create, stat and unlink rates (CHANGELOG, README "Engines")."""

DEFAULT_REASON = "the default: the fastest engine measured here, FUSE over io_uring included"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mount",
        help="mount a shared directory or NFS export on this host (foreground)",
        description="Mount DIR|URL on MOUNTPOINT through FUSE and serve it in the foreground; "
        "Ctrl-C or SIGTERM unmounts cleanly.",
    )
    common.add_filesystem_options(parser)
    parser.add_argument("mountpoint", metavar="MOUNTPOINT", help="an existing empty directory")
    parser.add_argument(
        "--engine",
        choices=sorted(ENGINES),
        default=None,
        help=f"how requests reach hostfs: devfuse (hostfs's own codec on /dev/fuse, the same "
        f"byte path as a VM), uring (the same codec on the kernel's FUSE io_uring queues, "
        f"Linux >= 6.14 with fuse.enable_uring=Y) or pyfuse3 (libfuse); "
        f"default: {DEFAULT_ENGINE}, the fastest measured",
    )
    parser.add_argument(
        "--passthrough",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="devfuse and uring engines: let the kernel read and write host files itself "
        "(FUSE passthrough, Linux >= 6.9; local directories only, not with --writeback); "
        "default: on with devfuse and uring",
    )
    parser.add_argument(
        "--allow-other",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="let users other than root use the mount; the kernel then checks their "
        "permissions (default_permissions, one more GETATTR per directory change); "
        "default: off, only root gets in (as libfuse's examples mount)",
    )
    parser.set_defaults(func=run)


def check_mountpoint(path: str) -> None:
    if os.geteuid() != 0:
        raise common.UsageError("mounting needs root (CAP_SYS_ADMIN)")
    if not os.path.isdir(path):
        raise common.UsageError(f"mount point {path!r} is not a directory")
    if os.path.ismount(path):
        raise common.UsageError(f"mount point {path!r} is busy: something is mounted there")


def session_config(args: argparse.Namespace) -> SessionConfig:
    """The ``config`` for the engine's ``serve_mount``."""
    return SessionConfig(
        passthrough=args.engine in OWN_INIT and args.passthrough is not False,
        allow_other=args.allow_other,
    )


async def _serve(args: argparse.Namespace) -> None:
    engine: MountEngine = importlib.import_module(ENGINES[args.engine])
    fs = await common.open_filesystem(args)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
                log.info(
                    "serving %s on %s (%s engine: %s)",
                    args.shared_dir,
                    args.mountpoint,
                    args.engine,
                    args.engine_reason,
                )
                await engine.serve_mount(fs, args.mountpoint, config=session_config(args))
                nursery.cancel_scope.cancel()  # unmounted from outside
    finally:
        with trio.CancelScope(shield=True):
            await fs.close()


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.info("%s: unmounting", signal.Signals(signum).name)
        scope.cancel()
        return


def check_engine(args: argparse.Namespace) -> None:
    """Settle ``args.engine`` (and ``args.engine_reason``, logged once serving), and refuse
    --engine uring where the kernel will not carry it (hostfs.uring.support)."""
    args.engine_reason = "--engine"
    if args.engine is None:
        args.engine, args.engine_reason = DEFAULT_ENGINE, DEFAULT_REASON
    if args.engine == "uring" and (reason := uring_support.unavailable()):
        raise common.UsageError(f"--engine uring: {reason}")


def run(args: argparse.Namespace) -> int:
    check_engine(args)
    if args.passthrough and args.engine not in OWN_INIT:
        raise common.UsageError(
            "--passthrough needs --engine devfuse or uring (libfuse's pyfuse3 cannot)"
        )
    if args.allow_mmap and args.engine not in OWN_INIT:
        # libfuse makes pyfuse3's INIT reply, and Debian 12's libfuse 3.14 lacks the flag.
        raise common.UsageError(
            "--allow-mmap needs --engine devfuse or uring (pyfuse3's libfuse cannot offer "
            "FUSE_DIRECT_IO_ALLOW_MMAP)"
        )
    check_mountpoint(args.mountpoint)
    clear_umask()
    trio.run(_serve, args)
    return 0
