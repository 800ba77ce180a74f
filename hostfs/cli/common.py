"""Flags every subcommand shares, spelled as virtiofsd spells them.

libvirt and scripts written for virtiofsd pass ``--shared-dir``/``-o source=``,
``--cache``, ``--xattr``, ``--log-level`` ...; hostfs accepts the same words
with the same meaning.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import re
import sys
from typing import Any, NoReturn

from hostfs.backends import BackendUnavailable, open_backend
from hostfs.backends.local.file_handles import DEFAULT_MODE as DEFAULT_INODE_FILE_HANDLES
from hostfs.backends.local.file_handles import MODES as INODE_FILE_HANDLE_MODES
from hostfs.cli import compat
from hostfs.core.filesystem import FileSystem
from hostfs.core.idmap import IdMap, IdMapError, IdMapping
from hostfs.core.options import CACHE_POLICIES, FsOptions
from hostfs.core.xattrmap import PASS_THROUGH, XattrMap, XattrMapError

LOG_LEVELS = {
    # virtiofsd's names (Rust: error/warn/info/debug/trace/off; C: err/warn/info/debug)
    "error": logging.ERROR,
    "err": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
    "off": logging.CRITICAL + 1,
}


class UsageError(Exception):
    """Wrong input from the command line: printed as one line, exit status 2."""


_LITERAL = re.compile(r"``([^`]+)``")
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain_text(text: str) -> str:
    """A docstring as ``--help`` shows it: reST literals and roles (``x``,
    :mod:`x`) become the bare text."""
    return _ROLE.sub(r"\1", _LITERAL.sub(r"\1", text))


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr, not the usage block, and a
    description taken from a docstring shows no reST markup."""

    def __init__(self, *, description: str | None = None, **kwargs: Any) -> None:
        description = plain_text(description) if description else description
        super().__init__(description=description, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def add_version(parser: argparse.ArgumentParser) -> None:
    """``-V``/``--version``, as virtiofsd's (``virtiofsd 1.13.2``): the program and its version."""
    version = importlib.metadata.version("hostfs")
    parser.add_argument("-V", "--version", action="version", version=f"{parser.prog} {version}")


def add_filesystem_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shared-dir",
        metavar="DIR|URL",
        help="the directory to share, or an NFS export as a libnfs URL "
        "(nfs://server/export[?version=3&...])",
    )
    parser.add_argument(
        "-o",
        dest="compat_options",
        action="append",
        default=[],
        metavar="OPT[,OPT...]",
        help="virtiofsd-style options, as libvirt passes them: source=DIR (',,' is a comma), "
        "cache=none|never|metadata|auto|always, sandbox=MODE, [no_]xattr, xattrmap=RULES, "
        "[no_]writeback, [no_]posix_lock, [no_]flock, [no_]readdirplus, [no_]allow_direct_io, "
        "[no_]killpriv_v2, modcaps=CAPS",
    )
    parser.set_defaults(posix_lock=None, flock=None)
    parser.add_argument(
        "--locks",
        choices=LOCK_SCOPES,
        help="where guest POSIX and flock locks live: host (the host kernel's OFD and flock "
        "locks on the shared files, seen by other hostfs daemons and host processes; the "
        "default for a local directory) or local (this daemon's own table, seen by this "
        "daemon's clients only; the only choice for NFS)",
    )
    parser.add_argument(
        "--cache",
        choices=sorted(CACHE_POLICIES),
        help="how long the kernel may cache names, attributes and data: never (0 s, direct "
        "I/O), metadata (1 day for names and attributes, direct I/O for data), auto (1 s; the "
        "default, as in virtiofsd), always (1 day)",
    )
    parser.add_argument(
        "--allow-direct-io",
        action="store_true",
        default=None,
        help="pass the guest's O_DIRECT to the host's open(2); without it O_DIRECT is dropped, "
        "as in virtiofsd",
    )
    parser.add_argument(
        "--preserve-noatime",
        action="store_true",
        help="pass the guest's O_NOATIME to the host's open(2); without it O_NOATIME is "
        "dropped, as in virtiofsd",
    )
    parser.add_argument(
        "--allow-mmap",
        action="store_true",
        help="with --cache never or metadata, let the guest map files shared "
        "(FUSE_DIRECT_IO_ALLOW_MMAP), as virtiofsd's --allow-mmap",
    )
    parser.add_argument(
        "--killpriv-v2",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="offer FUSE_HANDLE_KILLPRIV_V2: hostfs drops setuid/setgid bits itself on write, "
        "truncate and chown (default: on; virtiofsd's default is off)",
    )
    parser.add_argument(
        "--xattr", action="store_true", default=None, help="enable extended attributes"
    )
    parser.add_argument(
        "--xattrmap",
        metavar="RULES",
        help="rename extended attributes between guest and host with virtiofsd's rules, "
        "e.g. ':map:security.:user.virtiofs.:' (implies --xattr)",
    )
    for kind in ("uid", "gid"):
        parser.add_argument(
            f"--translate-{kind}",
            action="append",
            default=[],
            metavar="TYPE:A:B:COUNT",
            help=f"translate {kind}s between guest and host, as virtiofsd: guest:G:H:N, "
            "host:H:G:N, squash-guest:G:H:N, squash-host:H:G:N, map:G:H:N, forbid-guest:G:N "
            "(repeatable)",
        )
    parser.add_argument(
        "--writeback",
        action="store_true",
        default=None,
        help="let the kernel cache writes (FUSE_WRITEBACK_CACHE); off by default, as in virtiofsd",
    )
    parser.add_argument(
        "--readonly",
        action="store_true",
        help="refuse every change to the share with EROFS (as virtiofsd's --readonly)",
    )
    parser.add_argument(
        "--no-readdirplus",
        dest="readdirplus",
        action="store_false",
        default=None,
        help="answer READDIR only, never READDIRPLUS",
    )
    parser.add_argument(
        "--thread-pool-size",
        type=int,
        default=0,
        metavar="N",
        help="a local share's worker threads for data I/O and syncs (read, write, fsync, "
        "fallocate, copy_file_range); default 0: every syscall inline, as virtiofsd, which "
        "measures fastest for one stream. Not how many requests run at once",
    )
    parser.add_argument(
        "--rlimit-nofile",
        type=int,
        metavar="N",
        help="set the open-file limit (soft and hard) to N at start, as virtiofsd; 0 leaves "
        "it alone (default: lift the soft limit to the hard one). The share may hold all "
        "but 64 of them; beyond, the guest gets ENFILE",
    )
    parser.add_argument(
        "--inode-file-handles",
        choices=INODE_FILE_HANDLE_MODES,
        nargs="?",
        const="prefer",  # virtiofsd: the flag alone means prefer
        help="refer to the inodes the guest holds by file handle, not by an open fd each, "
        "as virtiofsd: never; prefer (handles where the file system has them); mandatory "
        f"(refuse to start without) (default: {DEFAULT_INODE_FILE_HANDLES})",
    )
    parser.add_argument(
        "--log-level",
        choices=sorted(LOG_LEVELS),
        default="info",
        help="log verbosity (default: info)",
    )
    parser.add_argument(
        "-d",
        dest="log_level",
        action="store_const",
        const="debug",
        help="--log-level debug (virtiofsd's deprecated -d; libvirt's virtiofsd_debug = 1)",
    )
    parser.add_argument(
        "-f",
        action="store_true",
        dest="foreground",
        help="no effect: hostfs always runs in the foreground (virtiofsd's deprecated -f)",
    )


