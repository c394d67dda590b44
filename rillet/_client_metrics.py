"""Client metrics: what ``Producer.metrics()`` and ``Consumer.metrics()`` return
(docs/metrics.md "Client metrics").

The shape and names are kafka-python's: ``{group: {name: value}}`` with the groups
``producer-metrics`` and ``consumer-fetch-manager-metrics``. Counters are plain attributes
bumped by one thread each (the producer's sender thread; the consumer's poll thread, and
the network I/O thread for fetch latency), read racily by ``metrics()``: a snapshot may be
one event behind, never torn. Rates are averages since the client was created (``*-total``
divided by its age in seconds); Kafka's are over a 30 s window.
"""

from __future__ import annotations

import time


class _Timer:
    """Count, sum and max of latencies in ms."""

    __slots__ = ("count", "total_ms", "max_ms")

    def __init__(self) -> None:
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def observe(self, ms: float) -> None:
        self.count += 1
        self.total_ms += ms
        if ms > self.max_ms:
            self.max_ms = ms

    @property
    def avg_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0


class ProducerMetrics:
    """The producer's sender thread writes these; ``snapshot()`` reads them."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.requests = 0
        self.batches = 0
        self.batch_bytes = 0
        self.records_sent = 0
        self.bytes_sent = 0
        self.records_retried = 0
        self.records_errored = 0
        self.latency = _Timer()
        self.throttle = _Timer()  # throttle_time_ms of the responses (quotas)

    def sent(self, batches, size: int) -> None:
        """One Produce request carrying ``batches`` (``size`` bytes of records) went out."""
        self.requests += 1
        self.bytes_sent += size
        for b in batches:
            self.batches += 1
            self.batch_bytes += len(b.data) if b.data is not None else 0
            self.records_sent += b.record_count

    def retried(self, batch) -> None:
        self.records_retried += batch.record_count

    def failed(self, batch) -> None:
        self.records_errored += batch.record_count

    def snapshot(self) -> dict[str, dict[str, float]]:
        age = max(time.monotonic() - self.started, 1e-9)
        return {
            "producer-metrics": {
                "record-send-total": self.records_sent,
                "record-send-rate": self.records_sent / age,
                "record-retry-total": self.records_retried,
                "record-retry-rate": self.records_retried / age,
                "record-error-total": self.records_errored,
                "record-error-rate": self.records_errored / age,
                "request-total": self.requests,
                "request-rate": self.requests / age,
                "request-latency-avg": self.latency.avg_ms,
                "request-latency-max": self.latency.max_ms,
                "batch-size-avg": self.batch_bytes / self.batches if self.batches else 0.0,
                "records-per-request-avg": (
                    self.records_sent / self.requests if self.requests else 0.0
                ),
                "outgoing-byte-total": self.bytes_sent,
                "outgoing-byte-rate": self.bytes_sent / age,
                "produce-throttle-time-avg": self.throttle.avg_ms,
                "produce-throttle-time-max": self.throttle.max_ms,
            }
        }


class ConsumerMetrics:
    """Fetch counters (the poll thread) and latency (the I/O thread); lag is read from the
    partition states when ``snapshot`` is called."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.fetches = 0
        self.records_consumed = 0
        self.bytes_fetched = 0
        self.latency = _Timer()
        self.throttle = _Timer()  # throttle_time_ms of the responses (quotas)

    def snapshot(self, states) -> dict[str, dict[str, float]]:
        """``states``: the fetcher's {TopicPartition: PartitionState}."""
        age = max(time.monotonic() - self.started, 1e-9)
        lags = {}
        for tp, s in list(states.items()):
            if s.high_watermark is not None and s.position is not None:
                lags[f"{tp.topic}-{tp.partition}"] = max(s.high_watermark - s.position, 0)
        group = {
            "fetch-total": self.fetches,
            "fetch-rate": self.fetches / age,
            "fetch-latency-avg": self.latency.avg_ms,
            "fetch-latency-max": self.latency.max_ms,
            "records-consumed-total": self.records_consumed,
            "records-consumed-rate": self.records_consumed / age,
            "bytes-consumed-total": self.bytes_fetched,
            "bytes-consumed-rate": self.bytes_fetched / age,
            "records-lag-max": max(lags.values(), default=0),
            "fetch-throttle-time-avg": self.throttle.avg_ms,
            "fetch-throttle-time-max": self.throttle.max_ms,
        }
        out = {"consumer-fetch-manager-metrics": group}
        if lags:
            out["consumer-fetch-manager-metrics-by-partition"] = {
                f"{name}.records-lag": lag for name, lag in sorted(lags.items())
            }
        return out
