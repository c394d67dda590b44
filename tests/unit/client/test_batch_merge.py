"""ProducerBatch.absorb merges the next unsent batches of a partition into one record batch;
split undoes it with the sequences already assigned; the sender completes every part."""

from __future__ import annotations

from rillet.logstore.batch import decode_records, read_header

from rillet._accumulator import ProducerBatch, RecordAccumulator
from rillet._sender import Sender


def _batch(records, created: float) -> ProducerBatch:
    b = ProducerBatch("t", 0, codec=0, now_ms=created)
    for ts, key, value, headers in records:
        b.append(ts, key, value, headers)
    b.reserved = b.size
    return b


PARTS = [
    [(1, None, b"a", ()), (2, b"k", None, [("h", b"1")])],
    [(3, None, b"c", ())],
    [(4, b"", b"d", [("x", None)]), (5, None, b"", ())],
]


def _records(data: bytes):
    return [(r.timestamp, r.key, r.value, list(r.headers)) for r in decode_records(data)]


def test_absorbed_batches_encode_as_one_batch_in_order() -> None:
    head, *rest = [_batch(p, i) for i, p in enumerate(PARTS)]
    reserved = head.reserved + sum(b.reserved for b in rest)
    for b in rest:
        head.absorb(b)
    assert head.reserved == reserved and all(b.reserved == 0 for b in rest)
    data = head.seal()
    assert head.record_count == 5
    expected = [(ts, k, v, list(h)) for p in PARTS for ts, k, v, h in p]
    assert _records(data) == expected
    assert len(data) <= head.size + 16  # the size estimate still bounds the encoding


def test_split_restores_each_batch_with_its_share_of_the_sequence_range() -> None:
    head, *rest = [_batch(p, i) for i, p in enumerate(PARTS)]
    sizes = [head.reserved] + [b.reserved for b in rest]
    for b in rest:
        head.absorb(b)
    head.producer_id, head.producer_epoch, head.base_sequence = 7, 0, 100
    head.seal()
    head.attempts = 1
    parts = head.split()
    assert parts[0] is head and parts[1:] == rest
    assert [p.reserved for p in parts] == sizes
    assert all(p.solo and p.attempts == 1 for p in parts)
    sealed = [p.seal() for p in parts]
    assert [read_header(d).base_sequence for d in sealed] == [100, 102, 103]
    assert [read_header(d).producer_id for d in sealed] == [7, 7, 7]
    assert [_records(d) for d in sealed] == [
        [(ts, k, v, list(h)) for ts, k, v, h in p] for p in PARTS
    ]


def test_the_sender_completes_absorbed_batches_with_shifted_offsets() -> None:
    acc = RecordAccumulator(batch_size=16384, linger_ms=0)
    sender = Sender(
        client=object(), accumulator=acc, acks=1, retries=0, retry_backoff_ms=100,
        retry_backoff_max_ms=1000, delivery_timeout_ms=120000, request_timeout_ms=30000,
        max_in_flight=5, max_request_size=1 << 20, on_batch_drained=lambda b: None, name="t",
    )
    head, *rest = [_batch(p, i) for i, p in enumerate(PARTS)]
    acc.buffered_bytes = sum(b.reserved for b in [head, *rest])
    sender.incomplete.update([head, *rest])
    for b in rest:
        head.absorb(b)
    sender._finish(head, 40, None)
    assert [b.completion.base_offset for b in (head, *rest)] == [40, 42, 43]
    assert not sender.incomplete and acc.buffered_bytes == 0
    failed = [_batch(p, i) for i, p in enumerate(PARTS)]
    for b in failed[1:]:
        failed[0].absorb(b)
    error = RuntimeError("boom")
    sender._finish(failed[0], -1, error)
    assert all(b.completion.error is error and b.completion.base_offset == -1 for b in failed)


def test_a_partition_whose_batch_overflows_the_request_is_not_sent_empty() -> None:
    """The batch of the second partition does not fit in max.request.size: it waits for the
    next request, and this one names only the partitions it carries (an empty entry was
    refused by the broker: CORRUPT_MESSAGE, no record batch)."""
    from concurrent.futures import Future

    sent = []

    class Client:
        def request(self, address, req, timeout_ms):
            sent.append(req)
            return Future()

    acc = RecordAccumulator(batch_size=16384, linger_ms=0)
    first = _batch(PARTS[0], 0)
    sender = Sender(
        client=Client(), accumulator=acc, acks=1, retries=0, retry_backoff_ms=100,
        retry_backoff_max_ms=1000, delivery_timeout_ms=120000, request_timeout_ms=30000,
        max_in_flight=5, max_request_size=len(first.seal()) + 1, on_batch_drained=lambda b: None,
        name="t",
    )
    second = ProducerBatch("t", 1, codec=0, now_ms=0)
    second.append(1, None, b"x" * 64, ())
    sender._send_to("a", [first, second])
    (req,) = sent
    assert [(t.name, [p.partition for p in t.partitions]) for t in req.topics] == [("t", [0])]
    assert all(p.records for t in req.topics for p in t.partitions)
    assert list(sender.waiting_overflow) == [second]
