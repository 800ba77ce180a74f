"""``mount.fuse.hostfs``: what mount(8) runs for ``mount -t fuse.hostfs`` and fstab lines.

util-linux's mount(8) (libmount, "External helpers" in mount(8)) runs
``/sbin/mount.TYPE SOURCE MOUNTPOINT [-sfnv] [-N NS] -o OPTIONS [-t TYPE]`` for a
file system type it has a helper for, and waits for it: the helper must return once
the mount is up and leave its server running, as FUSE file systems' helpers do
(fuse3's ``mount.fuse3`` starts the file system, which daemonizes after mounting).
Here the server is ``hostfs mount`` in its own session; ``umount`` ends it (its
/dev/fuse reads fail and it exits).

``-o`` words:

- mount(8)'s own, which say nothing to hostfs: ``rw``, ``defaults``, ``auto``/``noauto``,
  ``user``/``nouser``/``users``, ``nofail``, ``_netdev``, ``x-*`` (``x-systemd.*``),
  ``comment=``; ``nosuid`` and ``nodev`` (hostfs mounts with them always), ``noatime``
  and the other atime words (no effect: the host keeps atimes);
- ``ro``: ``--readonly`` (every change is EROFS);
- ``allow_other``: ``--allow-other`` (other users, checked by the kernel);
- ``engine=devfuse|uring|pyfuse3``, ``passthrough``/``no_passthrough``, ``log=FILE`` (the
  server's stderr; default: discarded once mounted);
- ``hostfs mount``'s ``-o`` words (``cache=``, ``xattr``, ``writeback``,
  ``allow_direct_io``, ...: see ``hostfs mount --help``) and any long flag of it as
  ``flag_name[=value]`` (``allow_mmap``, ``thread_pool_size=2``, ``log_level=debug``).

mount(8)'s ``-s`` (sloppy) drops unknown words, ``-f`` (fake) checks and starts nothing,
``-v`` prints the ``hostfs mount`` command; ``-n`` changes nothing (there is no mtab).
SOURCE is the shared directory or NFS URL.  Wrong input is one line and exit status 2
(before anything starts); a server that fails to mount, its last line and 32
(mount(8)'s "mount failure").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import IO

from hostfs.cli import build_parser, common, compat, mount

PROG = "mount.fuse.hostfs"
MOUNT_FAILURE = 32
"""mount(8)'s exit status for "mount failure"."""
START_TIMEOUT = 60.0
"""A guard against a server that neither mounts nor exits, not a measurement."""

IGNORED = {
    "rw", "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "nofail",
    "_netdev", "nosuid", "nodev", "noatime", "atime", "relatime",
    "norelatime", "strictatime", "nostrictatime", "nodiratime", "lazytime", "nolazytime",
    "silent", "loud",
}  # fmt: skip
"""Words mount(8) passes that hostfs's mounts already honour or do not depend on."""


def translate(
    source: str, mountpoint: str, words: list[str], *, sloppy: bool = False
) -> tuple[list[str], str | None]:
    """``hostfs mount`` arguments for mount(8)'s, and the ``log=`` file if any; ``sloppy``
    (mount's ``-s``) drops the words hostfs does not know instead of refusing them."""
    argv = ["mount", "--shared-dir", source]
    log = None
    flags = _long_flags()
    for word in words:
        key, equals, value = word.partition("=")
        if word in IGNORED or key.startswith("x-") or key == "comment":
            continue
        if word == "ro":
            argv.append("--readonly")
        elif key == "engine" and equals:
            argv += ["--engine", value]
        elif word in ("passthrough", "no_passthrough"):
            argv.append("--" + word.replace("_", "-"))
        elif key == "log" and equals:
            log = value
        elif _is_compat_word(key, equals):
            argv += ["-o", word.replace(",", ",,")]
        elif "--" + key.replace("_", "-") in flags:
            argv += ["--" + key.replace("_", "-"), *([value] if equals else [])]
        elif not sloppy:
            raise common.UsageError(f"-o {word}: unknown option")
    return [*argv, mountpoint], log


def _long_flags() -> set[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(subparsers.choices["mount"]._option_string_actions)


def _is_compat_word(key: str, equals: str) -> bool:
    if equals:
        return key in ("source", "cache", "xattrmap")
    return key.removeprefix("no_") in compat.SWITCHES


def check(argv: list[str]) -> None:
    """Everything ``hostfs mount`` would refuse, refused here, before it is started."""
    args = build_parser().parse_args(argv)  # a bad flag: one line, exit 2
    common.filesystem_options(args)
    if args.passthrough and args.engine not in mount.OWN_INIT:
        raise common.UsageError("passthrough needs engine=devfuse or engine=uring")
    if args.allow_mmap and args.engine not in mount.OWN_INIT:
        raise common.UsageError("allow_mmap needs engine=devfuse or engine=uring")
    mount.check_engine(args)
    mount.check_mountpoint(args.mountpoint)


def start(argv: list[str], log: str | None) -> int:
    """Start the server in its own session; 0 once ``argv[-1]`` is mounted."""
    mountpoint = argv[-1]
    with _log_file(log) as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "hostfs", *argv],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,  # mount(8)'s terminal and process group are not its own
            cwd="/",
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.ismount(mountpoint):
            if server.poll() is not None or time.monotonic() > deadline:
                if server.returncode is None:
                    server.kill()
                    server.wait()
                output.seek(0)
                lines = output.read().decode(errors="replace").strip().splitlines()
                print(f"{PROG}: {lines[-1] if lines else 'the server exited'}", file=sys.stderr)
                return MOUNT_FAILURE
            time.sleep(0.02)
    return 0


def _log_file(path: str | None) -> IO[bytes]:
    if path is None:
        return tempfile.TemporaryFile()  # unlinked: the server's later lines go nowhere
    return open(path, "ab+")  # the caller's with statement closes it


def parse_helper_argv(argv: list[str]) -> argparse.Namespace:
    """mount(8)'s ``SOURCE MOUNTPOINT [-sfnv] [-N NS] [-o OPTS] [-t TYPE]``."""
    parser = common.ArgumentParser(prog=PROG, add_help=False)
    parser.add_argument("source")
    parser.add_argument("mountpoint")
    parser.add_argument("-o", dest="options", action="append", default=[])
    parser.add_argument("-t", dest="type")
    parser.add_argument("-N", dest="namespace")
    parser.add_argument("-s", dest="sloppy", action="store_true")  # drop unknown words
    parser.add_argument("-f", dest="fake", action="store_true")  # check, mount nothing
    parser.add_argument("-n", dest="no_mtab", action="store_true")  # no mtab here anyway
    parser.add_argument("-v", dest="verbose", action="store_true")  # print the command
    args = parser.parse_args(argv)
    if args.namespace:
        raise common.UsageError("-N (another mount namespace) is not supported")
    args.words = [word for chunk in args.options for word in compat.split_options(chunk)]
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_helper_argv(sys.argv[1:] if argv is None else argv)
        source = args.source
        if "://" not in source:  # a directory; the server runs in / (it pins no other)
            source = os.path.abspath(source)
        hostfs_argv, log = translate(
            source, os.path.abspath(args.mountpoint), args.words, sloppy=args.sloppy
        )
        check(hostfs_argv)
    except common.UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    if args.verbose:
        print(f"{PROG}: hostfs {' '.join(hostfs_argv)}")
    return 0 if args.fake else start(hostfs_argv, log)


if __name__ == "__main__":
    sys.exit(main())
