"""One benchmark, several stacks and peers: the host's own file system, QEMU 7.2's C
virtiofsd, Rust virtiofsd 1.13, hostfs serve.

The same script (guest-images/workloads/bench.sh) runs natively with the
host's busybox and inside the guest on the virtio-fs mount, so the table
compares the virtio-fs path, not two different workloads.  A *stack* is a
guest kernel, a QEMU and a request queue count: Debian 12's 6.1 on the host's
QEMU 7.2, and Debian 13's 6.12 (whose driver spreads requests over the
request queues by CPU) with 1 and with 2 request queues, on QEMU 10.0 from a
trixie root (:mod:`hostfs.guest.chroot`) or on QEMU 7.2.  Each round runs
every stack's every peer in turn; each row keeps the best of the rounds, so
a noisy neighbour on a shared machine costs a round, not the table.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import trio

from hostfs.core.options import FsOptions
from hostfs.guest.chroot import fetch_trixie_root
from hostfs.guest.console import Measure, parse_workload_output
from hostfs.guest.daemons import MAX_REQUEST_QUEUES
from hostfs.guest.errors import GuestError
from hostfs.guest.initramfs import BUSYBOX, GuestSetup, workload_path
from hostfs.guest.kernel import GuestKernel, fetch_kernel
from hostfs.guest.qemu import HOST_QEMU, Emulator, run_guest
from hostfs.guest.rust_virtiofsd import fetch_rust_virtiofsd
from hostfs.progress import Status

logger = logging.getLogger(__name__)

PEERS = ("native", "virtiofsd", "rust-virtiofsd", "hostfs")
REFERENCES = ("virtiofsd", "rust-virtiofsd")
"""The peers hostfs is measured against (``hostfs/best``): the other virtio-fs daemons."""
QEMUS = ("7.2", "10.0")


@dataclass(frozen=True, slots=True)
class Stack:
    """A guest kernel (Debian suite), a QEMU, a request queue count."""

    name: str
    suite: str | None
    request_queues: int
    qemu: str = "7.2"


STACKS = {
    "6.1": Stack("6.1", None, 1),
    "6.12-1q": Stack("6.12-1q", "trixie", 1),
    "6.12-2q": Stack("6.12-2q", "trixie", 2),
}


@dataclass(slots=True)
class PeerResult:
    """The best rate of each measure over the rounds, and the last failure, if any."""

    peer: str
    measures: dict[str, Measure] = field(default_factory=dict)
    error: str | None = None

    def keep_best(self, measures: dict[str, Measure]) -> None:
        for name, measure in measures.items():
            if name not in self.measures or measure.rate > self.measures[name].rate:
                self.measures[name] = measure


@dataclass(slots=True)
class StackResults:
    stack: Stack
    title: str
    peers: dict[str, PeerResult]
    skipped: dict[str, str] = field(default_factory=dict)


def run_native(directory: Path, environment: dict[str, str], timeout: float) -> PeerResult:
    """bench.sh with the host's busybox on a host directory: the physical limit."""
    completed = subprocess.run(
        [str(BUSYBOX), "sh", str(workload_path("bench"))],
        env={**os.environ, **environment, "HOSTFS_MNT": str(directory)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        return PeerResult("native", error=f"exit status {completed.returncode}")
    return PeerResult("native", parse_workload_output(completed.stdout).measures)


async def run_in_guest(
    kernel: GuestKernel,
    daemon: str,
    share: Path | str,
    environment: dict[str, str],
    timeout: float,
    *,
    request_queues: int = 1,
    emulator: Emulator = HOST_QEMU,
) -> PeerResult:
    """bench.sh in a guest, with the guest's page cache dropped before the reads;
    ``share`` is a directory or, for hostfs, an ``nfs://`` URL (scripts/bench-nfs)."""
    setup = GuestSetup(
        workload_path("bench"), environment={**environment, "HOSTFS_BENCH_DROP_CACHES": "1"}
    )
    try:
        run = await run_guest(
            kernel,
            setup,
            share,
            daemon,
            timeout=timeout,
            options=FsOptions(),
            request_queues=request_queues,
            emulator=emulator,
        )
    except GuestError as error:
        return PeerResult(daemon, error=str(error).splitlines()[0])
    if not run.report.ok:
        return PeerResult(daemon, error="; ".join(run.report.problems()))
    return PeerResult(daemon, run.report.boots[0].measures)


def best_reference(
    results: StackResults, fallback: StackResults | None
) -> tuple[dict[str, tuple[str, float]], bool]:
    """Per measure, the fastest reference peer and its rate; from ``fallback`` (the
    same kernel and QEMU with one request queue) when this stack ran none."""
    source, borrowed = results, False
    if not any(results.peers[p].measures for p in REFERENCES if p in results.peers):
        if fallback is None:
            return {}, False
        source, borrowed = fallback, True
    best: dict[str, tuple[str, float]] = {}
    for peer in REFERENCES:
        if peer not in source.peers:
            continue
        for name, measure in source.peers[peer].measures.items():
            if name not in best or measure.rate > best[name][1]:
                best[name] = (peer, measure.rate)
    return best, borrowed and bool(best)


def format_table(results: StackResults, fallback: StackResults | None = None) -> str:
    by_peer = {peer: result.measures for peer, result in results.peers.items()}
    names = list(dict.fromkeys(name for measures in by_peer.values() for name in measures))
    best, borrowed = best_reference(results, fallback)
    ratio_name = "hostfs/best" + ("*" if borrowed else "")
    header = ["measure", "unit", *by_peer, ratio_name, "best peer"]
    rows = [header]
    for name in names:
        unit = next(m[name].unit for m in by_peer.values() if name in m)
        rates = {peer: m[name].rate for peer, m in by_peer.items() if name in m}
        row = [name, f"{unit}/s", *(f"{rates[p]:.1f}" if p in rates else "-" for p in by_peer)]
        if "hostfs" in rates and name in best:
            row += [f"{rates['hostfs'] / best[name][1]:.2f}", best[name][0]]
        else:
            row += ["-", "-"]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"== {results.title} =="]
    lines += [
        "  ".join(
            cell.rjust(w) if 1 < i < len(header) - 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    if borrowed and fallback is not None:
        lines.append(f"* best peer from {fallback.title} (the peers serve one request queue)")
    lines += [f"{peer}: not run: {why}" for peer, why in results.skipped.items()]
    lines += [f"{p}: FAILED: {r.error}" for p, r in results.peers.items() if r.error]
    return "\n".join(lines)


@dataclass(slots=True)
class Prepared:
    """A stack with its kernel and QEMU fetched, ready to boot."""

    stack: Stack
    kernel: GuestKernel | None
    emulator: Emulator


def prepare(stacks: list[Stack], peers: list[str], qemu: str) -> list[Prepared]:
    """Fetch every kernel, root and peer before the first round, so no round times a
    download.  A 6.12 stack on QEMU 10.0 falls back to 7.2 if the root cannot be built."""
    needs_guest = set(peers) - {"native"}
    if "rust-virtiofsd" in peers:
        fetch_rust_virtiofsd()
    emulator_10: Emulator | None = None
    if needs_guest and qemu == "10.0" and any(stack.suite for stack in stacks):
        try:
            emulator_10 = Emulator(fetch_trixie_root())
        except GuestError as error:
            logger.warning("no QEMU 10.0 (%s): the 6.12 stacks run on QEMU 7.2", error)
    kernels: dict[str | None, GuestKernel] = {}
    prepared = []
    for stack in stacks:
        if needs_guest and stack.suite not in kernels:
            kernels[stack.suite] = fetch_kernel(suite=stack.suite)
        on_10 = stack.suite is not None and emulator_10 is not None
        stack = Stack(stack.name, stack.suite, stack.request_queues, "10.0" if on_10 else "7.2")
        emulator = emulator_10 if on_10 and emulator_10 is not None else HOST_QEMU
        prepared.append(Prepared(stack, kernels.get(stack.suite), emulator))
    return prepared


def stack_title(prepared: Prepared) -> str:
    stack = prepared.stack
    kernel = prepared.kernel.release if prepared.kernel else stack.name
    queues = f"{stack.request_queues} request queue" + ("s" if stack.request_queues > 1 else "")
    return f"{stack.name}: guest {kernel}, QEMU {stack.qemu}, {queues}"


async def compare(
    prepared: list[Prepared],
    peers: list[str],
    parent: Path,
    environment: dict[str, str],
    timeout: float,
    rounds: int,
) -> list[StackResults]:
    """``rounds`` times: native once, then every stack's every peer in turn."""
    tables = []
    for item in prepared:
        runnable = [p for p in peers if _serves(p, item.stack.request_queues)]
        skipped = {
            p: f"serves at most {MAX_REQUEST_QUEUES[p]} request queue"
            for p in peers
            if p not in runnable
        }
        results = {p: PeerResult(p) for p in runnable}
        tables.append(StackResults(item.stack, stack_title(item), results, skipped))
    native = PeerResult("native")
    for round_number in range(1, rounds + 1):
        if "native" in peers:
            result = await _one_run(None, "native", parent, environment, timeout, round_number)
            _merge(native, result)
        for item, table in zip(prepared, tables, strict=True):
            for peer in table.peers:
                if peer == "native":
                    continue
                result = await _one_run(item, peer, parent, environment, timeout, round_number)
                _merge(table.peers[peer], result)
    for table in tables:
        if "native" in table.peers:
            table.peers["native"] = native
    return tables


async def _one_run(
    item: Prepared | None,
    peer: str,
    parent: Path,
    environment: dict[str, str],
    timeout: float,
    round_number: int,
) -> PeerResult:
    share = Path(tempfile.mkdtemp(prefix=f"bench-{peer}-", dir=parent))
    where = item.stack.name if item else "host"
    logger.info("round %d: %s on %s in %s", round_number, peer, where, share)
    status = Status()
    status.show(f"bench round {round_number}: {peer} on {where}")
    try:
        if item is None:
            return await trio.to_thread.run_sync(run_native, share, environment, timeout)
        assert item.kernel is not None
        return await run_in_guest(
            item.kernel,
            peer,
            share,
            environment,
            timeout,
            request_queues=item.stack.request_queues,
            emulator=item.emulator,
        )
    finally:
        status.clear()
        shutil.rmtree(share, ignore_errors=True)


def _serves(peer: str, request_queues: int) -> bool:
    return peer == "native" or MAX_REQUEST_QUEUES[peer] >= request_queues


def _merge(into: PeerResult, result: PeerResult) -> None:
    into.keep_best(result.measures)
    if result.error:
        into.error = result.error


def _fallback(tables: list[StackResults], table: StackResults) -> StackResults | None:
    """The one-queue table of the same kernel and QEMU, for a stack no peer could run."""
    for other in tables:
        stack = other.stack
        if (stack.suite, stack.qemu, stack.request_queues) == (
            table.stack.suite,
            table.stack.qemu,
            1,
        ) and other is not table:
            return other
    return None


def _names(value: str, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    names = [name for name in value.split(",") if name]
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{what} must name some of {', '.join(known)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench-guest", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=128, help="sequential file size (MiB)")
    parser.add_argument("--files", type=int, default=1000, help="files in the metadata loop")
    parser.add_argument("--ops", type=int, default=1000, help="random 4 KiB reads, and writes")
    parser.add_argument("--rounds", type=int, default=3, help="best of N rounds (default 3)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    parser.add_argument(
        "--stacks", default=",".join(STACKS), help="comma-separated subset of " + ", ".join(STACKS)
    )
    parser.add_argument(
        "--qemu", choices=QEMUS, default="10.0", help="the QEMU of the 6.12 stacks (default 10.0)"
    )
    parser.add_argument(
        "--dir", type=Path, default=Path("/var/tmp"), help="where the shares are created"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per peer")
    args = parser.parse_args(argv)
    try:
        peers = _names(args.peers, PEERS, "--peers")
        stacks = [STACKS[name] for name in _names(args.stacks, list(STACKS), "--stacks")]
        if min(args.mib, args.files, args.ops, args.rounds) < 1:
            raise argparse.ArgumentTypeError("--mib, --files, --ops and --rounds must be positive")
    except argparse.ArgumentTypeError as error:
        print(f"bench-guest: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    environment = {
        "HOSTFS_BENCH_MIB": str(args.mib),
        "HOSTFS_BENCH_FILES": str(args.files),
        "HOSTFS_BENCH_OPS": str(args.ops),
    }
    try:
        prepared = prepare(stacks, peers, args.qemu)
    except GuestError as error:
        print(f"bench-guest: {error}", file=sys.stderr)
        return 1
    tables = trio.run(compare, prepared, peers, args.dir, environment, args.timeout, args.rounds)
    print(
        f"bench.sh: {args.mib} MiB sequential, {args.files} files, {args.ops} random 4 KiB "
        f"ops; best of {args.rounds} rounds; guests under QEMU TCG, cache=auto, defaults "
        "otherwise; native is the host directory with the host's busybox"
    )
    for table in tables:
        print()
        print(format_table(table, _fallback(tables, table)))
    failed = any(result.error for table in tables for result in table.peers.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
