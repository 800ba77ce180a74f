"""``hostfs mount``: the core mounted on this host, for use and for debugging."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
from collections.abc import AsyncIterator

import trio

from hostfs.cli import common
from hostfs.fuse.init import SessionConfig

log = logging.getLogger(__name__)

ENGINES = {
    "pyfuse3": "hostfs.libfuse.session",
    "devfuse": "hostfs.devfuse.session",
}
"""Each module has ``serve_mount(fs, mountpoint, *, task_status)``."""

DEFAULT_ENGINE = "devfuse"
"""The VM's own byte path, and the faster engine in scripts/bench-local."""


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
        default=DEFAULT_ENGINE,
        help=f"how requests reach hostfs: devfuse (hostfs's own codec on /dev/fuse, the same "
        f"byte path as a VM) or pyfuse3 (libfuse); default: {DEFAULT_ENGINE}",
    )
    parser.add_argument(
        "--passthrough",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="devfuse engine: let the kernel read and write host files itself (FUSE "
        "passthrough, Linux >= 6.9; local directories only, not with --writeback); "
        "default: on with devfuse",
    )
    parser.set_defaults(func=run)


def check_mountpoint(path: str) -> None:
    if os.geteuid() != 0:
        raise common.UsageError("mounting needs root (CAP_SYS_ADMIN)")
    if not os.path.isdir(path):
        raise common.UsageError(f"mount point {path!r} is not a directory")
    if os.path.ismount(path):
        raise common.UsageError(f"mount point {path!r} is busy: something is mounted there")


def engine_options(args: argparse.Namespace) -> dict[str, SessionConfig]:
    """Keyword arguments for the engine's ``serve_mount``."""
    if args.engine != "devfuse":
        return {}
    return {"config": SessionConfig(passthrough=args.passthrough is not False)}


async def _serve(args: argparse.Namespace) -> None:
    engine = importlib.import_module(ENGINES[args.engine])
    fs = await common.open_filesystem(args)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
                log.info(
                    "serving %s on %s (%s engine)", args.shared_dir, args.mountpoint, args.engine
                )
                await engine.serve_mount(fs, args.mountpoint, **engine_options(args))
                nursery.cancel_scope.cancel()  # unmounted from outside
    finally:
        with trio.CancelScope(shield=True):
            await fs.close()


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.info("%s: unmounting", signal.Signals(signum).name)
        scope.cancel()
        return


def run(args: argparse.Namespace) -> int:
    if args.passthrough and args.engine != "devfuse":
        raise common.UsageError("--passthrough needs --engine devfuse (libfuse's pyfuse3 cannot)")
    if args.allow_mmap and args.engine != "devfuse":
        # libfuse makes pyfuse3's INIT reply, and Debian 12's libfuse 3.14 lacks the flag.
        raise common.UsageError(
            "--allow-mmap needs --engine devfuse (pyfuse3's libfuse cannot offer "
            "FUSE_DIRECT_IO_ALLOW_MMAP)"
        )
    check_mountpoint(args.mountpoint)
    trio.run(_serve, args)
    return 0
