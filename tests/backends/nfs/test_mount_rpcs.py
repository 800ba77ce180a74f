"""NFS calls per syscall through a real /dev/fuse mount of the export (``--cache never``).

The kernel adds requests of its own: a LOOKUP per name (entries expire at
once), and with ``default_permissions`` a GETATTR of the directory before each
permission check once a create or unlink in it dropped its attributes.  Each
syscall here must cost the server no more than what it asks for: one LOOKUP3
for a stat, a LOOKUP3 and a CREATE3 for a create, a LOOKUP3 and a REMOVE3 for
an unlink.  Reply attributes are kept for a minute here, not 10 ms, so the
counts do not depend on how fast this machine runs the syscalls.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hostfs.backends.nfs import NfsBackend
from tests.backends.nfs.mounting import mounted_nfs
from tests.devfuse.mounting import in_thread

ROUNDS = 20


@pytest.fixture
async def mounted(nfs_url: str, tmp_path: Path) -> AsyncIterator[tuple[Path, NfsBackend]]:
    async with mounted_nfs(nfs_url, tmp_path, "never", reuse_ns=60 * 10**9) as backend:
        yield tmp_path, backend


async def per_call(backend: NfsBackend, calls: list[Callable[[], object]]) -> Counter[str]:
    """The NFS calls of each of ``calls`` (run in turn in a thread), summed over them."""
    before = backend.rpc_counts()
    for call in calls:
        await in_thread(call)
    return backend.rpc_counts() - before


async def test_create_stat_unlink_cost_one_rpc_per_kernel_request(
    mounted: tuple[Path, NfsBackend],
) -> None:
    mnt, backend = mounted
    top = mnt / "d"
    await in_thread(lambda: os.mkdir(top))
    # Names relative to an open directory, as the benchmark does: no walk from the root.
    fd = await in_thread(lambda: os.open(top, os.O_RDONLY | os.O_DIRECTORY))
    names = [f"f{index}" for index in range(ROUNDS)]

    def create(name: str) -> Callable[[], None]:
        return lambda: os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))

    try:
        calls = await per_call(backend, [create(name) for name in names])
        assert calls == Counter(LOOKUP3=ROUNDS, CREATE3=ROUNDS)
        stats = [lambda n=name: os.stat(n, dir_fd=fd, follow_symlinks=False) for name in names]
        calls = await per_call(backend, stats)
        assert calls == Counter(LOOKUP3=ROUNDS)
        calls = await per_call(backend, [lambda n=name: os.unlink(n, dir_fd=fd) for name in names])
        assert calls == Counter(LOOKUP3=ROUNDS, REMOVE3=ROUNDS)
        assert await in_thread(lambda: os.listdir(top)) == []
    finally:
        os.close(fd)
