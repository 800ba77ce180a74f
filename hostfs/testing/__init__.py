"""A simulated guest: a vhost-user front-end and virtio-fs driver written in Python.

This is the public API for testing your own set-up against a vhost-user-fs
device (hostfs's or another): :class:`Frontend` connects and plays QEMU's
messages (or any message, fd and ring you make it send), :class:`DriverQueue`
fills split rings as the Linux driver does (raw setters for broken ones),
:class:`GuestFuseClient` sends FUSE requests on them, :class:`GuestRam` is the
shared guest memory (a sealable memfd).  :class:`Pipeline` keeps pre-built
requests (``hostfs.testing.workloads``) in flight in a tight loop, for
benchmarks (``scripts/bench-device``).  :mod:`hostfs.testing.fuse_wire` builds
raw FUSE requests and splits replies, for requests the client has no method for.
Names listed here stay stable.
"""

from hostfs.testing.driver_queue import DriverQueue, Submitted
from hostfs.testing.frontend import Frontend, FrontendError
from hostfs.testing.fuse_client import FuseError, FuseReply, GuestFuseClient
from hostfs.testing.guest_ram import GuestRam
from hostfs.testing.pipeline import Pipeline, PipelineResult

__all__ = [
    "DriverQueue",
    "Frontend",
    "FrontendError",
    "FuseError",
    "FuseReply",
    "GuestFuseClient",
    "GuestRam",
    "Pipeline",
    "PipelineResult",
    "Submitted",
]
