"""``hostfs serve``: the vhost-user-fs device for QEMU guests (what virtiofsd does)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import logging
import os
import sys

import trio

from hostfs.backends.local.fd_budget import set_nofile_limit
from hostfs.cli import common, refused
from hostfs.cli.socket_args import check_socket_arguments
from hostfs.cli.umask import clear_umask
from hostfs.core.filesystem import FileSystem
from hostfs.fuse.dispatcher import Dispatcher
from hostfs.fuse.init import SessionConfig
from hostfs.fuse.stats import OpStats, log_on_signal
from hostfs.migration.snapshot import OnError
from hostfs.migration.transfer import Migration
from hostfs.sandbox import SANDBOX_MODES, capabilities, seccomp
from hostfs.sandbox.enter import enter_sandbox
from hostfs.sandbox.namespaces import SandboxError
from hostfs.sandbox.usermaps import IdRange, UserMapError, UserMaps
from hostfs.vhost.device import (
    DEFAULT_REQUEST_QUEUES,
    MAX_REQUEST_QUEUES,
    TAG_SIZE,
    VhostUserFsDevice,
)
from hostfs.vhost.polling import POLL_LIMIT_NS, POLL_MAX_NS
from hostfs.vhost.server import (
    SocketSetupError,
    VhostUserServer,
    bind_listener,
    shutdown_on_signals,
    socket_from_fd,
)

log = logging.getLogger(__name__)

CAPABILITIES = {"type": "fs", "features": ["migrate-precopy", "separate-options"]}
"""``--print-capabilities`` (QEMU's vhost-user.rst, "Backend program conventions"; the
vocabulary of its vhost-user.json), as virtiofsd 1.13 prints them: ``migrate-precopy``
(VHOST_USER_PROTOCOL_F_DEVICE_STATE and the dirty log, hostfs.migration) and
``separate-options`` (libvirt >= 10 then passes ``--shared-dir``-style flags, not ``-o``)."""

MIGRATION_MODE = "find-paths"
"""``--migration-mode``: how the destination finds the guest's nodes.  virtiofsd's
default, ``find-paths`` (each node by its path below the share), is the one hostfs has."""


class _MigrationMode(argparse.Action):
    """``--migration-mode find-paths``; ``file-handles`` is refused in one line."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if values != MIGRATION_MODE:
            parser.error(
                f"{option_string} {values}: only {MIGRATION_MODE} is implemented "
                "(no open_by_handle_at on the destination)"
            )
        setattr(namespace, self.dest, values)


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
    common.add_version(parser)
    common.add_filesystem_options(parser)
    parser.add_argument(
        "--socket-path",
        "--socket",
        metavar="PATH",
        help="the vhost-user socket to create (--socket: virtiofsd's deprecated spelling)",
    )
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
        "--num-request-queues",
        type=_request_queues,
        default=DEFAULT_REQUEST_QUEUES,
        metavar="N",
        help="request queues served at once, at most (GET_QUEUE_NUM; also num_request_queues "
        "in the config space): at least QEMU's -device vhost-user-fs-pci,num-request-queues=N "
        f"(default {DEFAULT_REQUEST_QUEUES}, as QEMU's)",
    )
    parser.add_argument(
        "--poll-max-ns",
        type=_poll_max_ns,
        default=POLL_MAX_NS,
        metavar="NS",
        help="how long a request queue may look for the next request before it sleeps on "
        "its kick fd, adapted as QEMU's IOThread poll-max-ns (hostfs.vhost.polling); "
        f"0 never polls (default {POLL_MAX_NS}, twice QEMU's 32768: a wake costs hostfs more)",
    )
    parser.add_argument(
        "--reconnect",
        action="store_true",
        help="after the front-end disconnects, wait for the next one instead of exiting "
        "(the backend half of QEMU's -chardev socket,reconnect=N)",
    )
    parser.add_argument(
        "--sandbox",
        choices=SANDBOX_MODES,
        help="confine the daemon to the shared directory: namespace (new mount, pid and network "
        "namespaces, pivot_root; the default, as in virtiofsd), chroot (for containers that "
        "forbid namespaces), none; also -o sandbox=MODE",
    )
    for kind in ("uid", "gid"):
        parser.add_argument(
            f"--{kind}-map",
            metavar=f":NAMESPACE_{kind.upper()}:HOST_{kind.upper()}:COUNT:",
            help=f"started by an ordinary user (--sandbox namespace): map these {kind}s into the "
            f"daemon's own user namespace, e.g. :0:$(id -{kind[0]}):1: makes the guest's root "
            f"the user; ranges need newuidmap/newgidmap and /etc/sub{kind}, as in virtiofsd "
            f"(default: the user's own {kind}, to itself)",
        )
    parser.add_argument(
        "--seccomp",
        choices=seccomp.SECCOMP_MODES,
        default="kill",
        help="what a system call outside the allow-list does: kill the daemon (the default, as "
        "in virtiofsd), log it and go on, trap (SIGSYS), or none (no filter)",
    )
    parser.add_argument(
        "--modcaps",
        metavar="+CAP:-CAP",
        help="edit the capabilities kept (chown, dac_override, dac_read_search, fowner, fsetid, "
        "setgid, setuid, mknod, setfcap), as virtiofsd: e.g. --modcaps=-mknod:+sys_admin",
    )
    parser.add_argument(
        "--migration-on-error",
        choices=[policy.value for policy in OnError],
        default=OnError.ABORT.value,
        help="what a node, open file or lock that cannot be migrated does: abort the "
        "migration (the default, as in virtiofsd; the guest runs on at the source) or "
        "guest-error (it is dropped: the guest gets ESTALE/EBADF for it on the destination)",
    )
    parser.add_argument(
        "--migration-mode",
        action=_MigrationMode,
        default=MIGRATION_MODE,
        metavar="find-paths",
        help="how the destination finds the guest's files again: find-paths (by their path "
        "below the share; the default, as in virtiofsd)",
    )
    parser.add_argument(
        "--migration-confirm-paths",
        action="store_true",
        help="accepted for virtiofsd's sake: hostfs always checks, when it saves a node's "
        "path, that the path still leads to that very inode",
    )
    parser.add_argument(
        "--print-capabilities",
        action="store_true",
        help="print the vhost-user backend capabilities as JSON (for libvirt) and exit",
    )
    refused.add_refused_options(parser)


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
    """Everything that needs the host runs first, single-threaded: the checks, the socket, the
    sandbox (a fork), the capabilities and the seccomp filter; then trio serves."""
    if args.print_capabilities:
        print(json.dumps(CAPABILITIES, indent=2))
        return 0
    if args.tag is not None and not 0 < len(args.tag.encode()) <= TAG_SIZE:
        raise common.UsageError(f"--tag must be 1 to {TAG_SIZE} bytes")
    common.filesystem_options(args)
    try:
        keep = capabilities.serving_capabilities(args.modcaps)
    except capabilities.CapabilityError as error:
        raise common.UsageError(str(error)) from None
    mode = args.sandbox or "namespace"
    user_maps = _user_maps(args, mode)
    # After the pure argument checks: these look at the host (directories, groups, fds).
    check_socket_arguments(args.socket_path, args.fd, args.socket_group)
    nfs = args.shared_dir.startswith("nfs://")
    root = None if nfs else _shared_directory(args.shared_dir)
    _load_backend(nfs)
    listener = _open_socket(args)
    try:
        # Before the capabilities go: raising the hard limit needs CAP_SYS_RESOURCE.
        set_nofile_limit(args.rlimit_nofile)
    except OSError as error:
        raise common.UsageError(f"--rlimit-nofile: {error.strerror}") from None
    supervisor = os.getpid()
    try:
        status = enter_sandbox(
            mode,
            root,
            network=nfs,
            cleanup=functools.partial(_cleanup, args),
            user_maps=user_maps,
        )
    except SandboxError as error:
        if os.getpid() == supervisor:  # not the confined child: its paths are the share's
            _cleanup(args)  # the socket made above: nothing is left behind
        raise common.UsageError(str(error)) from None
    if status is not None:
        return status
    if root is not None and mode != "none":
        args.shared_dir = "/"
    clear_umask()
    try:
        if os.geteuid() == 0 or user_maps is not None:
            # Root's capabilities, or those over the user namespace just made.  An ordinary
            # user's daemon outside one (--sandbox none) has none to drop (as virtiofsd).
            capabilities.keep_only(keep)
        seccomp.install_filter(args.seccomp)
    except (capabilities.CapabilityError, seccomp.SeccompError) as error:
        raise common.UsageError(str(error)) from None
    if args.seccomp == "log":
        log.warning("--seccomp log: system calls outside the allow-list are only logged")
    trio.run(_serve, args, listener, mode == "none")
    return 0


