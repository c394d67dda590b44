"""Retry schedule, tolerance and DLQ headers."""

from __future__ import annotations

import pytest
from rillet.connectors.errorhandling import (
    SKIP,
    ErrorContext,
    ErrorHandler,
    RetrySchedule,
    dlq_headers,
)
from rillet.connectors.errors import RetriableError, ToleranceExceededError


def test_schedule_doubles_caps_and_stops_at_the_timeout():
    s = RetrySchedule(retry_timeout_ms=5000, max_delay_ms=1000)
    assert [s.next_delay_ms(a, 0, 0) for a in (1, 2, 3, 4)] == [300, 600, 1000, 1000]
    assert s.next_delay_ms(1, 0, 4900) == 100  # never past the deadline
    assert s.next_delay_ms(1, 0, 5000) is None
    assert RetrySchedule(0).next_delay_ms(1, 0, 0) is None
    assert RetrySchedule(-1, 60000).next_delay_ms(30, 0, 10**12) == 60000


class Clock:
    def __init__(self):
        self.now = 0
        self.slept = []

    def sleep(self, s):
        self.slept.append(round(s * 1000))
        self.now += round(s * 1000)


def test_retriable_errors_are_retried_until_success():
    clock = Clock()
    h = ErrorHandler({"errors.retry.timeout": 10000, "errors.retry.delay.max.ms": 500},
                     clock_ms=lambda: clock.now, sleep=clock.sleep)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise RetriableError("busy")
        return "ok"

    assert h.retry(flaky) == "ok" and clock.slept == [300, 500, 500]


def test_retries_give_up_then_tolerance_decides():
    clock = Clock()
    reports = []
    ctx = ErrorContext("c", 0, "t", 1, 5)

    def failing():
        raise RetriableError("down")

    h = ErrorHandler({"errors.tolerance": "all", "errors.retry.timeout": 1000},
                     lambda *a: reports.append(a), clock_ms=lambda: clock.now, sleep=clock.sleep)
    assert h.execute("TASK_PUT", failing, ctx, raw_value=b"v") is SKIP
    assert sum(clock.slept) == 1000 and reports[0][1] == "TASK_PUT" and reports[0][5] == b"v"
    strict = ErrorHandler({"errors.tolerance": "none"}, clock_ms=lambda: 0, sleep=clock.sleep)
    with pytest.raises(ToleranceExceededError, match="VALUE_CONVERTER.*boom"):
        strict.execute("VALUE_CONVERTER", lambda: 1 / 0 if False else (_ for _ in ()).throw(
            ValueError("boom")), ctx)


def test_non_retriable_errors_are_not_retried():
    slept = []
    h = ErrorHandler({"errors.tolerance": "all", "errors.retry.timeout": -1},
                     sleep=slept.append)

    def bad():
        raise ValueError("nope")

    assert h.execute("TRANSFORMATION", bad, ErrorContext("c", 0)) is SKIP and slept == []


def test_dlq_headers_use_kafkas_names():
    try:
        raise ValueError("bad value")
    except ValueError as e:
        err = e
    h = dict(dlq_headers(ErrorContext("conn", 3, "orders", 2, 41), "VALUE_CONVERTER",
                         "JsonConverter", err))
    assert h["__connect.errors.topic"] == b"orders"
    assert h["__connect.errors.partition"] == b"2" and h["__connect.errors.offset"] == b"41"
    assert h["__connect.errors.connector.name"] == b"conn"
    assert h["__connect.errors.task.id"] == b"3"
    assert h["__connect.errors.stage"] == b"VALUE_CONVERTER"
    assert h["__connect.errors.exception.class.name"] == b"builtins.ValueError"
    assert h["__connect.errors.exception.message"] == b"bad value"
    assert b"raise ValueError" in h["__connect.errors.exception.stacktrace"]
