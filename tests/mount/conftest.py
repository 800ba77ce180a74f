"""The mount suite: each test drives a real mount and a plain directory the same way.

Parametrized over engines (how requests reach the core) and backends (where the
files live), so every assertion holds for every combination; a difference that
is a known limitation of one combination is stated in the test, with the reason.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.mounts import Mount, hostfs_mount

ENGINES = ["devfuse", "pyfuse3", "uring"]
BACKENDS = ["local", "nfs"]


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


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