def _user_maps(args: argparse.Namespace, mode: str) -> UserMaps | None:
    """The user namespace an ordinary user's daemon makes, by virtiofsd's rules: only in
    ``namespace`` mode (chroot(2) needs root; ``none`` runs as the user, unconfined), and
    ``--uid-map``/``--gid-map`` only then (root maps ids with ``--translate-uid/gid``)."""
    ranges: dict[str, IdRange] = {}
    for kind in ("uid", "gid"):
        text = getattr(args, f"{kind}_map")
        if text:
            try:
                ranges[kind] = IdRange.parse(text)
            except UserMapError as error:
                raise common.UsageError(f"--{kind}-map: {error}") from None
    given = [f"--{kind}-map" for kind in ranges]
    if os.geteuid() == 0:
        if given:
            raise common.UsageError(
                f"{given[0]} is for a daemon started by an ordinary user (root: --translate-"
                f"{given[0][2:5]})"
            )
        return None
    if mode == "chroot":
        raise common.UsageError(
            "--sandbox chroot needs root (as in virtiofsd): use --sandbox namespace or none"
        )
    if mode == "none":
        if given:
            raise common.UsageError(f"{given[0]} needs --sandbox namespace (a user namespace)")
        return None
    return UserMaps.for_caller(ranges.get("uid"), ranges.get("gid"))


