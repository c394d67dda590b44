"""The consumer (manual assignment): ``assign``, ``seek``, ``poll`` and iteration.

    consumer = Consumer({"bootstrap.servers": "127.0.0.1:9092", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("orders", 0)])
    for record in consumer:                       # or consumer.poll(timeout_ms=1000)
        print(record.offset, record.key, record.value)

Threads: a Consumer is used from one thread (like Kafka's); the endpoint's I/O thread owns
the sockets. Fetching is pipelined: when a fetch response arrives, the next fetch for those
partitions is sent before the records are decoded and handed out, so the broker works on the
next chunk while the application processes this one. Groups (``subscribe``, ``commit``) come
with the consumer-group protocol.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from rillet.config import consumer_config
from rillet.errors import (
    ConsumerClosedError,
    IllegalStateError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    RilletTimeoutError,
)
from rillet.fetcher import Fetcher, PartitionState
from rillet.network import NetworkClient
from rillet.records import ConsumerRecord, TopicPartition
from rillet.transport.protocol import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP


class Consumer:
    """Kafka-style consumer with manual partition assignment. Not thread-safe."""

    def __init__(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        cfg = consumer_config(config, kwargs)
        self.config = cfg
        self._client = NetworkClient(cfg, name="rillet-consumer")
        self._fetcher = Fetcher(self._client, cfg)
        self._states: dict[TopicPartition, PartitionState] = self._fetcher.states
        self._timeout_s = cfg.consumer_timeout_ms / 1000
        self._iter_records: Iterator[ConsumerRecord] = iter(())
        self._closed = False

    # -- assignment and positions ----------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Consume exactly these partitions (replaces any previous assignment)."""
        self._check_open()
        tps = [TopicPartition(*tp) for tp in partitions]
        for tp in tps:
            n = self._client.wait_for_topic(tp.topic, self.config.request_timeout_ms)
            if not 0 <= tp.partition < n:
                from rillet.errors import UnknownTopicOrPartitionError

                raise UnknownTopicOrPartitionError(
                    f"partition {tp.partition} of topic {tp.topic!r} does not exist "
                    f"({n} partitions)")
        self._fetcher.assign(tps)
        self._iter_records = iter(())

    def partitions_for_topic(self, topic: str) -> set[int]:
        """The partition numbers of ``topic`` (UnknownTopicOrPartitionError if none)."""
        n = self._client.wait_for_topic(topic, self.config.request_timeout_ms)
        return set(range(n))

    def assignment(self) -> set[TopicPartition]:
        return set(self._states)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """The next poll() returns records from ``offset`` of ``partition``."""
        self._state(partition).seek(int(offset))
        self._iter_records = iter(())

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self._seek_to(partitions, EARLIEST_TIMESTAMP)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        self._seek_to(partitions, LATEST_TIMESTAMP)

    def _seek_to(self, partitions: tuple[TopicPartition, ...], timestamp: int) -> None:
        tps = [TopicPartition(*tp) for tp in partitions] or list(self._states)
        for tp in tps:
            self._state(tp)
        for tp, offset in self._fetcher.list_offsets(tps, timestamp).items():
            self._states[tp].seek(offset)
        self._iter_records = iter(())

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record poll() returns (resolving auto.offset.reset)."""
        state = self._state(partition)
        if state.position is None:
            self._fetcher.reset_positions([TopicPartition(*partition)])
        return state.position

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """log_start_offset of each partition."""
        return self._fetcher.list_offsets([TopicPartition(*tp) for tp in partitions],
                                          EARLIEST_TIMESTAMP)

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """log_end_offset (the next offset to be written) of each partition."""
        return self._fetcher.list_offsets([TopicPartition(*tp) for tp in partitions],
                                          LATEST_TIMESTAMP)

    def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]
                          ) -> dict[TopicPartition, int | None]:
        """First offset whose timestamp >= the given ms (None if there is none)."""
        out: dict[TopicPartition, int | None] = {}
        for tp, ts in timestamps.items():
            off = self._fetcher.list_offsets([TopicPartition(*tp)], int(ts))
            value = off[TopicPartition(*tp)]
            out[TopicPartition(*tp)] = None if value < 0 else value
        return out

    def highwater(self, partition: TopicPartition) -> int | None:
        """The high watermark seen in the last fetch of ``partition`` (None before one)."""
        return self._state(partition).high_watermark

    def pause(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._state(tp).paused = True

    def resume(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._state(tp).paused = False

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, s in self._states.items() if s.paused}

    def _state(self, tp: TopicPartition | tuple[str, int]) -> PartitionState:
        self._check_open()
        state = self._states.get(TopicPartition(*tp))
        if state is None:
            raise IllegalStateError(f"partition {tp[0]}-{tp[1]} is not assigned to this consumer")
        return state

    # -- consuming -------------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0, max_records: int | None = None
             ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records fetched since the last call, at most ``max_records`` (default
        max.poll.records), waiting up to ``timeout_ms`` for some to arrive."""
        self._check_open()
        if not self._states:
            if timeout_ms:
                time.sleep(timeout_ms / 1000)
            return {}
        return self._fetcher.poll(timeout_ms / 1000, max_records or self.config.max_poll_records)

    def __iter__(self) -> Consumer:
        return self

    def __next__(self) -> ConsumerRecord:
        """The next record; StopIteration after consumer.timeout.ms without one."""
        try:
            return next(self._iter_records)
        except StopIteration:
            pass
        deadline = time.monotonic() + self._timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StopIteration
            batch = self.poll(int(min(left, 1.0) * 1000), self.config.max_poll_records)
            if batch:
                records = [r for recs in batch.values() for r in recs]
                self._iter_records = iter(records)
                return next(self._iter_records)

    def close(self) -> None:
        """Stop fetching and close the connections. Idempotent."""
        if not self._closed:
            self._closed = True
            self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ConsumerClosedError()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["Consumer", "NoOffsetForPartitionError", "OffsetOutOfRangeError", "RilletTimeoutError"]
