"""Whether the local backend's calls stay in the event loop's thread (Backend.calls_in_loop):
a transport serves requests in its own task only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostfs.backends.local.backend import LocalBackend


@pytest.mark.parametrize(("threads", "in_loop"), [(0, True), (2, False)])
async def test_calls_leave_the_loop_only_with_a_thread_pool(
    tmp_path: Path, threads: int, in_loop: bool
) -> None:
    backend = LocalBackend.from_path(str(tmp_path), thread_pool_size=threads)
    try:
        assert backend.calls_in_loop is in_loop
    finally:
        await backend.close()
