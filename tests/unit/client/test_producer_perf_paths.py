"""The producer's and consumer's fast paths keep the public semantics (fake broker)."""

from __future__ import annotations

import time

import pytest

from rillet import Consumer, Producer, TopicPartition

pytestmark = pytest.mark.timeout(30)


def test_default_timestamps_are_the_send_time_in_ms(broker) -> None:
    """send() reads the clock per record; the cached millisecond must never be stale."""
    broker.create("t", 1)
    with Producer(bootstrap_servers=broker.address, linger_ms=1) as p:
        spans = []
        for i in range(400):
            before = time.time_ns() // 1_000_000
            fut = p.send("t", b"%d" % i)
            after = time.time_ns() // 1_000_000
            spans.append((before, fut, after))
            if i % 50 == 0:
                time.sleep(0.0015)  # cross millisecond boundaries
        p.flush(10)
    stamps = []
    for before, fut, after in spans:
        md = fut.get(0)
        assert before <= md.timestamp <= after
        stamps.append(md.timestamp)
    assert len(set(stamps)) > 5
    with Consumer(bootstrap_servers=broker.address, auto_offset_reset="earliest",
                  consumer_timeout_ms=300) as c:
        c.assign([TopicPartition("t", 0)])
        assert [r.timestamp for r in c] == stamps


def test_tombstones_and_keys_round_trip_through_both_decoders(broker) -> None:
    broker.create("t", 1)
    sent = [(None, b"v" * 30), (b"k", None), (None, None), (b"kk", b"w" * 30)] * 50
    sent += [(None, b"u" * 100)] * 300  # the fast shape
    with Producer(bootstrap_servers=broker.address, linger_ms=20) as p:
        for key, value in sent:
            p.send("t", value, key=key)
        p.flush(10)
    with Consumer(bootstrap_servers=broker.address, auto_offset_reset="earliest",
                  consumer_timeout_ms=300) as c:
        c.assign([TopicPartition("t", 0)])
        got = [(r.key, r.value) for r in c]
    assert got == sent


def test_batch_completion_wakes_waiters_whether_they_came_before_or_after() -> None:
    import threading

    from rillet._future import BatchCompletion, RecordFuture

    comp = BatchCompletion("t", 0)
    assert comp.wait(0.01) is False  # nothing yet: times out
    results = []
    threads = [threading.Thread(target=lambda: results.append(comp.wait(10))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    comp.complete(10, None)
    for t in threads:
        t.join(10)
    assert results == [True] * 4
    assert comp.wait(0) is True
    assert RecordFuture((comp, 2, 7)).get(0).offset == 12
