"""One benchmark, three peers: the host's own file system, virtiofsd, hostfs serve.

The same script (guest-images/workloads/bench.sh) runs natively with the
host's busybox and inside the guest on the virtio-fs mount, so the table
compares the virtio-fs path, not two different workloads.
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
from hostfs.guest.console import Measure, parse_workload_output
from hostfs.guest.errors import GuestError
from hostfs.guest.initramfs import BUSYBOX, GuestSetup, workload_path
from hostfs.guest.kernel import GuestKernel, fetch_kernel
from hostfs.guest.qemu import run_guest

logger = logging.getLogger(__name__)

PEERS = ("native", "virtiofsd", "hostfs")
RATIOS = (("hostfs", "virtiofsd"), ("hostfs", "native"), ("virtiofsd", "native"))


@dataclass(slots=True)
class PeerResult:
    peer: str
    measures: dict[str, Measure] = field(default_factory=dict)
    error: str | None = None


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
) -> PeerResult:
    """bench.sh in a guest, with the guest's page cache dropped before the read;
    ``share`` is a directory or, for hostfs, an ``nfs://`` URL (scripts/bench-nfs)."""
    setup = GuestSetup(
        workload_path("bench"), environment={**environment, "HOSTFS_BENCH_DROP_CACHES": "1"}
    )
    try:
        run = await run_guest(kernel, setup, share, daemon, timeout=timeout, options=FsOptions())
    except GuestError as error:
        return PeerResult(daemon, error=str(error).splitlines()[0])
    if not run.report.ok:
        return PeerResult(daemon, error="; ".join(run.report.problems()))
    return PeerResult(daemon, run.report.boots[0].measures)


def format_table(results: list[PeerResult]) -> str:
    by_peer = {result.peer: result.measures for result in results}
    names = list(dict.fromkeys(name for result in results for name in result.measures))
    header = ["measure", "unit", *by_peer, *(f"{a}/{b}" for a, b in RATIOS)]
    rows = [header]
    for name in names:
        unit = next(m[name].unit for m in by_peer.values() if name in m)
        rates = {
            peer: measures[name].rate for peer, measures in by_peer.items() if name in measures
        }
        row = [name, f"{unit}/s", *(f"{rates[p]:.1f}" if p in rates else "-" for p in by_peer)]
        row += [
            f"{rates[a] / rates[b]:.3g}" if a in rates and b in rates else "-" for a, b in RATIOS
        ]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i > 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines += [f"{result.peer}: FAILED: {result.error}" for result in results if result.error]
    return "\n".join(lines)


async def compare(
    peers: list[str], parent: Path, environment: dict[str, str], timeout: float
) -> list[PeerResult]:
    kernel = fetch_kernel() if set(peers) - {"native"} else None
    results = []
    for peer in peers:
        share = Path(tempfile.mkdtemp(prefix=f"bench-{peer}-", dir=parent))
        logger.info("running the benchmark on %s in %s", peer, share)
        if peer == "native":
            results.append(await trio.to_thread.run_sync(run_native, share, environment, timeout))
        else:
            assert kernel is not None
            results.append(await run_in_guest(kernel, peer, share, environment, timeout))
        shutil.rmtree(share)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench-guest", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=128, help="sequential file size (MiB)")
    parser.add_argument("--files", type=int, default=1000, help="files in the metadata loop")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    parser.add_argument(
        "--dir", type=Path, default=Path("/var/tmp"), help="where the shares are created"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per peer")
    args = parser.parse_args(argv)
    peers = args.peers.split(",")
    if not set(peers) <= set(PEERS) or args.mib < 1 or args.files < 1:
        parser.error(f"--peers must name some of {', '.join(PEERS)}; sizes must be positive")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    environment = {"HOSTFS_BENCH_MIB": str(args.mib), "HOSTFS_BENCH_FILES": str(args.files)}
    results = trio.run(compare, peers, args.dir, environment, args.timeout)
    print(f"bench.sh: {args.mib} MiB sequential, {args.files} files; guest under QEMU TCG")
    print(format_table(results))
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
