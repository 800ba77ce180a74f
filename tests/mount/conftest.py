"""The mount suite: each test drives a real mount and a plain directory the same way.

Parametrized over engines (how requests reach the core, with variants such as
devfuse without FUSE passthrough: tests.support.mounts.VARIANTS) and backends (where
the files live), so every assertion holds for every combination; a difference that
is a known limitation of one combination is stated in the test, with the reason.
A variant that differs only on a local share is not run on NFS (it would repeat its
engine's run there).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.mounts import Mount, hostfs_mount, variant

ENGINES = ["devfuse", "devfuse-nopassthrough", "pyfuse3", "uring"]
BACKENDS = ["local", "nfs"]


def applies(engine: str, backend: str) -> bool:
    return backend == "local" or not variant(engine).local_only


def _fixed(metafunc: pytest.Metafunc) -> set[str]:
    """The names a test's own ``parametrize`` marks give values to."""
    names: set[str] = set()
    for mark in metafunc.definition.iter_markers("parametrize"):
        given = mark.args[0]
        if isinstance(given, str):
            names.update(name.strip() for name in given.split(","))
        else:
            names.update(given)
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every (engine, backend) pair that :func:`applies`, for the axes a test leaves open."""
    fixed = _fixed(metafunc)
    free = [n for n in ("engine", "backend") if n in metafunc.fixturenames and n not in fixed]
    if free == ["engine", "backend"]:
        pairs = [(e, b) for e in ENGINES for b in BACKENDS if applies(e, b)]
        ids = [f"{e}-{b}" for e, b in pairs]
        metafunc.parametrize(free, pairs, ids=ids, indirect=True, scope="session")
    elif free == ["engine"]:
        metafunc.parametrize("engine", ENGINES, indirect=True, scope="session")
    elif free == ["backend"]:
        metafunc.parametrize("backend", BACKENDS, indirect=True, scope="session")


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def mount(
    engine: str,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Mount]:
    mountpoint = str(tmp_path_factory.mktemp(f"mnt-{engine}-{backend}"))
    if backend == "nfs":
        server = request.getfixturevalue("nfs_server")
        shared_dir, host_dir = server.url, str(server.export_dir)
    else:
        shared_dir = host_dir = str(tmp_path_factory.mktemp(f"share-{engine}"))
    with hostfs_mount(engine, shared_dir, mountpoint, host_dir, backend) as live:
        yield live


@dataclass
class Twin:
    """The same fresh directory three ways: through the mount, on the host behind
    the backend, and as a plain native directory to compare with."""

    mnt: str
    host: str
    native: str
    mount: Mount


_counter = itertools.count()


@pytest.fixture
def twin(mount: Mount, tmp_path: os.PathLike[str]) -> Twin:
    name = f"t{os.getpid()}-{next(_counter)}"
    mnt = os.path.join(mount.path, name)
    os.mkdir(mnt)
    native = os.path.join(tmp_path, name)
    os.mkdir(native)
    return Twin(mnt, os.path.join(mount.host_dir, name), native, mount)
