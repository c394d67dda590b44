"""Many records of one partition into the producer's batches at once (rillet.streams'
sinks: docs/streams.md "Repartitioning"). What ``Producer.send`` does per record, with the
per-call work (closed and transaction checks, the topic's partition count, the buffer
memory check) done once per call and the accumulator's lock taken once per batch instead
of once per record. Records keep their order; the batches are the ones ``send`` would
have filled (closed at ``batch.size``), so the sender and the broker see nothing new.

Internal to rillet (the Producer's API is ``send``): the caller gives bytes (or None) for
keys and values and an int timestamp per record, and the partition.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rillet._accumulator import ProducerBatch
from rillet._future import RecordFuture
from rillet._future import new_future as _new_future
from rillet._txn import IN_TRANSACTION as _IN_TRANSACTION
from rillet.errors import (
    MessageTooLargeError,
    ProducerClosedError,
    SerializationError,
    UnknownTopicOrPartitionError,
)
from rillet.logstore.batch import RECORD_OVERHEAD as _OVERHEAD
from rillet.logstore.batch import check_headers

_monotonic = time.monotonic


def _bytes(data: Any, what: str) -> bytes:
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise SerializationError(f"record {what} must be bytes or None, not "
                             f"{type(data).__name__}")


def send_many(producer: Any, topic: str, partition: int, keys: Sequence[bytes | None],
              values: Sequence[bytes | None], timestamps: Sequence[int],
              headers: Sequence[Any] | None = None,
              starts: list[int] | None = None) -> list[RecordFuture]:
    """Append the records ``zip(keys, values, timestamps[, headers])`` to ``partition`` of
    ``topic`` in order; returns one future per batch written to (that of its last record
    here), so a caller that checks them all sees every failed batch. ``starts``, if given,
    gets the index in each of those batches of its first record here (the mirror's offset
    syncs need the first record's offset too): batch k holds this call's records
    ``starts[k]`` to ``futures[k]``'s index."""
    if producer._closed:
        raise ProducerClosedError()
    txn = producer._txn
    if txn is not None and txn.tm.state is not _IN_TRANSACTION:
        txn.check_send()
    total = len(values)
    if not total:
        return []
    client = producer._client
    n = client.partition_counts.get(topic)
    if n is None:
        n = client.wait_for_topic(topic, producer._max_block_ms)
    if not 0 <= partition < n:
        raise UnknownTopicOrPartitionError(
            f"partition {partition} of topic {topic!r} does not exist ({n} partitions)")
    # sizes and checks before the lock, as send() does them before it
    max_request_size = producer._max_request_size
    sizes = []
    keyed = False
    checked_headers: list[Any] | None = [] if headers is not None else None
    keys, values = list(keys), list(values)
    for i in range(total):
        key, value = keys[i], values[i]
        size = _OVERHEAD
        if value is not None:
            if type(value) is not bytes:
                value = values[i] = _bytes(value, "value")
            if len(value) > max_request_size:
                raise MessageTooLargeError(f"record of {len(value)} bytes exceeds "
                                           f"max.request.size={max_request_size}")
            size += len(value)
        if key is not None:
            if type(key) is not bytes:
                key = keys[i] = _bytes(key, "key")
            size += len(key)
            keyed = True
        if checked_headers is not None:
            h = headers[i]  # type: ignore[index]
            if h:
                try:
                    h, hsize = check_headers(h)
                except (TypeError, ValueError) as exc:
                    raise SerializationError(str(exc)) from None
                size += hsize
            checked_headers.append(h or None)
        sizes.append(size)
    acc = producer._acc
    batch_size = producer._batch_size
    buffer_memory = producer._buffer_memory
    txn_added = None if txn is None else txn.tm.added
    tp = (topic, partition)
    futures = []
    i = 0
    while i < total:
        if acc.buffered_bytes >= buffer_memory:
            producer._wait_for_space()
        with acc.lock:
            batch = acc._open.get(tp)
            fresh = batch is None
            if fresh:
                batch = acc._open[tp] = ProducerBatch(topic, partition, acc.codec,
                                                      _monotonic() * 1000)
            size = batch.size
            start = len(batch.timestamps)
            if starts is not None:
                starts.append(start)
            j = i
            while j < total and size < batch_size:  # at least one record per batch
                size += sizes[j]
                j += 1
            batch.timestamps.extend(timestamps[i:j])
            batch.keys.extend(keys[i:j])
            batch.values.extend(values[i:j])
            if keyed:
                batch.keyed = True
            if checked_headers is not None:
                for k in range(i, j):
                    if checked_headers[k]:
                        if batch.headers is None:
                            batch.headers = {}
                        batch.headers[start + k - i] = checked_headers[k]
            batch.size = size
            full = size >= batch_size
            if full:
                del acc._open[tp]
                acc._ready.append(batch)
                batch.reserved = size
                acc.buffered_bytes += size
                acc.ready_bytes += size
        if (full and acc.ready_bytes >= acc.wake_bytes) or (fresh and (
                acc.sender_idle or (txn_added is not None and tp not in txn_added))):
            acc.wakeup.set()
        futures.append(_new_future((batch.completion, start + j - i - 1, timestamps[j - 1])))
        i = j
    return futures


__all__ = ["send_many"]
