"""The benchmark front-end's pre-built requests really reach a ``hostfs serve`` and do
what they say (hostfs.testing.pipeline, hostfs.testing.workloads)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hostfs.fuse import abi
from hostfs.fuse.abi import ROOT_ID, Opcode
from hostfs.testing import workloads
from hostfs.testing.pipeline import Pipeline, PipelineResult, RequestFailed, copy_field, step
from hostfs.testing.workloads import (
    WORKLOADS,
    WRITE_FILE,
    forget_created,
    open_targets,
    populate,
)
from tests.support.serve import serving

DEPTH = 8
"""Chains in flight: 8 operations of 3 indirect chains fit the front-end's 64-entry ring."""


@pytest.fixture
def share(tmp_path: Path) -> Path:
    share = tmp_path / "share"
    share.mkdir()
    populate(str(share))
    return share


@pytest.mark.parametrize("depth", [1, DEPTH])
@pytest.mark.parametrize("spin", [False, True], ids=["interrupts", "spin"])
async def test_every_workload_runs_the_operations_it_was_asked_for(
    tmp_path: Path, share: Path, depth: int, spin: bool
):
    async with serving(tmp_path, str(share)) as daemon:
        targets = await open_targets(daemon.fuse)
        queue = daemon.frontend.queues[1]
        for name, build in WORKLOADS.items():
            sequences = [build(queue, slot, targets) for slot in range(depth)]
            result = Pipeline(sequences, spin=spin).run(operations=50)

            steps = sum(len(sequence.steps) for sequence in sequences) // depth
            assert (result.operations, result.requests) == (50, 50 * steps), name
            assert len(result.latencies_ns) == 50 and min(result.latencies_ns) > 0
        assert len(targets.created) == 50
        await forget_created(daemon.fuse, targets)
        assert targets.created == []


async def test_writes_land_in_the_file_and_created_names_are_gone(tmp_path: Path, share: Path):
    async with serving(tmp_path, str(share)) as daemon:
        targets = await open_targets(daemon.fuse)
        queue = daemon.frontend.queues[1]
        for name in ("write 4k", "create+release+unlink"):
            sequences = [WORKLOADS[name](queue, slot, targets) for slot in range(DEPTH)]
            Pipeline(sequences).run(duration=0.2)

    data = (share / WRITE_FILE.decode()).read_bytes()
    assert [data[slot * 4096] for slot in range(DEPTH)] == list(range(DEPTH))
    assert sorted(path.name for path in share.iterdir()) == ["known", "read-me", "write-me"]


async def test_an_error_reply_stops_the_run(tmp_path: Path, share: Path):
    # --cache never: with an entry timeout a missing name is a negative entry, not ENOENT.
    async with serving(tmp_path, str(share), "--cache", "never") as daemon:
        targets = replace(await open_targets(daemon.fuse), known_name=b"missing")
        sequences = [WORKLOADS["lookup"](daemon.frontend.queues[1], 0, targets)]

        with pytest.raises(RequestFailed, match="errno 2"):
            Pipeline(sequences).run(operations=5)


def test_merged_results_add_up_as_one_run():
    first = PipelineResult(10, 1.0, [1, 2], 5, 0.5, 3, 4, 30, 1)
    second = PipelineResult(20, 3.0, [3], 7, 0.25, 1, 2, 60, 0)

    merged = PipelineResult.merge([first, second])

    assert (merged.operations, merged.seconds, merged.rate) == (30, 4.0, 7.5)
    assert merged.latencies_ns == [1, 2, 3] and merged.requests == 90 and merged.waits == 1
    assert (merged.kicks, merged.interrupts, merged.frontend_busy_ns) == (4, 6, 12)


async def test_a_detached_request_follows_each_operation_unwaited(tmp_path: Path, share: Path):
    """LOOKUP, then a FORGET of what it found on the hiprio queue, as the kernel sends it."""
    async with serving(tmp_path, str(share)) as daemon:
        targets = await open_targets(daemon.fuse)
        request_queue, hiprio = daemon.frontend.queues[1], daemon.frontend.queues[0]
        sequences = []
        for slot in range(DEPTH):
            sequence = WORKLOADS["lookup"](request_queue, slot, targets)
            forget_args = abi.FORGET_IN.pack(1)
            forget = step(hiprio, [workloads.request(Opcode.FORGET, 0, forget_args, slot)], [])
            entry = hiprio.ram.offset(sequence.steps[0].chain.writable[1][0])
            forget_in = hiprio.ram.offset(forget.chain.readable[0][0])
            forget.fixup = copy_field(entry, forget_in + workloads.IN_HEADER_NODEID, workloads.U64)
            sequence.detached = (hiprio, forget)
            sequences.append(sequence)

        result = Pipeline(sequences).run(operations=40)

        assert result.operations == 40
        assert result.requests == 80  # every LOOKUP's FORGET came back before the end
        assert not any(sequence.detached[1].in_flight for sequence in sequences)
        # The FORGETs named the node each LOOKUP returned: one lookup is left, ours.
        assert await daemon.fuse.lookup(ROOT_ID, targets.known_name) == targets.known_node
