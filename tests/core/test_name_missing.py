"""A name the backend knows is missing (NameMissing): the kernel's negative entry
lasts no longer than the backend's knowledge, and never past the entry timeout;
the backend may know names only where the policy says nothing else changes them."""

from __future__ import annotations

import errno

import pytest

from hostfs.backends.local import LocalBackend
from hostfs.core.backend import NameMissing
from hostfs.core.filesystem import ROOT_NODEID, FileSystem
from hostfs.core.options import CACHE_POLICIES, FsOptions
from tests.support.core import ROOT


class KnowsMissing(LocalBackend):
    """Answers every lookup with NameMissing(valid_for), as the NFS backend's listings do."""

    valid_for = 0.25
    told: float | None = None

    def trust_names_for(self, seconds: float) -> None:
        self.told = seconds

    async def stat_name(self, parent, name):
        return None

    async def lookup(self, parent, name):
        raise NameMissing(name, self.valid_for)


async def negative_timeout(share: str, cache: str, valid_for: float) -> float:
    backend = KnowsMissing.from_path(share)
    backend.valid_for = valid_for
    fs = FileSystem(backend, FsOptions(cache=CACHE_POLICIES[cache]))
    await fs.start()
    try:
        entry = await fs.lookup_entry(ROOT, ROOT_NODEID, b"absent")
        assert entry.nodeid == 0
        return entry.entry_timeout
    finally:
        await fs.close()


@pytest.mark.parametrize(
    ("cache", "trusted"),
    [("never", 0.0), ("auto", 0.0), ("metadata", 86400.0), ("always", 86400.0)],
)
async def test_names_are_trusted_only_where_nothing_else_changes_the_share(
    share: str, cache: str, trusted: float
) -> None:
    backend = KnowsMissing.from_path(share)
    FileSystem(backend, FsOptions(cache=CACHE_POLICIES[cache]))
    await backend.close()
    assert backend.told == trusted


async def test_the_negative_entry_lasts_what_the_backend_knows(share: str) -> None:
    assert await negative_timeout(share, "always", 0.25) == 0.25


async def test_it_never_outlasts_the_entry_timeout(share: str) -> None:
    assert await negative_timeout(share, "auto", 30.0) == CACHE_POLICIES["auto"].entry_timeout


async def test_with_no_entry_timeout_it_is_enoent(share: str) -> None:
    with pytest.raises(FileNotFoundError) as raised:
        await negative_timeout(share, "never", 0.25)
    assert raised.value.errno == errno.ENOENT
