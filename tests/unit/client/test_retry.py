"""rillet.retry on a fake clock: back-off times (never early), attempts, dead letters with
the rillet.dlq.* headers, written before process() returns."""

from __future__ import annotations

import random

import pytest

from rillet.errors import ConfigError
from rillet.records import ConsumerRecord
from rillet.retry import DLQ_HEADERS, RetryingHandler, RetryPolicy, run


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


class _Future:
    def __init__(self, producer, i):
        self.producer, self.i = producer, i

    def get(self, timeout=None):
        if self.i >= self.producer.flushed:
            raise AssertionError("waited for a record that was never flushed")
        if self.producer.fail:
            raise RuntimeError("broker down")
        return None


class FakeProducer:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple] = []
        self.flushed = 0
        self.fail = fail

    def send(self, topic, value=None, key=None, headers=None):
        self.sent.append((topic, key, value, list(headers or ())))
        return _Future(self, len(self.sent) - 1)

    def flush(self, timeout=None):
        self.flushed = len(self.sent)


class FakeAdmin:
    def __init__(self, topics=()):
        self.topics = set(topics)
        self.created: list = []

    def list_topics(self):
        return sorted(self.topics)

    def describe_cluster(self):
        class D:
            brokers = (1, 2)
        return D()

    def create_topics(self, new):
        for t in new:
            self.created.append((t.name, t.num_partitions, t.replication_factor))
            self.topics.add(t.name)


def _record(offset=7, headers=(("trace", b"x"),)):
    return ConsumerRecord("orders", 2, offset, 0, b"k", b"v", headers)


UPSTREAM_503 = ValueError("503 from upstream")


def _handler(fail_times: int, exc=UPSTREAM_503):
    calls = []

    def handle(record):
        calls.append(record.offset)
        if len(calls) <= fail_times:
            raise exc
        return "ok"
    return handle, calls


def _retrying(handler, producer, clock, **kw):
    return RetryingHandler(handler, producer, group_id="billing", admin=FakeAdmin(["orders"]),
                           clock=clock, sleep=clock.sleep, rng=random.Random(1), **kw)


def test_success_after_retries_waits_the_backoff_and_never_early() -> None:
    clock, producer = FakeClock(), FakeProducer()
    handle, calls = _handler(fail_times=3)
    r = _retrying(handle, producer, clock, retry_backoff_ms=100, retry_backoff_multiplier=3,
                  retry_backoff_max_ms=500, max_attempts=5)
    start = clock.now
    out = r.process(_record())
    assert out.attempts == 4 and not out.dead_lettered and out.result == "ok"
    assert calls == [7, 7, 7, 7]
    assert producer.sent == []
    # waits after attempts 1, 2, 3: nominal 100, 300, 500 (900 capped to 500), +0..20% jitter
    assert len(clock.sleeps) == 3
    for waited, nominal in zip(clock.sleeps, (0.1, 0.3, 0.5), strict=True):
        assert nominal <= waited <= nominal * 1.2 + 1e-9
    assert clock.now - start >= 0.9
    assert r.retries == 3


def test_exhausted_attempts_dead_letter_with_headers_before_returning() -> None:
    clock, producer = FakeClock(), FakeProducer()
    handle, calls = _handler(fail_times=99)
    r = _retrying(handle, producer, clock, retry_backoff_ms=10, max_attempts=3)
    out = r.process(_record())
    assert out.dead_lettered and out.attempts == 3
    assert out.reason == "ValueError: 503 from upstream"
    assert len(calls) == 3
    assert producer.flushed == 1  # durable (flushed and acknowledged) before process returned
    topic, key, value, headers = producer.sent[0]
    assert (topic, key, value) == ("orders.dlq", b"k", b"v")
    h = dict(headers)
    assert h["trace"] == b"x"  # the record's own headers are kept
    assert {k: h[k] for k in DLQ_HEADERS} == {
        "rillet.dlq.topic": b"orders", "rillet.dlq.partition": b"2",
        "rillet.dlq.offset": b"7", "rillet.dlq.delivery.count": b"3",
        "rillet.dlq.group": b"billing", "rillet.dlq.reason": b"ValueError: 503 from upstream"}
    assert r._admin.created == [("orders.dlq", 1, 2)]  # created on first use
    r.process(_record(offset=8))
    assert r._admin.created == [("orders.dlq", 1, 2)]  # only once
    assert r.dead_lettered == 2


