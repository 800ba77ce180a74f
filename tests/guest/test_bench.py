"""scripts/bench-guest's tables: best of the rounds, hostfs over the fastest peer."""

from __future__ import annotations

import pytest

from hostfs.guest.bench import STACKS, PeerResult, StackResults, format_table, main
from hostfs.guest.console import Measure


def rate(name: str, per_second: float, unit: str = "files") -> dict[str, Measure]:
    return {name: Measure(name, per_second, unit, 1.0)}


def table(stack: str, **rates: float) -> StackResults:
    peers = {peer: PeerResult(peer, rate("create", value)) for peer, value in rates.items()}
    return StackResults(STACKS[stack], f"{stack} title", peers)


def test_rounds_keep_each_measures_best_rate():
    result = PeerResult("hostfs", rate("create", 10.0))
    result.keep_best({**rate("create", 30.0), **rate("stat", 5.0)})
    result.keep_best(rate("create", 20.0))

    assert {name: m.rate for name, m in result.measures.items()} == {"create": 30.0, "stat": 5.0}


def test_ratio_is_hostfs_over_the_fastest_reference_peer():
    text = format_table(
        table("6.1", native=1000.0, virtiofsd=50.0, **{"rust-virtiofsd": 80.0}, hostfs=40.0)
    )

    row = next(line for line in text.splitlines() if line.startswith("create"))
    assert row.split()[-2:] == ["0.50", "rust-virtiofsd"]  # not native's 0.04


def test_stack_without_peers_borrows_them_from_its_one_queue_twin():
    one_queue = table("6.12-1q", virtiofsd=50.0, hostfs=40.0)
    two_queues = table("6.12-2q", hostfs=60.0)
    two_queues.skipped["virtiofsd"] = "serves at most 1 request queue"

    text = format_table(two_queues, one_queue)

    row = next(line for line in text.splitlines() if line.startswith("create"))
    assert row.split()[-2:] == ["1.20", "virtiofsd"]
    assert "* best peer from 6.12-1q title" in text
    assert "virtiofsd: not run: serves at most 1 request queue" in text


@pytest.mark.parametrize(
    "argv", [["--peers", "nfsd"], ["--stacks", "5.10"], ["--rounds", "0"], ["--peers", ""]]
)
def test_wrong_selection_is_a_usage_error(argv, capsys):
    assert main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_no_footnote_when_the_twin_ran_no_peers_either():
    text = format_table(table("6.12-2q", hostfs=60.0), table("6.12-1q", hostfs=40.0))

    assert "best peer from" not in text
    assert "hostfs/best*" not in text
