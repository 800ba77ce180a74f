"""The ``hostfs`` command line: one module per subcommand, each with ``register()``."""

from __future__ import annotations

import argparse
import sys

from hostfs.cli import common, guest, install, mount, serve


def build_parser() -> argparse.ArgumentParser:
    parser = common.ArgumentParser(
        prog="hostfs",
        description="A virtio-fs device backend: share a host directory or an NFS export "
        "with a VM (vhost-user-fs), or mount it locally through FUSE.",
    )
    common.add_version(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (mount, serve, guest, install):
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    common.configure_logging(getattr(args, "log_level", "info"))
    try:
        return args.func(args)
    except common.UsageError as error:
        print(f"hostfs {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
