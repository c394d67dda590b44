"""The record accumulator: per-partition batches between ``send()`` and the I/O thread.

``send()`` threads append records to the open batch of their partition; a batch closes when it
reaches ``batch.size`` bytes (then it waits in the ready queue) or when it is drained after
``linger.ms``. The producer's I/O thread drains ready and expired batches, encodes them and
sends them. One lock guards the two structures; it is held only for a dict lookup and a column
append per record, never across I/O or encoding.
"""

from __future__ import annotations

import threading
from collections import deque

from rillet.future import BatchCompletion
from rillet.logstore.batch import BatchBuilder, Codec


class ProducerBatch:
    """One partition batch on its way to the broker. After it closes only the I/O thread
    touches it. ``data`` is the encoded batch (set once, reused by retries)."""

    __slots__ = ("topic", "partition", "builder", "completion", "created_ms", "attempts",
                 "retry_at_ms", "data", "record_count", "size", "reserved")

    def __init__(self, topic: str, partition: int, codec: Codec, now_ms: float) -> None:
        self.topic = topic
        self.partition = partition
        self.builder: BatchBuilder | None = BatchBuilder(codec)
        self.completion = BatchCompletion(topic, partition)
        self.created_ms = now_ms
        self.attempts = 0
        self.retry_at_ms = 0.0
        self.data: bytes | None = None
        self.record_count = 0
        self.size = 0
        self.reserved = 0  # bytes counted in the accumulator's buffered_bytes

    def seal(self) -> bytes:
        """Encode once; the builder's columns are dropped afterwards."""
        if self.data is None:
            builder = self.builder
            self.record_count = builder.record_count
            self.data = builder.build()
            self.size = len(self.data)
            self.builder = None
        return self.data

    def fail(self, error: BaseException) -> None:
        self.completion.complete(-1, error)

    def __repr__(self) -> str:
        return f"<ProducerBatch {self.topic}-{self.partition} attempts={self.attempts}>"


class RecordAccumulator:
    """Thread-safe: any thread appends; one I/O thread drains.

    ``buffered_bytes`` counts closed-but-unacknowledged batches (estimated size) so that
    ``send()`` can block when ``buffer.memory`` is exhausted; the I/O thread calls
    :meth:`release` when a batch is done.
    """

    def __init__(self, batch_size: int, linger_ms: int, codec: Codec = Codec.NONE) -> None:
        self.batch_size = batch_size
        self.linger_ms = linger_ms
        self.codec = codec
        self.lock = threading.Lock()
        self.wakeup = threading.Event()  # set when a batch is ready (the I/O thread waits on it)
        # notified when bytes are released; shares the lock that guards buffered_bytes
        self.space = threading.Condition(self.lock)
        self.buffered_bytes = 0
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
            builder = batch.builder
            index = builder.append(timestamp, key, value, headers)
            full = builder.size_in_bytes >= self.batch_size
            if full:
                del self._open[tp]
                self._ready.append(batch)
                batch.reserved = builder.size_in_bytes
                self.buffered_bytes += batch.reserved
        if full or fresh:  # full: send it; fresh: the I/O thread must arm the linger timer
            self.wakeup.set()
        return batch, index, full

    def drain(self, now_ms: float, flush: bool = False) -> list[ProducerBatch]:
        """Closed batches, plus open ones older than linger.ms (all of them if ``flush``)."""
        with self.lock:
            out = list(self._ready)
            self._ready.clear()
            if self._open:
                linger = self.linger_ms
                for tp, batch in list(self._open.items()):
                    if flush or now_ms - batch.created_ms >= linger:
                        del self._open[tp]
                        out.append(batch)
                        batch.reserved = batch.builder.size_in_bytes
                        self.buffered_bytes += batch.reserved
        return out

    def next_expiry_ms(self) -> float | None:
        """When the oldest open batch reaches linger.ms (None if no batch is open)."""
        with self.lock:
            if not self._open:
                return None
            return min(b.created_ms for b in self._open.values()) + self.linger_ms

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
        """Fail every batch not yet drained (used by close(timeout=0))."""
        with self.lock:
            batches = list(self._ready) + list(self._open.values())
            self._ready.clear()
            self._open.clear()
        for batch in batches:
            batch.fail(error)
