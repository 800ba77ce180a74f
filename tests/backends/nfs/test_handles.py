"""Open files on the NFS backend: COMMIT only what is unstable, errors of READ/WRITE."""

from __future__ import annotations

import errno
import os

import pytest

from hostfs.backends.nfs import NfsBackend
from hostfs.core.types import Caller

USER = Caller(1000, 1000, 1)


def counting(backend: NfsBackend, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every call handed to a worker thread."""
    calls: list[object] = []
    original = backend.pool.run

    async def run(call: object) -> object:
        calls.append(call)
        return await original(call)

    monkeypatch.setattr(backend.pool, "run", run)
    return calls


async def test_clean_files_cost_no_commit_and_no_worker(
    backend: NfsBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = await backend.root()
    calls = counting(backend, monkeypatch)
    node, _, handle = await backend.create(root, b"f", os.O_RDWR, 0o644, USER)
    await backend.flush(handle)
    await backend.fsync(handle, datasync=True)
    await backend.release(handle)
    assert calls == []
    handle = await backend.open(node, os.O_RDONLY, USER)
    del calls[:]
    await backend.flush(handle)
    await backend.release(handle)
    assert calls == []


async def test_a_write_through_any_handle_is_committed_once(
    backend: NfsBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = await backend.root()
    node, _, writer = await backend.create(root, b"f", os.O_RDWR, 0o644, USER)
    other = await backend.open(node, os.O_RDONLY, USER)
    calls = counting(backend, monkeypatch)
    await backend.write(writer, 0, [memoryview(bytearray(b"data"))])
    assert node.unstable and len(calls) == 1
    # A COMMIT covers the whole file (RFC 1813 §3.3.21), whichever handle wrote.
    await backend.fsync(other, datasync=False)
    assert not node.unstable and len(calls) == 2
    await backend.flush(writer)
    await backend.release(writer)
    await backend.release(other)
    assert len(calls) == 2


async def test_release_commits_what_is_unstable(
    backend: NfsBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = await backend.root()
    node, _, handle = await backend.create(root, b"f", os.O_RDWR, 0o644, USER)
    await backend.write(handle, 0, [memoryview(bytearray(b"data"))])
    calls = counting(backend, monkeypatch)
    await backend.release(handle)
    assert len(calls) == 1 and not node.unstable


async def test_io_on_a_removed_file_is_estale_and_keeps_the_connection(
    backend: NfsBackend, other_client: NfsBackend
) -> None:
    """libnfs 4.0 reports any failed READ/WRITE as -EFAULT: the backend asks the server.

    Removed by another client: our own unlink of an open file
    only hides it (test_silly_rename.py)."""
    root, _ = await backend.root()
    _, _, handle = await backend.create(root, b"f", os.O_RDWR, 0o644, USER)
    await backend.write(handle, 0, [memoryview(bytearray(b"data"))])
    connected = backend.pool.connected
    await other_client.unlink(other_client.tree.root, b"f")
    with pytest.raises(OSError) as info:
        await backend.read(handle, 0, [memoryview(bytearray(4))])
    assert info.value.errno == errno.ESTALE
    with pytest.raises(OSError) as info:
        await backend.write(handle, 0, [memoryview(bytearray(b"more"))])
    assert info.value.errno == errno.ESTALE
    assert backend.pool.connected == connected
    await backend.release(handle)
