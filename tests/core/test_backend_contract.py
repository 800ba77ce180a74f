"""A backend writes only what it supports: the contract's defaults answer the rest."""

from __future__ import annotations

import errno

import pytest

from hostfs.core.backend import Backend
from hostfs.core.types import ROOT_CALLER, SetattrChanges, Stat


class Minimal(Backend):
    """Only the operations the contract requires."""

    async def root(self) -> tuple[object, Stat]:
        raise AssertionError

    def forget(self, obj: object) -> None:
        pass

    async def close(self) -> None:
        pass

    async def lookup(self, parent: object, name: bytes) -> tuple[object, Stat]:
        raise AssertionError

    async def getattr(self, obj: object, handle: object = None) -> Stat:
        raise AssertionError


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda b: b.setattr(None, SetattrChanges(), None, ROOT_CALLER), errno.EOPNOTSUPP),
        (lambda b: b.mkdir(None, b"d", 0o755, ROOT_CALLER), errno.EOPNOTSUPP),
        (lambda b: b.open(None, 0, ROOT_CALLER), errno.EOPNOTSUPP),
        (lambda b: b.create(None, b"f", 0, 0o644, ROOT_CALLER), errno.ENOSYS),
        (lambda b: b.fsync(None, False), errno.ENOSYS),
        (lambda b: b.copy_file_range(None, 0, None, 0, 1), errno.ENOSYS),
        (lambda b: b.syncfs(), errno.ENOSYS),
        (lambda b: b.getxattr(None, b"user.x"), errno.ENOSYS),
    ],
)
async def test_unsupported_operations_answer_an_errno(call, code) -> None:
    with pytest.raises(OSError) as raised:
        await call(Minimal())
    assert raised.value.errno == code


async def test_harmless_defaults() -> None:
    backend = Minimal()
    await backend.flush(None)  # FLUSH must keep coming: the core drops POSIX locks there
    await backend.release(None)
    assert await backend.opendir(None) is None
    assert (await backend.statfs(None)).namelen == 255
