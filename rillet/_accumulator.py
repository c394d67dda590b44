"""The record accumulator: per-partition batches between ``send()`` and the sender thread.

``send()`` threads append records to the open batch of their partition; a batch closes when it
reaches ``batch.size`` bytes (then it waits in the ready queue) or when it is drained after
``linger.ms``. The sender thread drains ready and expired batches, encodes them and sends them.
One lock guards the two structures; it is held only for a dict lookup and a column append per
record, never across I/O or encoding.

A :class:`ProducerBatch` keeps its records as columns and encodes them in
:meth:`ProducerBatch.seal` with ``logstore.batch_fast.encode_dense``, the fast encoder kept
beside the format's definition: exactly the bytes of ``logstore.batch.BatchBuilder`` (unit
tests check this byte for byte), several times cheaper than cbor2's item-by-item encoding.
Compressed batches go through ``BatchBuilder``.
"""

from __future__ import annotations

import struct
import threading
from collections import deque

from rillet._future import BatchCompletion
from rillet.logstore.batch import BATCH_OVERHEAD as _BATCH_OVERHEAD
from rillet.logstore.batch import (
    DIGEST_END,
    DIGEST_START,
    RECORD_OVERHEAD,
    TRANSACTIONAL_FLAG,
    BatchBuilder,
    Codec,
    check_headers,
    digest_at,
)
from rillet.logstore.batch_fast import encode_dense, with_producer


