"""Name sets (hostfs/backends/nfs/names.py) through a real /dev/fuse mount of the export.

A directory made through the mount is known empty, and the wcc_data of each
CREATE3/REMOVE3 in it keeps the set true, so the kernel's LOOKUP before a create
costs no RPC.  A change by another client of the server breaks the chain of
pre-op attributes, or shows when the set's check runs out (the ``--cache``
attribute timeout), and the names it made become visible.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import trio

from hostfs.backends.nfs import NfsBackend
from hostfs.backends.nfs.names import DirNames
from hostfs.core.options import CACHE_POLICIES
from hostfs.core.types import Caller
from tests.backends.nfs.mounting import mounted_nfs
from tests.devfuse.mounting import in_thread

ROUNDS = 20
ME = Caller(os.getuid(), os.getgid(), 0)


def creator(fd: int) -> Callable[[str], Callable[[], None]]:
    def create(name: str) -> Callable[[], None]:
        return lambda: os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))

    return create


async def calls_of(backend: NfsBackend, calls: list[Callable[[], object]]) -> Counter[str]:
    before = backend.rpc_counts()
    for call in calls:
        await in_thread(call)
    return backend.rpc_counts() - before


async def made_by_other(other: NfsBackend, directory: bytes, name: bytes) -> None:
    """``directory/name`` created through ``other``, another client of the server."""
    root, _ = await other.root()
    parent, _ = await other.lookup(root, directory)
    _, _, handle = await other.create(parent, name, os.O_WRONLY, 0o644, ME)
    await other.release(handle)


async def test_a_create_in_a_directory_made_here_sends_create3_only(
    nfs_url: str, tmp_path: Path
) -> None:
    """--cache always; and for contrast the same creates in a directory made by
    someone else (no set: the kernel's LOOKUP goes to the server)."""
    async with mounted_nfs(nfs_url, tmp_path, "always", reuse_ns=60 * 10**9) as backend:
        await in_thread(lambda: os.mkdir(tmp_path / "d"))
        fd = await in_thread(lambda: os.open(tmp_path / "d", os.O_RDONLY | os.O_DIRECTORY))
        names = [f"f{index}" for index in range(ROUNDS)]
        try:
            assert await calls_of(backend, [creator(fd)(name) for name in names]) == Counter(
                CREATE3=ROUNDS
            )
            unlinks = [lambda n=name: os.unlink(n, dir_fd=fd) for name in names]
            assert await calls_of(backend, unlinks) == Counter(REMOVE3=ROUNDS)
            # Removed here: known missing again, so creating them anew costs CREATE3 alone.
            again = await calls_of(backend, [creator(fd)(name) for name in names])
            assert again == Counter(CREATE3=ROUNDS)
        finally:
            os.close(fd)


async def test_without_a_set_the_lookup_goes_to_the_server(
    nfs_url: str, nfs_dir: Path, tmp_path: Path
) -> None:
    (nfs_dir / "elsewhere").mkdir()
    async with mounted_nfs(nfs_url, tmp_path, "always", reuse_ns=60 * 10**9) as backend:
        top = tmp_path / "elsewhere"
        fd = await in_thread(lambda: os.open(top, os.O_RDONLY | os.O_DIRECTORY))
        try:
            calls = await calls_of(backend, [creator(fd)(f"f{i}") for i in range(ROUNDS)])
            assert calls == Counter(LOOKUP3=ROUNDS, CREATE3=ROUNDS)
        finally:
            os.close(fd)


async def test_another_clients_create_breaks_the_chain(
    nfs_url: str, tmp_path: Path, other_client: NfsBackend
) -> None:
    """--cache always (a day): our next CREATE3's pre-op attributes are not the ones
    the set was known at, so the set goes and the other client's file is found
    long before the timeout; its name is never answered missing afterwards."""
    async with mounted_nfs(nfs_url, tmp_path, "always", reuse_ns=60 * 10**9) as backend:
        await in_thread(lambda: os.mkdir(tmp_path / "d"))
        fd = await in_thread(lambda: os.open(tmp_path / "d", os.O_RDONLY | os.O_DIRECTORY))
        try:
            assert await calls_of(backend, [creator(fd)("mine")]) == Counter(CREATE3=1)
            await made_by_other(other_client, b"d", b"theirs")
            assert await calls_of(backend, [creator(fd)("mine2")]) == Counter(CREATE3=1)
            assert await in_thread(lambda: os.path.lexists(tmp_path / "d" / "theirs"))
            # The set is gone: the next new name is asked of the server.
            calls = await calls_of(backend, [creator(fd)("mine3")])
            assert calls == Counter(LOOKUP3=1, CREATE3=1)
        finally:
            os.close(fd)


async def test_another_clients_create_appears_within_the_attribute_timeout(
    nfs_url: str, tmp_path: Path, other_client: NfsBackend
) -> None:
    """--cache auto: with no change of ours to reveal it, the set's check runs out
    after the attribute timeout (1 s) and the LOOKUP goes to the server."""
    async with mounted_nfs(nfs_url, tmp_path, "auto") as backend:
        await in_thread(lambda: os.mkdir(tmp_path / "d"))
        await made_by_other(other_client, b"d", b"theirs")
        await trio.sleep(CACHE_POLICIES["auto"].attr_timeout + 0.2)
        before = backend.rpc_counts()
        assert await in_thread(lambda: os.path.lexists(tmp_path / "d" / "theirs"))
        assert (backend.rpc_counts() - before)["LOOKUP3"] >= 1


async def test_under_never_another_clients_create_is_seen_at_once(
    nfs_url: str, tmp_path: Path, other_client: NfsBackend
) -> None:
    async with mounted_nfs(nfs_url, tmp_path, "never"):
        await in_thread(lambda: os.mkdir(tmp_path / "d"))
        await in_thread(lambda: os.close(os.open(tmp_path / "d" / "mine", os.O_CREAT, 0o644)))
        await made_by_other(other_client, b"d", b"theirs")
        assert await in_thread(lambda: os.path.lexists(tmp_path / "d" / "theirs"))


async def test_an_exclusive_create_over_another_clients_file_is_eexist(
    nfs_url: str, tmp_path: Path, other_client: NfsBackend
) -> None:
    """Inside the set's check (--cache always) the LOOKUP says missing, and the
    GUARDED CREATE3 still tells the truth: O_EXCL fails, plain O_CREAT opens it."""
    async with mounted_nfs(nfs_url, tmp_path, "always"):
        await in_thread(lambda: os.mkdir(tmp_path / "d"))
        await made_by_other(other_client, b"d", b"theirs")

        def exclusive() -> int | None:
            try:
                os.close(os.open(tmp_path / "d" / "theirs", os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                return None
            return 0

        assert await in_thread(exclusive) is None

        def open_create() -> int:
            fd = os.open(tmp_path / "d" / "theirs", os.O_CREAT | os.O_RDONLY, 0o644)
            try:
                return os.fstat(fd).st_size
            finally:
                os.close(fd)

        assert await in_thread(open_create) == 0


# -- the rules alone (sans-I/O) ------------------------------------------------

V0, V1, V2, VX = ((size, 0, 0, 0, 0) for size in (0, 1, 2, 99))
TTL = 10


def test_replies_in_any_order_keep_the_set() -> None:
    names = DirNames(V0, checked_at=0)
    names.begin()
    names.begin()
    assert names.changed(V1, V2, sent=2, added=b"b")
    assert not names.knows_missing(b"c", now=3, ttl_ns=TTL)  # b's reply is unexplained
    assert names.changed(V0, V1, sent=1, added=b"a")
    assert names.end() and names.end()
    assert names.version == V2
    assert names.knows_missing(b"c", now=3, ttl_ns=TTL)
    assert not names.knows_missing(b"a", now=3, ttl_ns=TTL)
    assert not names.knows_missing(b"c", now=2 + TTL, ttl_ns=TTL)  # the check ran out


def test_a_foreign_change_between_ours_drops_the_set() -> None:
    names = DirNames(V0, checked_at=0)
    names.begin()
    assert names.changed(VX, V2, sent=1, added=b"a")
    assert not names.end()


def test_attributes_seen_check_or_drop_the_set() -> None:
    names = DirNames(V0, checked_at=0)
    assert names.seen(V0, sent=5)
    assert names.checked_at == 5
    assert names.seen(VX, sent=4)  # old news
    names.begin()
    assert names.seen(V1, sent=6)  # may be our own change in flight
    names.end()
    assert not names.seen(VX, sent=7)
