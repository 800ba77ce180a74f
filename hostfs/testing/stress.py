"""A guest that floods a vhost-user-fs device with small requests, from its own process.

Run it in another process than the device (``python -m hostfs.testing.stress
SOCKET``) so driver and device really run at once on two CPUs: that is when
a missing memory barrier or a wrong notification check loses an interrupt
or a kick.  The driver side behaves as Linux's virtio_ring does with
VIRTIO_RING_F_EVENT_IDX: it kicks only when ``avail_event`` asks for it, and
sleeps on the call eventfd only after ``used_event`` is set and the used ring
re-checked.  A lost notification is a stall: no reply within ``timeout``.
"""

from __future__ import annotations

import argparse
import errno
import json
import select
import sys
import time
from dataclasses import dataclass

import trio

from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID, Opcode
from hostfs.testing.driver_queue import DriverQueue, Submitted
from hostfs.testing.frontend import Frontend
from hostfs.testing.fuse_client import GuestFuseClient
from hostfs.testing.fuse_wire import in_header, split_reply

UNIQUE_BASE = 1 << 32
"""Stress requests use uniques from here: the FUSE_INIT before them used small ones."""


class Stall(Exception):
    """No interrupt within the timeout while requests were in flight: a lost notification."""


@dataclass
class StressResult:
    requests: int
    seconds: float
    kicks: int
    interrupts: int
    per_queue: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def getattr_request(unique: int) -> bytes:
    """FUSE_GETATTR of the root: about the cheapest request that does real work."""
    args = abi.GETATTR_IN.pack(0, 0, 0)
    return in_header(abi.IN_HEADER.size + len(args), Opcode.GETATTR, unique, ROOT_ID) + args


def check_reply(submitted: Submitted, unique: int) -> None:
    reply = submitted.reply or b""
    if len(reply) != abi.OUT_HEADER.size + abi.ATTR_OUT.size:
        raise AssertionError(f"reply of {len(reply)} bytes to GETATTR {unique}")
    length, error, got, _ = split_reply(reply)
    if error or got != unique or length != len(reply):
        raise AssertionError(f"GETATTR {unique}: error {error}, unique {got}, length {length}")


def flood(queues: list[DriverQueue], requests: int, in_flight: int, timeout: float) -> StressResult:
    """``requests`` GETATTRs, ``in_flight`` at a time on each queue, every reply checked."""
    unique_of: dict[int, int] = {}
    by_head: dict[tuple[int, int], Submitted] = {}
    sent = done = kicks = interrupts = 0
    per_queue = {queue.index: 0 for queue in queues}
    poller = select.poll()
    for queue in queues:
        poller.register(queue.call_fd, select.POLLIN)
    by_fd = {queue.call_fd: queue for queue in queues}
    start = time.monotonic()
    for queue in queues:
        for _ in range(min(in_flight, requests - sent)):
            unique = UNIQUE_BASE + sent
            sent += 1
            submitted = queue.submit(
                [getattr_request(unique)], [abi.OUT_HEADER.size + abi.ATTR_OUT.size]
            )
            unique_of[id(submitted)] = unique
            by_head[queue.index, submitted.head] = submitted
        kicks += queue.kick_if_needed(event_idx=True)
    while done < requests:
        progressed = False
        for queue in queues:
            finished = queue.collect()
            for submitted in finished:
                check_reply(submitted, unique_of[id(submitted)])
                done += 1
                per_queue[queue.index] += 1
                if sent < requests:
                    unique = UNIQUE_BASE + sent
                    sent += 1
                    unique_of[id(submitted)] = unique
                    request = getattr_request(unique)
                    queue.ram.write(submitted.readable[0][0], request)
                    queue.resubmit(submitted)
            if finished:
                progressed = True
                kicks += queue.kick_if_needed(event_idx=True)
        if progressed or done == requests:
            continue
        if not all([queue.enable_interrupts() for queue in queues]):
            continue
        events = poller.poll(timeout * 1000)
        if not events:
            raise Stall(
                f"no interrupt in {timeout} s with {sent - done} requests in flight after "
                f"{done} replies (used idx {[q.used_idx() for q in queues]}, last seen "
                f"{[q.last_used_idx for q in queues]})"
            )
        for fd, _ in events:
            interrupts += DriverQueue.consume(fd)
            by_fd[fd].interrupts += 1
    return StressResult(done, time.monotonic() - start, kicks, interrupts, per_queue)


async def run(
    socket_path: str,
    *,
    request_queues: int = 1,
    requests: int = 100_000,
    in_flight: int = 8,
    timeout: float = 30.0,
) -> StressResult:
    """Connect as QEMU would, FUSE_INIT, then :func:`flood` the request queues."""
    async with Frontend.connect(socket_path, queue_size=max(64, 2 * in_flight)) as frontend:
        await frontend.realize()
        await frontend.start(1 + request_queues)
        await GuestFuseClient(frontend).init()
        try:
            return flood(frontend.queues[1:], requests, in_flight, timeout)
        finally:
            frontend.close_queues()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("--request-queues", type=int, default=1)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--in-flight", type=int, default=8, help="per queue")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per interrupt")
    args = parser.parse_args(argv)
    try:
        result = trio.run(
            lambda: run(
                args.socket,
                request_queues=args.request_queues,
                requests=args.requests,
                in_flight=args.in_flight,
                timeout=args.timeout,
            )
        )
    except Stall as error:
        print(f"stall: {error}", file=sys.stderr)
        return errno.ETIMEDOUT
    print(json.dumps({**result.__dict__, "rate": round(result.rate)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
