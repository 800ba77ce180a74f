"""A million small requests from a guest in another process: no notification is lost.

Driver (hostfs.testing.stress, its own process) and device (this process)
run at once on two CPUs with VIRTIO_RING_F_EVENT_IDX, each kicking or
interrupting only when the other asked.  A lost kick or interrupt shows up as
a stall, which the guest reports when a reply does not come within
``TIMEOUT``: a generous bound on one request, not a measure of speed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import trio

import hostfs
from hostfs.vhost.kernel_wait import KernelWait
from tests.vhost.conftest import Served

TIMEOUT = 30.0
IN_FLIGHT = 8
"""Chains in flight per queue: the device always has work queued behind a reply."""


async def run_guest(
    served: Served, requests: int, request_queues: int = 1, in_flight: int = IN_FLIGHT
) -> dict:
    source_root = str(Path(hostfs.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": source_root}
    command = [
        sys.executable,
        "-m",
        "hostfs.testing.stress",
        served.socket_path,
        f"--requests={requests}",
        f"--in-flight={in_flight}",
        f"--request-queues={request_queues}",
        f"--timeout={TIMEOUT}",
    ]
    result = await trio.run_process(
        command, env=env, capture_stdout=True, capture_stderr=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    print(
        f"\n{requests} requests over {request_queues} queue(s): {report['rate']}/s, "
        f"{report['kicks']} kicks, {report['interrupts']} interrupts"
    )
    return report


async def test_fifty_thousand_requests(served: Served) -> None:
    report = await run_guest(served, 50_000)
    assert report["requests"] == 50_000


async def test_one_at_a_time_the_ring_sleeps_in_the_kernel(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guest that waits for each reply finds the ring asleep every time (no polling
    here): the ring sleeps in its own epoll set (hostfs.vhost.kernel_wait), not in
    trio, and every reply still comes."""
    served.device.poll_max_ns = 0
    for ring in served.device.rings:
        ring.poll.max_ns = 0
    woken_by_kick = 0
    wait = KernelWait.wait

    def counting(self: KernelWait, kick_fd: int) -> bool:
        nonlocal woken_by_kick
        woke = wait(self, kick_fd)
        woken_by_kick += woke
        return woke

    monkeypatch.setattr(KernelWait, "wait", counting)
    report = await run_guest(served, 2_000, in_flight=1)
    assert report["requests"] == 2_000
    assert woken_by_kick > 0


@pytest.mark.slow
async def test_a_million_requests(served: Served) -> None:
    """About 40 s at the ~25k requests/s measured on the CI machine."""
    report = await run_guest(served, 1_000_000)
    assert report["requests"] == 1_000_000
