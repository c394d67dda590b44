"""Retries, tolerance and the dead-letter topic (Kafka's RetryWithToleranceOperator + DLQ).

- :class:`RetrySchedule` is pure: given the attempt number, when the operation started and
  ``now_ms`` it says how long to wait before the next attempt, or None to give up. Delays
  double from 300 ms, capped by ``errors.retry.delay.max.ms`` and by the time left until
  ``errors.retry.timeout`` (0: no retries, -1: forever).
- :class:`ErrorHandler` runs one stage of one record: retriable errors are retried on the
  schedule (the caller's ``sleep`` waits, and ``stopping()`` cuts it short); the final error
  is tolerated (``errors.tolerance=all``: logged, reported to the dead-letter topic, the record
  skipped) or raised as ToleranceExceededError (``none``: the task fails).
- :func:`dlq_headers` builds Kafka's ``__connect.errors.*`` context headers.

Stages use Kafka's names: KEY_CONVERTER, VALUE_CONVERTER, TRANSFORMATION, TASK_PUT,
TASK_POLL, KAFKA_PRODUCE.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from loguru import logger

from rillet.frozen import frozen

from .errors import ToleranceExceededError, is_retriable

RETRIES_DELAY_MIN_MS = 300
ERROR_HEADER_PREFIX = "__connect.errors."
_SKIP = object()


@frozen
class RetrySchedule:
    retry_timeout_ms: int = 0
    max_delay_ms: int = 60000
    min_delay_ms: int = RETRIES_DELAY_MIN_MS

    def next_delay_ms(self, attempt: int, started_ms: int, now_ms: int) -> int | None:
        """Delay before attempt ``attempt + 1`` after ``attempt`` (>= 1) failed, or None."""
        if self.retry_timeout_ms == 0:
            return None
        delay = min(self.min_delay_ms << min(attempt - 1, 40), self.max_delay_ms)
        if self.retry_timeout_ms > 0:
            left = started_ms + self.retry_timeout_ms - now_ms
            if left <= 0:
                return None
            delay = min(delay, left)
        return delay


@frozen
class ErrorContext:
    """Where a record came from, for the log line and the DLQ headers."""

    connector: str
    task_id: int
    topic: str = ""
    partition: int = -1
    offset: int = -1
    source_partition: str = ""
    source_offset: str = ""


def dlq_headers(ctx: ErrorContext, stage: str, executing: str,
                error: BaseException) -> list[tuple[str, bytes]]:
    """Kafka's DeadLetterQueueReporter header names, values as UTF-8 text."""
    p = ERROR_HEADER_PREFIX
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    headers = [
        (p + "topic", ctx.topic),
        (p + "partition", str(ctx.partition)),
        (p + "offset", str(ctx.offset)),
        (p + "connector.name", ctx.connector),
        (p + "task.id", str(ctx.task_id)),
        (p + "stage", stage),
        (p + "class.name", executing),
        (p + "exception.class.name", f"{type(error).__module__}.{type(error).__qualname__}"),
        (p + "exception.message", str(error)),
        (p + "exception.stacktrace", trace),
    ]
    if ctx.source_partition:
        headers += [(p + "source.partition", ctx.source_partition),
                    (p + "source.offset", ctx.source_offset)]
    return [(k, v.encode("utf-8", "replace")) for k, v in headers]


class ErrorHandler:
    """Runs operations under a connector's errors.* settings. One per task (task thread).

    ``report(ctx, stage, executing, error, key_bytes, value_bytes)`` is called for each
    tolerated failure (the worker sends it to the dead-letter topic if one is configured).
    """

    def __init__(self, config: dict[str, Any], report: Callable[..., None] | None = None, *,
                 clock_ms: Callable[[], int] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.tolerate_all = config.get("errors.tolerance", "none") == "all"
        self.schedule = RetrySchedule(int(config.get("errors.retry.timeout", 0)),
                                      int(config.get("errors.retry.delay.max.ms", 60000)))
        self.log_enable = bool(config.get("errors.log.enable", False))
        self.log_messages = bool(config.get("errors.log.include.messages", False))
        self.report = report
        self.clock_ms = clock_ms or (lambda: int(time.monotonic() * 1000))
        self.sleep = sleep
        self.stopping = stopping
        self.total_errors = 0
        self.total_skipped = 0
        self.total_retries = 0

    def retry(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``, retrying retriable errors on the schedule; the last error propagates."""
        started = self.clock_ms()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as e:
                if not is_retriable(e) or self.stopping():
                    raise
                delay = self.schedule.next_delay_ms(attempt, started, self.clock_ms())
                if delay is None:
                    raise
                self.total_retries += 1
                logger.debug("retriable error ({}), retry {} in {} ms", e, attempt, delay)
                self.sleep(delay / 1000)

    def execute(self, stage: str, fn: Callable[[], Any], ctx: ErrorContext | Callable, *,
                executing: str = "", raw_key: Any = None, raw_value: Any = None) -> Any:
        """``fn()``'s result, or :data:`SKIP` if it failed and the failure was tolerated.
        ``ctx``, ``raw_key`` and ``raw_value`` may be zero-argument callables, evaluated only
        on failure (they cost something per record)."""
        try:
            return fn()
        except Exception as first:
            if not is_retriable(first):
                error: Exception = first
            else:
                try:
                    return self.retry(fn)
                except Exception as e:
                    error = e
        self.handle(stage, error, ctx, executing=executing, raw_key=raw_key,
                    raw_value=raw_value)
        return _SKIP

    def handle(self, stage: str, error: BaseException, ctx: ErrorContext | Callable, *,
               executing: str = "", raw_key: Any = None, raw_value: Any = None) -> None:
        """A record failed for good: tolerate (log, report) or raise ToleranceExceededError."""
        self.total_errors += 1
        if not self.tolerate_all:
            raise ToleranceExceededError(stage, error) from error
        ctx = ctx() if callable(ctx) else ctx
        raw_key = raw_key() if callable(raw_key) else raw_key
        raw_value = raw_value() if callable(raw_value) else raw_value
        self.total_skipped += 1
        if self.log_enable:
            where = (f"{ctx.topic}/{ctx.partition}@{ctx.offset}" if ctx.offset >= 0
                     else ctx.source_partition or ctx.topic)
            extra = f" value={raw_value!r}" if self.log_messages else ""
            logger.warning("connector {} task {}: error in stage {} for {}: {}: {}{}",
                           ctx.connector, ctx.task_id, stage, where, type(error).__name__,
                           error, extra)
        if self.report is not None:
            self.report(ctx, stage, executing, error, raw_key, raw_value)


SKIP = _SKIP