def _shared_directory(path: str) -> str:
    """The absolute path the sandbox pivots into; checked here, while errors are usage errors."""
    if not os.path.isdir(path):
        raise common.UsageError(f"cannot share {path!r}: not a directory")
    return os.path.realpath(path)


def _load_backend(nfs: bool) -> None:
    """Import the backend now: after the sandbox, no module file (nor libnfs) can be read."""
    if nfs:
        importlib.import_module("hostfs.backends.nfs")
    else:
        importlib.import_module("hostfs.backends.local")


def _request_queues(text: str) -> int:
    count = int(text)
    if not 1 <= count <= MAX_REQUEST_QUEUES:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_REQUEST_QUEUES}")
    return count


def _poll_max_ns(text: str) -> int:
    ns = int(text)
    if not 0 <= ns <= POLL_LIMIT_NS:
        raise argparse.ArgumentTypeError(f"must be 0..{POLL_LIMIT_NS}")
    return ns


def _open_socket(args: argparse.Namespace) -> tuple[trio.socket.SocketType, bool]:
    """The listening (or connected) socket, made before the sandbox hides its path.

    Without trio.run: its bind may leave a worker thread, and the sandbox must start from a
    single thread (fork(2) copies one; unshare(2) with CLONE_NEWUSER refuses more).
    """
    try:
        if args.fd is not None:
            return socket_from_fd(args.fd)
        listener = trio.socket.from_stdlib_socket(
            bind_listener(args.socket_path, args.socket_group)
        )
    except SocketSetupError as error:
        raise common.UsageError(str(error)) from None
    log.info("waiting for a vhost-user front-end on %s", args.socket_path)
    return listener, True


def _cleanup(args: argparse.Namespace) -> None:
    """In the supervisor, after the daemon: only the host side can name the socket's path."""
    if args.socket_path is not None:
        _remove_socket(args.socket_path)


async def _serve(
    args: argparse.Namespace, socket: tuple[trio.socket.SocketType, bool], remove_socket: bool
) -> None:
    fs = await common.open_filesystem(args)
    try:
        stats = OpStats()
        device = make_device(
            fs,
            tag=args.tag,
            num_request_queues=args.num_request_queues,
            stats=stats,
            poll_max_ns=args.poll_max_ns,
            migration=OnError(args.migration_on_error),
        )
        server = VhostUserServer(device, reconnect=args.reconnect)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shutdown_on_signals, server)
            nursery.start_soon(log_on_signal, stats)  # kill -USR1: the table, as `mount`
            await _serve_socket(server, *socket)
            nursery.cancel_scope.cancel()
        stats.log()  # the table once more at the end, as after a SIGUSR1
    finally:
        with trio.CancelScope(shield=True):
            await fs.close()
        if remove_socket:
            _cleanup(args)


async def _serve_socket(
    server: VhostUserServer, sock: trio.socket.SocketType, listening: bool
) -> None:
    with sock:
        if listening:
            await server.serve_listener(sock)
        else:
            await server.serve_connection(sock)


def _remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def make_device(
    fs: FileSystem,
    *,
    tag: str | None = None,
    num_request_queues: int = DEFAULT_REQUEST_QUEUES,
    stats: OpStats | None = None,
    migration: OnError | None = OnError.ABORT,
    poll_max_ns: int = POLL_MAX_NS,
) -> VhostUserFsDevice:
    """The device ``hostfs serve`` runs (tests drive it in-process).

    Every request queue the front-end starts has its own task, and each serves as
    many requests at once as the FUSE session allows (``SessionConfig.concurrency``),
    so a waiting SETLKW or a slow NFS call holds up neither its queue nor the others.
    ``stats`` collects every session's per-opcode figures (SIGUSR1 logs them).
    """
    config = SessionConfig()
    return VhostUserFsDevice(
        fs,
        functools.partial(Dispatcher, fs, config, stats=stats),
        tag=tag,
        num_request_queues=num_request_queues,
        concurrency=config.concurrency,
        migration=Migration(migration) if migration is not None else None,
        poll_max_ns=poll_max_ns,
    )
