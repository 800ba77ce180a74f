"""``hostfs serve``: the vhost-user-fs device for QEMU guests (what virtiofsd does)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys

import trio

from hostfs.cli import common
from hostfs.core.filesystem import FileSystem
from hostfs.fuse.dispatcher import Dispatcher
from hostfs.fuse.init import SessionConfig
from hostfs.vhost.device import TAG_SIZE, VhostUserFsDevice
from hostfs.vhost.server import (
    SocketSetupError,
    VhostUserServer,
    listen_on_path,
    shutdown_on_signals,
    socket_from_fd,
)

log = logging.getLogger(__name__)

CAPABILITIES = {"type": "fs"}
"""``--print-capabilities``: QEMU's vhost-user.rst "Backend program conventions"; virtiofsd
1.x prints the same for libvirt."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a shared directory or NFS export to a QEMU guest (vhost-user-fs)",
        description="Run the virtio-fs device backend: QEMU connects to the vhost-user socket "
        "(-chardev socket,path=SOCKET -device vhost-user-fs-pci,chardev=...,tag=TAG) and the "
        "guest mounts it with 'mount -t virtiofs TAG /mnt'.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_filesystem_options(parser)
    parser.add_argument("--socket-path", metavar="PATH", help="the vhost-user socket to create")
    parser.add_argument(
        "--fd",
        type=int,
        metavar="FD",
        help="an inherited unix socket to use instead, listening or already connected "
        "(as virtiofsd's --fd)",
    )
    parser.add_argument(
        "--socket-group", metavar="GROUP", help="group that owns the socket and may connect"
    )
    parser.add_argument(
        "--tag",
        help=f"the file system's tag in the device config space (at most {TAG_SIZE} bytes); "
        "offers VHOST_USER_PROTOCOL_F_CONFIG. QEMU 7.2 takes the tag from its own -device "
        "option instead",
    )
    parser.add_argument(
        "--reconnect",
        action="store_true",
        help="after the front-end disconnects, wait for the next one instead of exiting "
        "(the backend half of QEMU's -chardev socket,reconnect=N)",
    )
    parser.add_argument(
        "--print-capabilities",
        action="store_true",
        help="print the vhost-user backend capabilities as JSON (for libvirt) and exit",
    )


def main(argv: list[str] | None = None) -> int:
    """``hostfs-vhost-user-fs``: ``hostfs serve`` as a program of its own.

    vhost-user.rst, "Backend program conventions": the ``binary`` named in
    ``hostfs/data/50-hostfs.json`` is started with ``--socket-path``/``--fd``
    and ``--print-capabilities`` and no subcommand.
    """
    parser = common.ArgumentParser(prog="hostfs-vhost-user-fs", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    common.configure_logging(args.log_level)
    try:
        return run(args)
    except common.UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    if args.print_capabilities:
        print(json.dumps(CAPABILITIES, indent=2))
        return 0
    if (args.socket_path is None) == (args.fd is None):
        raise common.UsageError("give exactly one of --socket-path and --fd")
    if args.tag is not None and not 0 < len(args.tag.encode()) <= TAG_SIZE:
        raise common.UsageError(f"--tag must be 1 to {TAG_SIZE} bytes")
    trio.run(_serve, args)
    return 0


async def _serve(args: argparse.Namespace) -> None:
    fs = await common.open_filesystem(args)
    try:
        server = VhostUserServer(make_device(fs, tag=args.tag), reconnect=args.reconnect)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shutdown_on_signals, server)
            await _serve_socket(args, server)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await fs.close()


async def _serve_socket(args: argparse.Namespace, server: VhostUserServer) -> None:
    if args.fd is not None:
        try:
            sock, listening = socket_from_fd(args.fd)
        except SocketSetupError as error:
            raise common.UsageError(str(error)) from None
        with sock:
            if listening:
                await server.serve_listener(sock)
            else:
                await server.serve_connection(sock)
        return
    try:
        listener = await listen_on_path(args.socket_path, args.socket_group)
    except SocketSetupError as error:
        raise common.UsageError(str(error)) from None
    log.info("waiting for a vhost-user front-end on %s", args.socket_path)
    try:
        with listener:
            await server.serve_listener(listener)
    finally:
        _remove_socket(args.socket_path)


def _remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def make_device(
    fs: FileSystem, *, tag: str | None = None, num_request_queues: int = 1
) -> VhostUserFsDevice:
    """The device ``hostfs serve`` runs (tests drive it in-process).

    One request queue, as virtiofsd; each queue serves as many requests at once as
    the FUSE session allows (``SessionConfig.concurrency``), so a waiting SETLKW or
    a slow NFS call does not hold up the requests behind it.
    """
    config = SessionConfig()
    return VhostUserFsDevice(
        fs,
        functools.partial(Dispatcher, fs, config),
        tag=tag,
        num_request_queues=num_request_queues,
        concurrency=config.concurrency,
    )
