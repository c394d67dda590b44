"""Retries with exponential back-off, then a dead-letter topic, for ORDERED consumer groups.

A share group (:class:`rillet.ShareConsumer`) retries in the broker and never blocks a
partition. A plain consumer group keeps order instead: the record at the head of a partition
must be finished before the next one. This helper finishes it: it runs the handler, retries
it after ``retry.backoff.ms * retry.backoff.multiplier ** (attempt - 1)`` (capped by
``retry.backoff.max.ms``, plus a jitter of 0-20%, never earlier than the nominal value) up to
``max.attempts`` attempts in all, then writes the record to the dead-letter topic with the
same ``rillet.dlq.*`` headers as the broker's dead letters (docs/queues.md), and only then
returns, so the caller commits a record's offset only after it succeeded or was
dead-lettered::

    retrying = RetryingHandler(handle, producer, group_id="billing",
                               retry_backoff_ms=500, max_attempts=4)
    for tp, records in consumer.poll(timeout_ms=1000).items():
        for record in records:
            retrying.process(record)            # success or dead-lettered: never raises
                                                # for a handler error
        consumer.commit()

or ``run(consumer, handle, producer, group_id=...)`` for that loop. The back-off blocks the
partition (that is the point) and the polling thread: keep ``max.poll.interval.ms`` above
the worst case (:meth:`RetryPolicy.worst_case_ms`).

Threads: a RetryingHandler is used from the consumer's thread. Time is injectable
(``clock`` in seconds, ``sleep``, ``rng``) so tests run on a fake clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from rillet.errors import ConfigError, TopicAlreadyExistsError
from rillet.frozen import frozen

#: headers of a dead-letter record (the broker's share-group dead letters use the same)
DLQ_TOPIC = "rillet.dlq.topic"
DLQ_PARTITION = "rillet.dlq.partition"
DLQ_OFFSET = "rillet.dlq.offset"
DLQ_DELIVERY_COUNT = "rillet.dlq.delivery.count"
DLQ_GROUP = "rillet.dlq.group"
DLQ_REASON = "rillet.dlq.reason"
DLQ_HEADERS = (DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET, DLQ_DELIVERY_COUNT, DLQ_GROUP, DLQ_REASON)

JITTER = 0.2  # delays are stretched by a uniform [0, +20%]


@frozen
class RetryPolicy:
    """Kafka's names: ``retry_backoff_ms`` (first delay), ``retry_backoff_multiplier``,
    ``retry_backoff_max_ms`` (cap), ``max_attempts`` (handler calls in all, >= 1)."""

    retry_backoff_ms: int = 1000
    retry_backoff_multiplier: float = 2.0
    retry_backoff_max_ms: int = 60000
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.retry_backoff_ms < 0 or self.retry_backoff_max_ms < 0:
            raise ConfigError("retry.backoff.ms and retry.backoff.max.ms must be >= 0")
        if self.retry_backoff_multiplier < 1:
            raise ConfigError(f"retry.backoff.multiplier must be >= 1, got "
                              f"{self.retry_backoff_multiplier}")
        if self.max_attempts < 1:
            raise ConfigError(f"max.attempts must be >= 1, got {self.max_attempts}")

    def backoff_ms(self, attempt: int) -> float:
        """The nominal wait after failed attempt number ``attempt`` (1-based), no jitter."""
        raw = self.retry_backoff_ms * self.retry_backoff_multiplier ** (attempt - 1)
        return float(min(raw, self.retry_backoff_max_ms))

    def worst_case_ms(self) -> float:
        """Longest a record can block its partition in back-off waits (with jitter)."""
        return sum(self.backoff_ms(a) for a in range(1, self.max_attempts)) * (1 + JITTER)


@frozen
class Outcome:
    """What became of one record: ``dead_lettered`` False means the handler succeeded
    (``result`` is what it returned) after ``attempts`` calls."""

    attempts: int
    dead_lettered: bool = False
    reason: str | None = None
    result: Any = None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def dead_letter_headers(record: Any, *, group_id: str, delivery_count: int, reason: str
                        ) -> list[tuple[str, bytes]]:
    """The record's own headers followed by the ``rillet.dlq.*`` ones (any ``rillet.dlq.*``
    it already carried, from an earlier dead-lettering, are replaced)."""
    own = [(k, v) for k, v in (record.headers or ()) if k not in DLQ_HEADERS]
    return own + [(k, str(v).encode()) for k, v in (
        (DLQ_TOPIC, record.topic), (DLQ_PARTITION, record.partition),
        (DLQ_OFFSET, record.offset), (DLQ_DELIVERY_COUNT, delivery_count),
        (DLQ_GROUP, group_id), (DLQ_REASON, reason))]


class RetryingHandler:
    """Runs ``handler(record)`` with retries; dead-letters the record when they run out.

    ``producer``: a :class:`rillet.Producer` (acks=all recommended) used for the dead-letter
    write, which is waited for. ``dlq_topic``: a name, or a callable of the source topic
    (default ``"<topic>.dlq"``); a missing topic is created on first use (1 partition,
    replication factor ``dlq_replication_factor``) with ``admin`` or an Admin made from the
    producer's bootstrap servers. ``retriable(exc)``: False sends the record to the dead
    letters at once (default: every Exception is retried; BaseExceptions such as
    KeyboardInterrupt are never caught)."""

    def __init__(self, handler: Callable[[Any], Any], producer: Any, *, group_id: str,
                 dlq_topic: str | Callable[[str], str] | None = None,
                 retry_backoff_ms: int = 1000, retry_backoff_multiplier: float = 2.0,
                 retry_backoff_max_ms: int = 60000, max_attempts: int = 5,
                 retriable: Callable[[BaseException], bool] | None = None,
                 admin: Any = None, dlq_replication_factor: int | None = None,
                 dlq_timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        if not group_id:
            raise ConfigError("group_id is required (it goes into the rillet.dlq.group header)")
        self.handler = handler
        self.producer = producer
        self.group_id = group_id
        self.policy = RetryPolicy(retry_backoff_ms, retry_backoff_multiplier,
                                  retry_backoff_max_ms, max_attempts)
        self._dlq = dlq_topic
        self._retriable = retriable or (lambda exc: True)
        self._admin = admin
        self._own_admin = False
        self._rf = dlq_replication_factor
        self._dlq_timeout_s = dlq_timeout_s
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()
        self._known_topics: set[str] = set()
        self.dead_lettered = 0  # counters for the application's metrics
        self.retries = 0

    def dlq_topic_for(self, topic: str) -> str:
        d = self._dlq
        if d is None:
            return f"{topic}.dlq"
        return d(topic) if callable(d) else d

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt``, jitter included (seconds)."""
        nominal = self.policy.backoff_ms(attempt)
        return nominal * (1 + self._rng.uniform(0, JITTER)) / 1000

    def process(self, record: Any) -> Outcome:
        """Handle ``record``: returns after success or once its dead letter is durable.
        Raises only when the dead-letter write itself fails (then do NOT commit)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return Outcome(attempts=attempt, result=self.handler(record))
            except Exception as exc:  # noqa: BLE001 - the handler's failure is the input here
                last = exc
            if attempt >= self.policy.max_attempts or not self._retriable(last):
                break
            self.retries += 1
            deadline = self._clock() + self.delay_s(attempt)
            while (left := deadline - self._clock()) > 0:  # never earlier than the deadline
                self._sleep(left)
        reason = _reason(last)
        self.dead_letter(record, delivery_count=attempt, reason=reason)
        return Outcome(attempts=attempt, dead_lettered=True, reason=reason)

    def dead_letter(self, record: Any, *, delivery_count: int, reason: str) -> None:
        """Write ``record`` to its dead-letter topic and wait for the acknowledgement."""
        topic = self.dlq_topic_for(record.topic)
        self._ensure_topic(topic)
        future = self.producer.send(
            topic, value=record.value, key=record.key,
            headers=dead_letter_headers(record, group_id=self.group_id,
                                        delivery_count=delivery_count, reason=reason))
        self.producer.flush(self._dlq_timeout_s)
        future.get(self._dlq_timeout_s)
        self.dead_lettered += 1

    def _ensure_topic(self, topic: str) -> None:
        if topic in self._known_topics:
            return
        from rillet.records import NewTopic

        admin = self._admin
        if admin is None:
            from rillet.admin import Admin

            admin = self._admin = Admin(
                {"bootstrap.servers": ",".join(self.producer.config.bootstrap_servers)})
            self._own_admin = True
        if topic not in admin.list_topics():
            rf = self._rf or min(3, len(admin.describe_cluster().brokers))
            try:
                admin.create_topics([NewTopic(topic, 1, rf)])
            except TopicAlreadyExistsError:
                pass  # created meanwhile by someone else
        self._known_topics.add(topic)

    def close(self) -> None:
        if self._own_admin and self._admin is not None:
            self._admin.close()
            self._admin = None


def run(consumer: Any, handler: Callable[[Any], Any], producer: Any, *, group_id: str | None = None,
        stop: Callable[[], bool] = lambda: False, poll_timeout_ms: int = 1000,
        on_outcome: Callable[[Any, Outcome], None] | None = None, **options: Any) -> None:
    """Poll ``consumer`` (subscribed to a group) until ``stop()``: each record through a
    :class:`RetryingHandler`, then a synchronous commit of the poll's records (so an offset
    is committed only after its record succeeded or was dead-lettered)."""
    retrying = RetryingHandler(handler, producer, group_id=group_id or consumer.config.group_id,
                               **options)
    try:
        while not stop():
            batch = consumer.poll(timeout_ms=poll_timeout_ms)
            if not batch:
                continue
            offsets = {}
            for tp, records in batch.items():
                for record in records:
                    outcome = retrying.process(record)
                    if on_outcome is not None:
                        on_outcome(record, outcome)
                    offsets[tp] = record.offset + 1
            consumer.commit(offsets)
    finally:
        retrying.close()


__all__ = ["DLQ_HEADERS", "Outcome", "RetryPolicy", "RetryingHandler", "dead_letter_headers",
           "run"]