class ProducerBatch:
    """One partition batch on its way to the broker. Appended to under the accumulator's lock;
    after it closes only the sender thread touches it. ``data``: the encoded batch (set once,
    reused by retries)."""

    __slots__ = ("topic", "partition", "codec", "timestamps", "keys", "values", "headers",
                 "size", "completion", "created_ms", "attempts", "retry_at_ms", "data",
                 "record_count", "reserved", "solo", "keyed", "producer_id", "producer_epoch",
                 "base_sequence", "parts", "own", "transactional")

    def __init__(self, topic: str, partition: int, codec: Codec, now_ms: float) -> None:
        self.topic = topic
        self.partition = partition
        self.codec = codec
        self.timestamps: list[int] = []
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.headers: dict[int, list] | None = None  # record index -> headers (sparse)
        self.size = _BATCH_OVERHEAD  # estimated encoded size in bytes
        self.completion = BatchCompletion(topic, partition)
        self.created_ms = now_ms
        self.attempts = 0
        self.retry_at_ms = 0.0
        self.data: bytes | None = None
        self.record_count = 0
        self.reserved = 0  # bytes counted in the accumulator's buffered_bytes
        self.solo = False  # send without other batches of its partition (after a too-large)
        self.keyed = False  # some record has a key (else the keys column is all nulls)
        # idempotence: set by the sender right before the first seal (docs/replication.md)
        self.producer_id = -1
        self.producer_epoch = -1
        self.base_sequence = -1
        self.transactional = False  # set by a transactional producer's sender before seal
        # batches merged into this one before it was sent (absorb): (first index, batch,
        # reserved bytes); ``own`` keeps this batch's own columns in case it must split again
        self.parts: list[tuple[int, ProducerBatch, int]] | None = None
        self.own: tuple | None = None

    def absorb(self, other: ProducerBatch) -> None:
        """Take over the records of ``other``, the next unsent batch of the same partition: one
        record batch (one sequence range, one append) instead of two. ``other`` completes when
        this batch does, its offsets shifted by the records before it."""
        n = len(self.timestamps)
        if self.parts is None:
            self.parts = []
            self.own = (self.timestamps, self.keys, self.values, self.headers, self.keyed,
                        self.size)
            self.timestamps = list(self.timestamps)
            self.keys = list(self.keys)
            self.values = list(self.values)
            self.headers = dict(self.headers) if self.headers else None
        self.timestamps += other.timestamps
        self.keys += other.keys
        self.values += other.values
        if other.headers:
            if self.headers is None:
                self.headers = {}
            for i, h in other.headers.items():
                self.headers[n + i] = h
        self.keyed = self.keyed or other.keyed
        self.size += other.size - _BATCH_OVERHEAD
        self.parts.append((n, other, other.reserved))
        self.reserved += other.reserved
        other.reserved = 0

    def split(self) -> list[ProducerBatch]:
        """Undo :meth:`absorb` (the broker refused the merged batch as too large): this batch
        with its own records, then each absorbed one, in order, each sent on its own. With
        idempotence each keeps its share of the sequence range already assigned."""
        parts = self.parts or []
        self.timestamps, self.keys, self.values, self.headers, self.keyed, self.size = self.own
        self.parts = self.own = None
        self.data = None
        self.solo = True
        out = [self]
        for first, part, reserved in parts:
            self.reserved -= reserved
            part.reserved = reserved
            if self.base_sequence >= 0:
                part.producer_id, part.producer_epoch = self.producer_id, self.producer_epoch
                part.base_sequence = (self.base_sequence + first) & 0x7FFFFFFF
            part.attempts = self.attempts
            part.solo = True
            out.append(part)
        return out

    def append(self, timestamp: int, key: bytes | None, value: bytes | None, headers=()) -> int:
        """Add one record (key/value already bytes or None); returns its index."""
        index = len(self.timestamps)
        self.timestamps.append(timestamp)
        self.keys.append(key)
        self.values.append(value)
        size = RECORD_OVERHEAD + (len(value) if value is not None else 0)
        if key is not None:
            size += len(key)
            self.keyed = True
        if headers:
            size += self.add_headers(index, headers)
        self.size += size
        return index

    def add_headers(self, index: int, headers) -> int:
        """Validate and store the headers of record ``index``; returns their size estimate."""
        out, size = check_headers(headers)
        if out:
            if self.headers is None:
                self.headers = {}
            self.headers[index] = out
        return size

    def seal(self) -> bytes:
        """Encode once (the logstore.batch format); the columns are dropped afterwards."""
        if self.data is None:
            self.record_count = len(self.timestamps)
            if self.codec == Codec.NONE:
                self.data = encode_dense(self.timestamps, self.keys, self.values,
                                         self.headers, keyed=self.keyed,
                                         producer_id=self.producer_id,
                                         producer_epoch=self.producer_epoch,
                                         base_sequence=self.base_sequence,
                                         extra_attributes=TRANSACTIONAL_FLAG
                                         if self.transactional else 0)
            else:
                builder = BatchBuilder(self.codec)
                hdrs = self.headers or {}
                for i, (ts, k, v) in enumerate(zip(self.timestamps, self.keys, self.values,
                                                   strict=True)):
                    builder.append(ts, k, v, hdrs.get(i, ()))
                self.data = builder.build()
                if self.producer_id >= 0:
                    self.data = with_producer(self.data, self.producer_id,
                                              self.producer_epoch, self.base_sequence)
                if self.transactional:
                    self.data = mark_transactional(self.data)
            if self.parts is None:  # (a merged batch keeps them: it may have to split)
                self.timestamps = self.keys = self.values = None
                self.headers = None
        return self.data

    def fail(self, error: BaseException) -> None:
        self.completion.complete(-1, error)

    def __repr__(self) -> str:
        return f"<ProducerBatch {self.topic}-{self.partition} attempts={self.attempts}>"


_ATTRIBUTES = struct.Struct(">h")
_ATTRIBUTES_AT = DIGEST_END  # the attributes field follows the digest (logstore/batch.py)


def mark_transactional(data: bytes) -> bytes:
    """``data`` (one batch) with the transactional attribute bit set and its digest renewed.
    (Re-framing a copy costs about what a second blake3 pass costs: a few microseconds per
    16 KiB batch, once per batch.)"""
    buf = bytearray(data)
    (attributes,) = _ATTRIBUTES.unpack_from(buf, _ATTRIBUTES_AT)
    _ATTRIBUTES.pack_into(buf, _ATTRIBUTES_AT, attributes | TRANSACTIONAL_FLAG)
    with memoryview(buf) as mv:
        digest = digest_at(mv, 0, len(buf))
    buf[DIGEST_START:DIGEST_END] = digest
    return bytes(buf)