LOCK_SCOPES = ("host", "local")


def _host_locks(args: argparse.Namespace) -> bool:
    """``--locks``: host unless asked otherwise; the NFS backend has no host locks to
    give (no NLM client in it), so asking for them there is refused, not ignored."""
    if args.locks == "host" and args.shared_dir.startswith("nfs://"):
        raise UsageError(
            "--locks host: the NFS backend keeps locks in this daemon only (use --locks local)"
        )
    return args.locks != "local"


def filesystem_options(args: argparse.Namespace) -> FsOptions:
    try:
        compat.apply_compat_options(args)
    except compat.CompatOptionError as error:
        raise UsageError(str(error)) from None
    if not args.shared_dir:
        raise UsageError("--shared-dir (or -o source=DIR) is required")
    xattrmap = _xattrmap(args.xattrmap)
    return FsOptions(
        cache=CACHE_POLICIES[args.cache or "auto"],
        # A map implies extended attributes, as in virtiofsd (main.rs: xattrmap.is_some() || ...).
        xattr=bool(args.xattr) or xattrmap is not PASS_THROUGH,
        writeback=bool(args.writeback),
        locks=args.posix_lock is not False,
        flock=args.flock is not False,
        host_locks=_host_locks(args),
        readdirplus=args.readdirplus is not False,
        allow_direct_io=bool(args.allow_direct_io),
        allow_mmap=args.allow_mmap,
        killpriv_v2=args.killpriv_v2 is not False,
        preserve_noatime=args.preserve_noatime,
        readonly=args.readonly,
        xattrmap=xattrmap,
        ids=_ids(args.translate_uid, args.translate_gid),
    )


def _ids(uids: list[str], gids: list[str]) -> IdMapping:
    return IdMapping(_idmap("uid", uids), _idmap("gid", gids))


def _idmap(kind: str, specs: list[str]) -> IdMap:
    try:
        return IdMap.parse(specs)
    except IdMapError as error:
        raise UsageError(f"--translate-{kind}: {error}") from None


def _xattrmap(text: str | None) -> XattrMap:
    if text is None:
        return PASS_THROUGH
    try:
        return XattrMap.parse(text)
    except XattrMapError as error:
        raise UsageError(f"--xattrmap: {error}") from None


def configure_logging(level_name: str) -> None:
    logging.basicConfig(
        level=LOG_LEVELS[level_name],
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )


async def open_filesystem(args: argparse.Namespace) -> FileSystem:
    """The core over the backend ``args`` name; one-line UsageError when it cannot be had."""
    options = filesystem_options(args)
    if args.thread_pool_size < 0:
        raise UsageError("--thread-pool-size must be 0 or more")
    if args.rlimit_nofile is not None and args.rlimit_nofile < 0:
        raise UsageError("--rlimit-nofile must be 0 or more")
    try:
        backend = await open_backend(
            args.shared_dir,
            thread_pool_size=args.thread_pool_size,
            rlimit_nofile=args.rlimit_nofile,
            inode_file_handles=args.inode_file_handles,
        )
    except BackendUnavailable as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot share {args.shared_dir!r}: {error.strerror}") from None
    fs = FileSystem(backend, options)
    await fs.start()
    return fs
