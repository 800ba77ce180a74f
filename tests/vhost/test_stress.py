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
from tests.vhost.conftest import Served

TIMEOUT = 30.0
IN_FLIGHT = 8
"""Chains in flight per queue: the device always has work queued behind a reply."""


async def run_guest(served: Served, requests: int, request_queues: int = 1) -> dict:
    source_root = str(Path(hostfs.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": source_root}
    command = [
        sys.executable,
        "-m",
        "hostfs.testing.stress",
        served.socket_path,
        f"--requests={requests}",
        f"--in-flight={IN_FLIGHT}",
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


@pytest.mark.slow
async def test_a_million_requests(served: Served) -> None:
    """About 40 s at the ~25k requests/s measured on the CI machine."""
    report = await run_guest(served, 1_000_000)
    assert report["requests"] == 1_000_000
