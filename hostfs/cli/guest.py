"""``hostfs guest``: boot a throwaway Linux guest that mounts the share over virtio-fs.

The end-to-end check of the whole device: a real guest kernel's virtiofs
driver talks to ``hostfs serve`` (or to virtiofsd, for comparison) through
QEMU, runs a workload on the mount and reports on its serial console.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import trio

from hostfs.cli import common
from hostfs.guest.chroot import fetch_trixie_root
from hostfs.guest.console import GuestReport
from hostfs.guest.daemons import DAEMONS, MAX_REQUEST_QUEUES
from hostfs.guest.errors import GuestError
from hostfs.guest.initramfs import GuestSetup, available_workloads, workload_path
from hostfs.guest.kernel import fetch_kernel
from hostfs.guest.qemu import HOST_QEMU, Emulator, run_guest

INTERACTIVE_WORKLOADS = ("shell",)
DEFAULT_TIMEOUT = 300.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "guest",
        help="boot a QEMU guest that mounts the share over virtio-fs and runs a workload",
        description=__doc__,
    )
    common.add_filesystem_options(parser)
    parser.add_argument(
        "--workload",
        default="smoke",
        metavar="NAME|SCRIPT.sh",
        help=f"what the guest runs on the mount: {', '.join(available_workloads())} "
        "(guest-images/workloads/), or a shell script of your own; default smoke",
    )
    parser.add_argument(
        "--daemon",
        choices=DAEMONS,
        default="hostfs",
        help="who serves the share: hostfs serve (default), QEMU 7.2's C virtiofsd, or "
        "Rust virtiofsd 1.13 (trixie's, fetched into the cache)",
    )
    parser.add_argument(
        "--boots",
        type=int,
        default=1,
        help="boot N times, rebooting in between (exercises the device reset); default 1",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds before the guest is killed (default 300; none for the shell workload)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the workload, e.g. HOSTFS_BENCH_MIB=64 (repeatable)",
    )
    parser.add_argument(
        "--kernel-package",
        help="Debian kernel package to boot (default: what linux-image-cloud-amd64 depends on)",
    )
    parser.add_argument(
        "--kernel-suite",
        choices=("trixie",),
        help="take the kernel from this Debian suite instead of the host's: trixie is 6.12, "
        "whose virtio-fs driver uses every request queue (fetched through a private apt)",
    )
    parser.add_argument(
        "--num-request-queues",
        type=int,
        default=1,
        metavar="N",
        help="QEMU's num-request-queues, and the daemon's (hostfs only beyond 1); default 1",
    )
    parser.add_argument(
        "--qemu",
        choices=("7.2", "10.0"),
        default="7.2",
        help="the host's QEMU 7.2 (default), or QEMU 10.0 in a trixie root built once "
        "into the cache with debootstrap",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only the summary, not the serial console"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = common.filesystem_options(args)
    shared_dir = _shared_dir(args.shared_dir, args.daemon)
    if args.boots < 1:
        raise common.UsageError("--boots must be at least 1")
    if not 1 <= args.num_request_queues <= MAX_REQUEST_QUEUES[args.daemon]:
        raise common.UsageError(
            f"--num-request-queues: {args.daemon} serves 1..{MAX_REQUEST_QUEUES[args.daemon]}"
        )
    try:
        workload = workload_path(args.workload)
    except FileNotFoundError as error:
        raise common.UsageError(str(error)) from None
    setup = GuestSetup(workload, boots=args.boots, environment=_parse_env(args.env))
    interactive = args.workload in INTERACTIVE_WORKLOADS
    timeout = args.timeout or (math.inf if interactive else DEFAULT_TIMEOUT)
    try:
        kernel = fetch_kernel(args.kernel_package, suite=args.kernel_suite)
        emulator = Emulator(fetch_trixie_root()) if args.qemu == "10.0" else HOST_QEMU
        result = trio.run(
            lambda: run_guest(
                kernel,
                setup,
                shared_dir,
                args.daemon,
                timeout=timeout,
                options=options,
                echo=None if args.quiet else _echo,
                interactive=interactive,
                request_queues=args.num_request_queues,
                emulator=emulator,
            )
        )
    except GuestError as error:
        print(f"hostfs guest: {error}", file=sys.stderr)
        return 1
    if interactive:
        return 0 if result.qemu_status == 0 else 1
    if result.timed_out:
        print(f"hostfs guest: timed out after {timeout:g} s", file=sys.stderr)
    _print_summary(result.report)
    if not result.report.ok:
        if args.quiet:
            print("--- console ---\n" + result.console[-4000:], file=sys.stderr)
        print("--- daemon log ---\n" + result.daemon_log[-4000:], file=sys.stderr)
    return 0 if result.report.ok else 1


def _shared_dir(value: str, daemon: str) -> Path | str:
    """A host directory, or an NFS URL when hostfs serves it (virtiofsd cannot)."""
    if "://" in value:
        if daemon != "hostfs":
            raise common.UsageError(f"--shared-dir {value}: only hostfs serves NFS URLs")
        return value
    path = Path(value)
    if not path.is_dir():
        raise common.UsageError(f"--shared-dir {value}: not a directory")
    return path.resolve()


def _parse_env(pairs: list[str]) -> dict[str, str]:
    environment = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise common.UsageError(f"--env {pair!r}: expected KEY=VALUE")
        environment[key] = value
    return environment


def _echo(text: str) -> None:
    sys.stdout.write(text.replace("\r", ""))
    sys.stdout.flush()


def _print_summary(report: GuestReport) -> None:
    for boot in report.boots:
        checks = len(boot.checks) - len(boot.failed_checks)
        print(
            f"boot {boot.number}: {checks}/{len(boot.checks)} checks ok, "
            f"workload exit {boot.workload_exit}"
        )
        for measure in boot.measures.values():
            print(f"  {measure.name:<10} {measure.rate:12.1f} {measure.unit}/s")
    for problem in report.problems():
        print(f"FAILED: {problem}")
    print("guest run ok" if report.ok else "guest run FAILED")
