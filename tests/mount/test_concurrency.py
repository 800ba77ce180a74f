"""Several processes on the same files and directory at once.

The daemon serves them all on one trio loop; what each one wrote must be there,
whole, and no operation may fail that would not fail natively.
"""

from __future__ import annotations

import errno
import os

from tests.mount.compare import read_file, write_file
from tests.mount.processes import run_together

j = os.path.join

WRITERS = 4
BLOCK = 64 * 1024
ROUNDS = 16
RECORD = 100


def pattern(writer: int, round_: int) -> bytes:
    return bytes([65 + writer]) * (BLOCK - 4) + round_.to_bytes(4, "big")


def write_my_blocks(path: str, writer: int) -> None:
    """Blocks writer, writer + WRITERS, ...: disjoint ranges interleaved with the others'."""
    fd = os.open(path, os.O_WRONLY)
    try:
        for round_ in range(ROUNDS):
            os.pwrite(fd, pattern(writer, round_), (round_ * WRITERS + writer) * BLOCK)
    finally:
        os.close(fd)


def test_disjoint_writes_from_several_processes(twin):
    path = j(twin.mnt, "shared")
    write_file(path)
    run_together([lambda w=w: write_my_blocks(path, w) for w in range(WRITERS)])
    data = read_file(j(twin.host, "shared"))
    assert len(data) == WRITERS * ROUNDS * BLOCK
    for round_ in range(ROUNDS):
        for writer in range(WRITERS):
            start = (round_ * WRITERS + writer) * BLOCK
            assert data[start : start + BLOCK] == pattern(writer, round_), (writer, round_)


def append_records(path: str, writer: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        for number in range(50):
            os.write(fd, f"{writer}:{number:04d}:".encode().ljust(RECORD - 1, b".") + b"\n")
    finally:
        os.close(fd)


def test_appends_from_several_processes_never_overlap(twin):
    path = j(twin.mnt, "log")
    write_file(path)
    run_together([lambda w=w: append_records(path, w) for w in range(WRITERS)])
    lines = read_file(path).splitlines()
    assert len(lines) == WRITERS * 50
    assert all(len(line) == RECORD - 1 for line in lines), "a record was torn"
    for writer in range(WRITERS):
        mine = [line for line in lines if line.startswith(f"{writer}:".encode())]
        assert mine == sorted(mine) and len(mine) == 50  # each writer's order is kept


def churn(directory: str, worker: int) -> list[str]:
    """Create and remove private names, and race the others on shared ones."""
    unexpected = []
    for i in range(60):
        mine = j(directory, f"w{worker}-{i}")
        write_file(mine, b"x")
        os.rename(mine, mine + ".done")
        shared = j(directory, f"shared-{i % 5}")
        try:
            fd = os.open(shared, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.close(fd)
            os.unlink(shared)
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOENT):  # lost a race: fine
                unexpected.append(f"{shared}: {error}")
        os.unlink(mine + ".done")
    return unexpected


def test_create_and_unlink_in_one_directory(twin):
    directory = twin.mnt
    results = run_together([lambda w=w: churn(directory, w) for w in range(WRITERS)])
    assert results == [[]] * WRITERS
    assert os.listdir(directory) == [] and os.listdir(twin.host) == []