class RecordAccumulator:
    """Thread-safe: any thread appends; one sender thread drains.

    ``buffered_bytes`` counts closed-but-unacknowledged batches (estimated size) so that
    ``send()`` can block when ``buffer.memory`` is exhausted; the sender calls :meth:`release`
    when a batch is done. ``Producer.send`` inlines :meth:`append` (same logic).
    """

    def __init__(self, batch_size: int, linger_ms: int, codec: Codec = Codec.NONE) -> None:
        self.batch_size = batch_size
        self.linger_ms = linger_ms
        self.codec = codec
        self.lock = threading.Lock()
        self.wakeup = threading.Event()  # set when the sender has something to do
        # notified when bytes are released; shares the lock that guards buffered_bytes
        self.space = threading.Condition(self.lock)
        self.buffered_bytes = 0
        self.ready_bytes = 0  # closed batches not yet drained
        # set by the sender: wake it for a new batch only when idle, for a full batch only
        # once ready_bytes reaches wake_bytes (it coalesces while requests are in flight)
        self.sender_idle = True
        self.wake_bytes = 0
        # partitions the sender holds behind a request in flight (it coalesces): their new
        # batches would be held too, so they do not wake it either (the response does)
        self.held: set[tuple[str, int]] = set()
        self._open: dict[tuple[str, int], ProducerBatch] = {}
        self._ready: deque[ProducerBatch] = deque()

    def append(self, topic: str, partition: int, timestamp: int, key: bytes | None,
               value: bytes | None, headers, now_ms: float) -> tuple[ProducerBatch, int, bool]:
        """Add one record; returns (its batch, its index in the batch, whether the batch closed)."""
        tp = (topic, partition)
        with self.lock:
            batch = self._open.get(tp)
            fresh = batch is None
            if fresh:
                batch = self._open[tp] = ProducerBatch(topic, partition, self.codec, now_ms)
            index = batch.append(timestamp, key, value, headers)
            full = batch.size >= self.batch_size
            if full:
                del self._open[tp]
                self._ready.append(batch)
                batch.reserved = batch.size
                self.buffered_bytes += batch.size
                self.ready_bytes += batch.size
        if (full and self.ready_bytes >= self.wake_bytes) or (fresh and self.sender_idle and tp not in self.held):
            self.wakeup.set()
        return batch, index, full

    def drain(self, now_ms: float, flush: bool = False) -> list[ProducerBatch]:
        """Closed batches, plus open ones older than linger.ms (all of them if ``flush``)."""
        with self.lock:
            out = list(self._ready)
            self._ready.clear()
            self.ready_bytes = 0
            if self._open:
                linger = self.linger_ms
                for tp, batch in list(self._open.items()):
                    if flush or now_ms - batch.created_ms >= linger:
                        del self._open[tp]
                        out.append(batch)
                        batch.reserved = batch.size
                        self.buffered_bytes += batch.size
        return out

    def next_expiry_ms(self) -> float | None:
        """When the oldest open batch reaches linger.ms (None if no batch is open)."""
        with self.lock:
            if not self._open:
                return None
            return min(b.created_ms for b in self._open.values()) + self.linger_ms

    def partitions(self) -> set[tuple[str, int]]:
        """The partitions of the batches not drained yet (open or ready)."""
        with self.lock:
            out = set(self._open)
            out.update((b.topic, b.partition) for b in self._ready)
        return out

    def has_unsent(self) -> bool:
        return bool(self._ready or self._open)

    def release(self, nbytes: int) -> None:
        with self.space:
            self.buffered_bytes -= nbytes
            self.space.notify_all()

    def wait_for_space(self, limit: int, timeout_s: float) -> bool:
        with self.space:
            return self.space.wait_for(lambda: self.buffered_bytes < limit, timeout_s)

    def abort_all(self, error: BaseException) -> None:
        """Fail every batch not yet drained (used when the producer closes)."""
        with self.lock:
            batches = list(self._ready) + list(self._open.values())
            self._ready.clear()
            self._open.clear()
        for batch in batches:
            batch.fail(error)
