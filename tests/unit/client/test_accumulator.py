"""The accumulator batches per partition by batch.size and linger.ms; futures share a batch."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.logstore.batch import BatchBuilder, Codec, decode_records

from rillet._accumulator import ProducerBatch, RecordAccumulator
from rillet._future import RecordFuture
from rillet.errors import NotLeaderOrFollowerError, RilletTimeoutError
from rillet.records import RecordMetadata


def test_batches_close_at_batch_size_and_keep_order() -> None:
    acc = RecordAccumulator(batch_size=1000, linger_ms=5)
    closed = []
    for i in range(30):
        batch, index, full = acc.append("t", 0, 1000 + i, None, b"x" * 100, (), now_ms=0)
        if full:
            closed.append(batch)
    assert closed, "100-byte records must fill a 1000-byte batch"
    assert acc.wakeup.is_set()
    drained = acc.drain(now_ms=1)  # linger not expired: only closed batches
    assert drained == closed
    rest = acc.drain(now_ms=5)
    assert len(rest) == 1
    counts = [len(decode_records(b.seal())) for b in drained + rest]
    assert sum(counts) == 30 and all(c <= 10 for c in counts)
    timestamps = [r.timestamp for b in drained + rest for r in decode_records(b.data)]
    assert timestamps == [1000 + i for i in range(30)]


def test_linger_and_flush() -> None:
    acc = RecordAccumulator(batch_size=16384, linger_ms=50)
    acc.append("t", 0, 1, b"k", b"v", (), now_ms=100)
    acc.append("t", 1, 1, None, b"v", [("h", b"1")], now_ms=120)
    assert acc.next_expiry_ms() == 150
    assert acc.drain(now_ms=149) == []
    assert [b.partition for b in acc.drain(now_ms=150)] == [0]
    assert [b.partition for b in acc.drain(now_ms=151, flush=True)] == [1]
    assert not acc.has_unsent()


def test_buffered_bytes_are_reserved_and_released() -> None:
    acc = RecordAccumulator(batch_size=16384, linger_ms=0)
    acc.append("t", 0, 1, None, b"v" * 1000, (), now_ms=0)
    (batch,) = acc.drain(now_ms=0)
    assert acc.buffered_bytes == batch.reserved > 1000
    assert not acc.wait_for_space(limit=1000, timeout_s=0.01)
    acc.release(batch.reserved)
    assert acc.buffered_bytes == 0 and acc.wait_for_space(limit=1000, timeout_s=0.01)


def test_futures_share_the_batch_completion() -> None:
    acc = RecordAccumulator(batch_size=16384, linger_ms=0)
    futs = []
    for i in range(3):
        batch, index, _ = acc.append("t", 2, 50 + i, None, b"v", (), now_ms=0)
        futs.append(RecordFuture((batch.completion, index, 50 + i)))
    assert not futs[0].done()
    with pytest.raises(RilletTimeoutError):
        futs[0].get(timeout=0.01)
    seen = []
    futs[1].add_done_callback(lambda f: seen.append(f.get()))
    batch.completion.add_callback(2, 52, lambda err, md: seen.append((err, md)), False)
    threading.Thread(target=batch.completion.complete, args=(40, None)).start()
    assert futs[2].get(timeout=5) == RecordMetadata("t", 2, 42, 52)
    assert futs[0].result(1) == RecordMetadata("t", 2, 40, 50) and futs[0].succeeded()
    assert seen == [RecordMetadata("t", 2, 41, 51), (None, RecordMetadata("t", 2, 42, 52))]
    late = []
    futs[0].add_done_callback(late.append)  # already done: runs at once
    assert late and late[0].done()


def test_failed_batch_raises_for_every_record() -> None:
    acc = RecordAccumulator(batch_size=16384, linger_ms=0)
    batch, index, _ = acc.append("t", 0, 1, None, b"v", (), now_ms=0)
    fut = RecordFuture((batch.completion, index, 1))
    errors = []
    batch.completion.add_callback(index, 1, lambda err, md: errors.append((err, md)), False)
    batch.fail(NotLeaderOrFollowerError())
    with pytest.raises(NotLeaderOrFollowerError):
        fut.get(1)
    assert fut.failed() and isinstance(fut.exception(), NotLeaderOrFollowerError)
    assert errors and errors[0][1] is None


record = st.tuples(
    st.integers(0, 2**41),
    st.none() | st.binary(max_size=20),
    st.none() | st.binary(max_size=300),
    st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=5)), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(record, min_size=1, max_size=300), st.booleans())
def test_producer_batch_bytes_equal_the_logstore_builder(records, close_timestamps) -> None:
    """ProducerBatch's fast encoder writes exactly what logstore.batch.BatchBuilder writes."""
    if close_timestamps:  # the fast path: deltas below 24 ms
        records = [(records[0][0] + (r[0] % 24), *r[1:]) for r in records]
    ours = ProducerBatch("t", 0, Codec.NONE, 0)
    ref = BatchBuilder(Codec.NONE)
    for ts, key, value, headers in records:
        ours.append(ts, key, value, headers)
        ref.append(ts, key, value, headers)
    assert ours.seal() == ref.build()
    assert ours.record_count == len(records)


def test_compressed_batches_use_the_builder() -> None:
    b = ProducerBatch("t", 0, Codec.GZIP, 0)
    b.append(5, b"k", b"v" * 100, [("h", b"1")])
    (rec,) = decode_records(b.seal())
    assert (rec.key, rec.value, rec.headers) == (b"k", b"v" * 100, (("h", b"1"),))
