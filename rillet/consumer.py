"""The consumer (manual assignment): ``assign``, ``seek``, ``poll`` and iteration.

    consumer = Consumer({"bootstrap.servers": "127.0.0.1:9092", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("orders", 0)])
    for record in consumer:                       # or consumer.poll(timeout_ms=1000)
        print(record.offset, record.key, record.value)

Threads: a Consumer is used from one thread (like Kafka's); the endpoint's I/O thread owns
the sockets. Fetching is pipelined: when a fetch response arrives, the next fetch for those
partitions is sent before the records are decoded and handed out, so the broker works on the
next chunk while the application processes this one.

Groups: ``subscribe(topics or pattern, listener=...)`` joins ``group.id`` (membership and
reconciliation in :mod:`rillet._membership`; heartbeats from a background thread); ``commit()``,
``commit_async()``, ``committed()``; enable.auto.commit commits what poll() returned, every
auto.commit.interval.ms, before revoking and on close. See docs/consumer-groups.md.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rillet._fetcher import Fetcher, PartitionState
from rillet._membership import (
    ConsumerRebalanceListener,
    CoordinatorLocator,
    Membership,
    OffsetsClient,
)
from rillet._network import NetworkClient
from rillet.config import consumer_config
from rillet.errors import (
    ConsumerClosedError,
    IllegalStateError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    RilletError,
    RilletTimeoutError,
)
from rillet.records import ConsumerGroupMetadata, ConsumerRecord, TopicPartition
from rillet.transport.protocol import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP


class Consumer:
    """Kafka-style consumer with manual partition assignment. Not thread-safe."""

    def __init__(self, config: Mapping[str, Any] | str | None = None, *topics: str,
                 **kwargs: Any) -> None:
        if isinstance(config, str):  # kafka-python: KafkaConsumer("topic", ..., group_id=...)
            config, topics = None, (config, *topics)
        cfg = consumer_config(config, kwargs)
        self.config = cfg
        self._client = NetworkClient(cfg, name="rillet-consumer")
        self._fetcher = Fetcher(self._client, cfg)
        self._states: dict[TopicPartition, PartitionState] = self._fetcher.states
        self._timeout_s = cfg.consumer_timeout_ms / 1000
        self._iter_records: Iterator[ConsumerRecord] = iter(())
        self._closed = False
        self._membership: Membership | None = None
        self._offsets: OffsetsClient | None = None
        self._commit_pool: ThreadPoolExecutor | None = None
        self._commit_done: deque = deque()
        self._next_auto_commit = 0.0
        if topics:
            self.subscribe(list(topics))

    # -- assignment and positions ----------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Consume exactly these partitions (replaces any previous assignment)."""
        self._check_open()
        if self._membership is not None:
            raise IllegalStateError("assign() while subscribed: call unsubscribe() first")
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

    def metrics(self) -> dict[str, dict[str, float]]:
        """kafka-python's ``{group: {name: value}}``: fetch rate and latency (ms), records
        and bytes consumed, records-lag-max (and per partition); docs/metrics.md."""
        return self._fetcher.metrics.snapshot(self._states)

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
        max_records = max_records or self.config.max_poll_records
        if self._membership is not None:
            return self._group_poll(timeout_ms / 1000, max_records)
        self._run_commit_callbacks()
        if not self._states:
            if timeout_ms:
                time.sleep(timeout_ms / 1000)
            return {}
        return self._fetcher.poll(timeout_ms / 1000, max_records)

    # -- groups ----------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] | str | re.Pattern | None = None, *,
                  pattern: str | re.Pattern | None = None,
                  listener: ConsumerRebalanceListener | None = None) -> None:
        """Join ``group.id`` for these topic names, or for every topic whose name matches
        ``pattern`` (a regex, fullmatch; also accepted as ``topics``). The coordinator assigns
        the partitions; ``listener`` hears about revocations and assignments (in poll())."""
        self._check_open()
        if isinstance(topics, re.Pattern):
            topics, pattern = None, topics
        if isinstance(pattern, re.Pattern):
            pattern = pattern.pattern
        names = (topics,) if isinstance(topics, str) else tuple(topics or ())
        if (not names) == (pattern is None):
            raise IllegalStateError("subscribe() needs topic names or a pattern (not both)")
        if self._membership is not None:
            self.unsubscribe()
        if self._states:
            raise IllegalStateError("subscribe() after assign(): call assign([]) first")
        self._client.fail_fast_if_unreachable()  # the group runs in the background
        self._membership = Membership(self._client, self.config,
                                      topics=tuple(sorted(set(names))) if names else None,
                                      regex=pattern, listener=listener)
        self._offsets = OffsetsClient(self._membership.locator, self.config)
        self._next_auto_commit = time.monotonic() + self.config.auto_commit_interval_ms / 1000

    def subscription(self) -> set[str] | str | None:
        m = self._membership
        return None if m is None else (m.regex if m.regex is not None else set(m.topics))

    def unsubscribe(self) -> None:
        """Give up every partition (committing first with enable.auto.commit) and leave."""
        m = self._membership
        if m is None:
            return
        owned = set(self._states)
        if owned:
            if self.config.enable_auto_commit:
                try:
                    self._commit_positions(owned)
                except RilletError:
                    pass
            m._callback(m.listener.on_partitions_revoked, owned)
            self._drop_partitions(owned)
        with m._lock:
            m.owned = set()
        m.close()
        self._membership = None

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit synchronously: ``offsets`` (next offset to read, per partition), or the
        positions of every assigned partition (what poll() returned so far)."""
        self._check_open()
        todo = self._positions() if offsets is None else {
            TopicPartition(*tp): int(o) for tp, o in offsets.items()}
        self._wait_async_commits()
        self._offsets_client().commit(todo, *self._commit_identity())

    def _wait_async_commits(self) -> None:
        """Commits land in call order: a sync commit waits for the async ones before it."""
        if self._commit_pool is not None:
            self._commit_pool.submit(lambda: None).result()

    def commit_async(self, offsets: Mapping[TopicPartition, int] | None = None,
                     callback: Callable[[dict, BaseException | None], None] | None = None
                     ) -> None:
        """Like commit() in the background; ``callback(offsets, error)`` runs in a later poll()."""
        self._check_open()
        todo = self._positions() if offsets is None else {
            TopicPartition(*tp): int(o) for tp, o in offsets.items()}
        client, identity = self._offsets_client(), self._commit_identity()
        if self._commit_pool is None:
            self._commit_pool = ThreadPoolExecutor(1, thread_name_prefix="rillet-commit")

        def run() -> None:
            error = None
            try:
                client.commit(todo, *identity)
            except Exception as exc:  # noqa: BLE001 - reported to the callback
                error = exc
            self._commit_done.append((callback, todo, error))

        self._commit_pool.submit(run)

    def topics(self) -> set[str]:
        """kafka-python: the names of the topics this consumer may read (fresh metadata)."""
        self._check_open()
        return set(self._client.refresh_metadata(None).partition_counts)

    def committed(self, partitions: Iterable[TopicPartition] | TopicPartition
                  ) -> dict[TopicPartition, int | None] | int | None:
        """The committed offset of each partition (None: nothing committed); given one
        TopicPartition (kafka-python's form), that partition's offset alone."""
        self._check_open()
        if isinstance(partitions, TopicPartition):
            return self._offsets_client().committed([partitions])[partitions]
        return self._offsets_client().committed(partitions)

    def group_metadata(self) -> ConsumerGroupMetadata:
        """This consumer's group id, generation (member epoch) and member id, for
        ``Producer.send_offsets_to_transaction`` (KIP-447). Without a subscription the
        generation is -1 and the member id "" (the coordinator then skips the check)."""
        self._check_open()
        if not self.config.group_id:
            raise IllegalStateError("group_metadata() needs group.id in the consumer config")
        m = self._membership
        if m is None:
            return ConsumerGroupMetadata(self.config.group_id,
                                         group_instance_id=self.config.group_instance_id)
        member_id, epoch = m.commit_identity()
        return ConsumerGroupMetadata(self.config.group_id, generation_id=epoch,
                                     member_id=member_id, group_instance_id=m.instance_id)

    def _offsets_client(self) -> OffsetsClient:
        if self._offsets is None:
            if not self.config.group_id:
                raise IllegalStateError("committing needs group.id in the consumer config")
            locator = CoordinatorLocator(self._client, self.config.group_id,
                                         self.config.retry_backoff_ms / 1000)
            self._offsets = OffsetsClient(locator, self.config)
        return self._offsets

    def _commit_identity(self) -> tuple:
        m = self._membership
        return (None, None) if m is None else (m.commit_identity, m.instance_id)

    def _positions(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        states = self._states
        return {tp: states[tp].position for tp in (states if tps is None else tps)
                if tp in states and states[tp].position is not None}

    def _commit_positions(self, tps: Iterable[TopicPartition]) -> None:
        self._wait_async_commits()
        self._offsets_client().commit(self._positions(tps), *self._commit_identity())

    def _drop_partitions(self, tps: set[TopicPartition]) -> None:
        self._fetcher.assign([tp for tp in self._states if tp not in tps])
        self._iter_records = iter(())

    def _add_partitions(self, tps: set[TopicPartition]) -> None:
        committed = self._offsets_client().committed(tps)
        self._fetcher.assign([*self._states, *sorted(tps)])
        for tp, offset in committed.items():
            if offset is not None:
                self._states[tp].seek(offset)

    def _run_commit_callbacks(self) -> None:
        while self._commit_done:
            callback, offsets, error = self._commit_done.popleft()
            if callback is not None:
                callback(offsets, error)

    def _group_poll(self, timeout_s: float, max_records: int
                    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        m = self._membership
        deadline = time.monotonic() + timeout_s
        while True:
            m.on_poll()
            self._run_commit_callbacks()
            if self.config.enable_auto_commit and time.monotonic() >= self._next_auto_commit:
                self._next_auto_commit = time.monotonic() + (
                    self.config.auto_commit_interval_ms / 1000)
                if self._positions():
                    self.commit_async()
            m.reconcile(self)
            left = max(0.0, deadline - time.monotonic())
            if self._states:
                out = self._fetcher.poll(min(left, 0.1), max_records)
                if out:
                    return out
            elif left > 0:
                m.wait_for_change(min(left, 0.1))
            if time.monotonic() >= deadline:
                return {}

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
            try:
                if self._membership is not None:
                    self.unsubscribe()
                if self._commit_pool is not None:
                    self._commit_pool.shutdown(wait=True)
            finally:
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