def test_non_retriable_errors_go_to_the_dlq_at_once() -> None:
    clock, producer = FakeClock(), FakeProducer()
    handle, calls = _handler(fail_times=99, exc=KeyError("bad"))
    r = _retrying(handle, producer, clock, max_attempts=5,
                  retriable=lambda exc: not isinstance(exc, KeyError), dlq_topic="errors")
    out = r.process(_record())
    assert out.dead_lettered and out.attempts == 1 and clock.sleeps == []
    assert producer.sent[0][0] == "errors"


def test_redead_lettering_replaces_old_dlq_headers() -> None:
    clock, producer = FakeClock(), FakeProducer()
    handle, _ = _handler(fail_times=99)
    r = _retrying(handle, producer, clock, max_attempts=1)
    rec = _record(headers=(("rillet.dlq.reason", b"old"), ("rillet.dlq.offset", b"1"),
                           ("a", b"1")))
    r.process(rec)
    names = [k for k, _ in producer.sent[0][3]]
    assert names.count("rillet.dlq.reason") == 1 and names.count("rillet.dlq.offset") == 1
    assert dict(producer.sent[0][3])["rillet.dlq.offset"] == b"7"


def test_a_failed_dlq_write_raises_so_the_caller_does_not_commit() -> None:
    clock, producer = FakeClock(), FakeProducer(fail=True)
    handle, _ = _handler(fail_times=99)
    r = _retrying(handle, producer, clock, max_attempts=2, retry_backoff_ms=1)
    with pytest.raises(RuntimeError, match="broker down"):
        r.process(_record())


def test_a_spurious_early_wakeup_sleeps_again() -> None:
    clock, producer = FakeClock(), FakeProducer()
    woke = []

    def short_sleep(s):  # wakes after at most 0.3 s, whatever was asked
        woke.append(s)
        clock.now += min(s, 0.3)

    handle, calls = _handler(fail_times=1)
    r = RetryingHandler(handle, producer, group_id="g", admin=FakeAdmin(), clock=clock,
                        sleep=short_sleep, rng=random.Random(2), retry_backoff_ms=1000)
    start = clock.now
    r.process(_record())
    assert len(woke) > 1 and clock.now - start >= 1.0


def test_policy_validation_and_worst_case() -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigError):
        RetryPolicy(retry_backoff_multiplier=0.5)
    with pytest.raises(ConfigError):
        RetryPolicy(retry_backoff_ms=-1)
    p = RetryPolicy(retry_backoff_ms=100, retry_backoff_multiplier=2, retry_backoff_max_ms=300,
                    max_attempts=4)
    assert [p.backoff_ms(a) for a in (1, 2, 3, 4)] == [100, 200, 300, 300]
    assert p.worst_case_ms() == pytest.approx((100 + 200 + 300) * 1.2)
    with pytest.raises(ConfigError):
        RetryingHandler(lambda r: None, FakeProducer(), group_id="")


def test_run_commits_only_after_success_or_dead_letter() -> None:
    clock, producer = FakeClock(), FakeProducer()
    events: list = []

    class Consumer:
        class config:
            group_id = "g"

        polls = [{("orders", 2): [_record(1), _record(2)]}, {}]

        def poll(self, timeout_ms):
            return self.polls.pop(0) if self.polls else {}

        def commit(self, offsets):
            events.append(("commit", dict(offsets), len(producer.sent)))

    def handle(record):
        events.append(("handle", record.offset))
        if record.offset == 2:
            raise ValueError("boom")

    consumer = Consumer()
    run(consumer, handle, producer, stop=lambda: not consumer.polls, max_attempts=2,
        retry_backoff_ms=1, admin=FakeAdmin(), clock=clock, sleep=clock.sleep)
    assert events == [("handle", 1), ("handle", 2), ("handle", 2),
                      ("commit", {("orders", 2): 3}, 1)]
