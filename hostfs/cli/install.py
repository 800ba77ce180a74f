"""``hostfs install-vhost-user`` and ``install-mount-helper``: make hostfs findable.

``install-vhost-user`` tells QEMU and libvirt where hostfs's vhost-user-fs binary is;
``install-mount-helper`` gives mount(8) a ``mount.fuse.hostfs`` (``hostfs.cli.mount_helper``).

QEMU's ``docs/interop/vhost-user.rst`` ("Backend program conventions") and
libvirt (``qemu_vhost_user.c``, ``qemuVhostUserFetchConfigs``) read backend
descriptions from ``/usr/share/qemu/vhost-user/*.json``; a libvirt
``<filesystem>`` with ``<driver type='virtiofs'/>`` and no ``<binary>`` runs the
first one of type ``fs``.  The description must name the binary that exists:
the ``hostfs-vhost-user-fs`` script beside this Python (the venv's), so the
description is written at install time, from ``hostfs/data/50-hostfs.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from importlib import resources
from pathlib import Path

from hostfs.cli.common import UsageError
from hostfs.cli.serve import CAPABILITIES

DESCRIPTION = "50-hostfs.json"
"""``50-``: after distribution files, as QEMU's own ``50-qemu-virtiofsd.json``."""

DEFAULT_PREFIX = "/usr"
"""libvirt reads ``QEMU_DATADIR/vhost-user`` (``/usr/share/qemu`` on Debian) and
``/etc/qemu/vhost-user``; ``/usr/local/share`` is read by neither."""

BINARY = "hostfs-vhost-user-fs"

MOUNT_HELPER = "mount.fuse.hostfs"
HELPER_PREFIX = "/"
"""mount(8) looks for ``mount.TYPE`` in ``/sbin``, ``/sbin/fs.d`` and ``/sbin/fs`` only
(libmount's ``FS_SEARCH_PATH``); on Debian ``/sbin`` is ``/usr/sbin``."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "install-vhost-user",
        help=f"install {DESCRIPTION} for QEMU and libvirt (or remove it)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help=f"write PREFIX/share/qemu/vhost-user/{DESCRIPTION} (default: {DEFAULT_PREFIX})",
    )
    parser.add_argument(
        "--uninstall", action="store_true", help="remove the description written before"
    )
    parser.set_defaults(func=run)
    helper = subparsers.add_parser(
        "install-mount-helper",
        help=f"install /sbin/{MOUNT_HELPER} for mount -t fuse.hostfs and fstab (or remove it)",
        description=f"Write PREFIX/sbin/{MOUNT_HELPER}, which runs this hostfs's mount helper.",
    )
    helper.add_argument(
        "--prefix",
        default=HELPER_PREFIX,
        help=f"write PREFIX/sbin/{MOUNT_HELPER} (default: {HELPER_PREFIX}; mount(8) reads "
        "only /sbin)",
    )
    helper.add_argument("--uninstall", action="store_true", help="remove the helper written before")
    helper.set_defaults(func=run_mount_helper)


def description_path(prefix: str) -> Path:
    return Path(prefix) / "share" / "qemu" / "vhost-user" / DESCRIPTION


def binary_path() -> Path:
    """The entry point pip made beside this interpreter (not resolved: a venv's python
    is a symlink, and its scripts run only through the venv's own path)."""
    return Path(sys.executable).parent / BINARY


def description() -> dict[str, object]:
    """The template plus the binary and the features ``--print-capabilities`` prints."""
    template = resources.files("hostfs").joinpath("data", DESCRIPTION).read_text()
    binary = binary_path()
    if not os.access(binary, os.X_OK):
        raise UsageError(f"{binary} is not an executable: install hostfs (pip) into that venv")
    return {**json.loads(template), "binary": str(binary), **CAPABILITIES}


def run(args: argparse.Namespace) -> int:
    path = description_path(args.prefix)
    if args.uninstall:
        return remove(path)
    write(path, json.dumps(description(), indent=2) + "\n", 0o644)
    print(f"wrote {path} (binary {binary_path()})")
    return 0


def mount_helper() -> str:
    """A shell script running this interpreter (the venv's, unresolved) on the helper."""
    return (
        "#!/bin/sh\n"
        "# Written by `hostfs install-mount-helper`: mount(8) runs it for fuse.hostfs.\n"
        f'exec {sys.executable} -m hostfs.cli.mount_helper "$@"\n'
    )


def run_mount_helper(args: argparse.Namespace) -> int:
    path = Path(args.prefix) / "sbin" / MOUNT_HELPER
    if args.uninstall:
        return remove(path)
    write(path, mount_helper(), 0o755)
    print(f"wrote {path} (python {sys.executable})")
    return 0


def write(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` whole: QEMU, libvirt or mount(8) never read half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        temporary.chmod(mode)
        temporary.replace(path)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None


def remove(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        print(f"removed {path}")
    return 0
