"""Rate-limited logging: a budget per kind, a count of what was dropped, tracebacks at DEBUG."""

from __future__ import annotations

import logging

import pytest

from hostfs.fuse.ratelimit import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited() -> tuple[RateLimitedLog, Clock]:
    clock = Clock()
    return RateLimitedLog(logging.getLogger("test.ratelimit"), 3, 5.0, clock), clock


def test_burst_then_silence_then_a_summary(limited, caplog) -> None:
    log, clock = limited
    with caplog.at_level(logging.INFO, "test.ratelimit"):
        for i in range(10):
            log.log("bad", logging.WARNING, "bad request %d", i)
        log.log("other", logging.WARNING, "another kind")
        assert [r.getMessage() for r in caplog.records] == [
            "bad request 0",
            "bad request 1",
            "bad request 2",
            "another kind",
        ]
        caplog.clear()
        clock.now += 5.0
        log.log("bad", logging.WARNING, "bad request %d", 10)
    assert [r.getMessage() for r in caplog.records] == [
        "bad: 7 messages suppressed",
        "bad request 10",
    ]


def test_traceback_only_at_debug(limited, caplog) -> None:
    log, _ = limited
    for level in (logging.INFO, logging.DEBUG):
        caplog.clear()
        with caplog.at_level(level, "test.ratelimit"):
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                log.log(f"kind {level}", logging.ERROR, "failed", trace=True)
        (record,) = caplog.records
        traced = bool(record.exc_info) and record.exc_info[0] is RuntimeError
        assert traced == (level == logging.DEBUG)


def test_disabled_levels_cost_no_budget(limited, caplog) -> None:
    log, _ = limited
    with caplog.at_level(logging.WARNING, "test.ratelimit"):
        for _ in range(5):
            log.log("k", logging.INFO, "quiet")
        log.log("k", logging.WARNING, "loud")
    assert [r.getMessage() for r in caplog.records] == ["loud"]
