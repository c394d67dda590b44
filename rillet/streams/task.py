"""One stream task (docs/streams.md "Running"): sub-topology ``s`` for input partition ``p``.

A task owns its stores (opened under ``state.dir/application.id/<task id>``, restored from
their changelogs by :mod:`rillet.streams.restore`), a :class:`~rillet.streams.graph.TaskGraph`
(the DSL's node wiring, shared with the test driver), and one queue of fetched records per
input partition. ``process()`` takes the queued record with the smallest timestamp across
the task's partitions first (Kafka's PartitionGroup), deserializes it with its source's
serdes (a record that does not decode goes to the deserialization exception handler) and
runs it through the graph. The offsets to commit are those after the last record processed,
never what was only fetched.

Thread: the App's run thread owns a task; nothing here is thread-safe.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rillet._send_many import send_many
from rillet.records import TopicPartition

from .api import Headers, StoreFactory, Subtopology, TaskId, changelog_topic
from .errors import DeserializationError
from .graph import TaskGraph

log = logging.getLogger("rillet.streams.task")

# KIP-1034's header names on a dead-lettered record
DLQ_HEADERS = ("__streams.errors.exception", "__streams.errors.message",
               "__streams.errors.topic", "__streams.errors.partition",
               "__streams.errors.offset", "__streams.errors.stacktrace")
_CLEAN_MARKER = ".clean-shutdown"


class Collector:
    """The App's RecordCollector: every task's sinks and changelogging stores send through
    the one producer; the last future per partition gives, after a flush, the next changelog
    offset to checkpoint and any send error (raised at commit)."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self._send = producer.send
        self.last: dict[tuple[str, int | None], Any] = {}
        self.earlier: list[Any] = []  # futures of send_many's batches before the last
        self.sent = 0
        # sinks may batch their records per partition (send_many) when the producer
        # partitions keyed records by murmur2 as they would (no partitioner.class, keys
        # not ignored)
        self.batching = (getattr(producer, "_partitioner_class", 1) is None
                         and getattr(producer, "_ignore_keys", True) is False)
        self._send_many = getattr(producer, "send_many", None) or functools.partial(
            send_many, producer)

    def send_many(self, topic: str, partition: int, keys: Sequence[bytes | None],
                  values: Sequence[bytes | None], timestamps: Sequence[int],
                  headers: Sequence[Headers] | None = None) -> None:
        """Records of one partition, in order, through the producer at once
        (rillet._send_many: the accumulator's lock once per batch, not per record)."""
        futures = self._send_many(topic, partition, keys, values, timestamps, headers)
        if futures:
            self.last[(topic, partition)] = futures[-1]
            if len(futures) > 1:
                self.earlier.extend(futures[:-1])
        self.sent += len(values)

    def send(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int,
             headers: Headers = (), partition: int | None = None) -> None:
        future = self._send(topic, value, key, headers or None, partition, timestamp)
        self.last[(topic, partition)] = future
        self.sent += 1

    def check(self) -> dict[tuple[str, int], int]:
        """After a flush: raise the first send error; else the next offset of every
        partition written to since the last check (by topic and partition)."""
        out: dict[tuple[str, int], int] = {}
        last, self.last = self.last, {}
        earlier, self.earlier = self.earlier, []
        for future in earlier:
            future.get(0)
        for future in last.values():
            md = future.get(0)  # raises the send's error
            key = (md.topic, md.partition)
            out[key] = max(out.get(key, 0), md.offset + 1)
        return out


class StreamTask:
    """A task: stores, graph and the queues of its input partitions."""

    def __init__(self, task_id: TaskId, subtopology: Subtopology, *, application_id: str,
                 state_dir: str, collector: Collector, store_factory: StoreFactory,
                 exactly_once: bool, handler: str, dlq_topic: str | None,
                 partition_count: Callable[[str], int], max_idle_ms: int = 0,
                 cache_entries: int = 0,
                 clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 handed_stores: Mapping[str, Any] | None = None) -> None:
        self.id = task_id
        self.subtopology = subtopology
        self.application_id = application_id
        self.dir = os.path.join(state_dir, application_id, str(task_id))
        self.collector = collector
        self.exactly_once = exactly_once
        self.handler = handler
        self.dlq_topic = dlq_topic
        self.max_idle_ms = max_idle_ms
        self.clock = clock
        self.partitions: set[TopicPartition] = set()
        self.queues: dict[TopicPartition, deque] = {}
        self.consumed: dict[TopicPartition, int] = {}  # next offset to commit
        self._committed: dict[TopicPartition, int] = {}
        self._idle_since: float | None = None
        self.processed = self.skipped = self.dead_lettered = 0
        needs_dir = any(not s.in_memory for s in subtopology.stores.values())
        if exactly_once and needs_dir:
            # under exactly_once the local state is trusted only after a clean shutdown
            # (the checkpoint may be ahead of the changelog's committed data otherwise)
            if not os.path.exists(os.path.join(self.dir, _CLEAN_MARKER)):
                shutil.rmtree(self.dir, ignore_errors=True)
        if needs_dir:
            os.makedirs(self.dir, exist_ok=True)
            try:
                os.unlink(os.path.join(self.dir, _CLEAN_MARKER))
            except FileNotFoundError:
                pass
        self.stores: dict[str, Any] = {}
        self.changelogs: dict[str, tuple[str, int]] = {}
        self.changelog_offsets: dict[str, int | None] = {}
        handed_stores = handed_stores or {}
        for name, spec in subtopology.stores.items():
            # an in-memory store a standby replica kept (standby.py): open already, its
            # checkpoint where the restore starts
            store = handed_stores.get(name) or store_factory(spec, task_id)
            self.stores[name] = store
            changelog = None
            if spec.logged:
                changelog = (changelog_topic(application_id, name), task_id.partition)
                self.changelogs[name] = changelog
            store.open(None if spec.in_memory else self.dir, collector if changelog else None,
                       changelog)
        self.graph = TaskGraph(subtopology, application_id=application_id, task_id=task_id,
                               stores=self.stores, collector=collector, clock=clock,
                               partition_count=partition_count, cache_entries=cache_entries)
        self._initialized = False

    # ------------------------------------------------------------------------ life cycle

    def initialize(self) -> None:
        """After the stores are restored: the processors' init()."""
        self.graph.init()
        self._initialized = True

    def add_partition(self, tp: TopicPartition) -> None:
        self.partitions.add(tp)
        self.queues.setdefault(tp, deque())

    def remove_partition(self, tp: TopicPartition) -> None:
        self.partitions.discard(tp)
        self.queues.pop(tp, None)
        self.consumed.pop(tp, None)
        self._committed.pop(tp, None)

    def add_records(self, tp: TopicPartition, records: list) -> None:
        q = self.queues.get(tp)
        if q is not None:
            q.extend(records)

    def buffered(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # ------------------------------------------------------------------------ processing

    def _next_queue(self) -> deque | None:
        """The queue whose head has the smallest timestamp; None when the task must wait
        (an input partition is empty and max.task.idle.ms has not passed)."""
        best = None
        empty = False
        for q in self.queues.values():
            if not q:
                empty = True
                continue
            if best is None or q[0][3] < best[0][3]:
                best = q
        if best is None:
            return None
        if empty and self.max_idle_ms > 0 and len(self.queues) > 1:
            now = time.monotonic()
            if self._idle_since is None:
                self._idle_since = now
            if now - self._idle_since < self.max_idle_ms / 1000:
                return None
        else:
            self._idle_since = None
        return best

    def process(self, max_records: int) -> int:
        """Process up to ``max_records`` queued records; returns how many. With one input
        partition a run of records goes through the graph at once; with several, one
        record at a time from the queue whose head is the oldest."""
        graph = self.graph
        queues = self.queues
        done = 0
        single = next(iter(queues.values())) if len(queues) == 1 else None
        while done < max_records:
            q = single if single is not None else self._next_queue()
            if not q:
                break
            n = min(len(q), max_records - done) if single is not None else 1
            tp = TopicPartition(q[0][0], q[0][1])
            left, before = len(q), self.skipped
            try:
                graph.run(q, n, self._bad_record)
            finally:
                taken = left - len(q)
                done += taken
                if graph.run_offset >= 0:  # a record that raised is not consumed
                    self.consumed[tp] = graph.run_offset
                self.processed += taken - (self.skipped - before)
        return done

    def _bad_record(self, rec: tuple, exc: Exception) -> None:
        topic, partition, offset, timestamp, key, value, headers = rec
        where = f"{topic}-{partition}@{offset}"
        if self.handler == "log_and_fail":
            log.error("task %s: cannot deserialize %s: %s (log_and_fail: stopping)",
                      self.id, where, exc)
            raise DeserializationError(
                f"task {self.id}: cannot deserialize the record at {where}: {exc} "
                "(default.deserialization.exception.handler=log_and_fail)",
                topic=topic, partition=partition, offset=offset) from exc
        self.skipped += 1
        if self.handler == "log_and_continue":
            log.warning("task %s: skipping the record at %s that cannot be deserialized: %s",
                        self.id, where, exc)
            return
        values = (type(exc).__name__, str(exc), topic, str(partition), str(offset),
                  "".join(traceback.format_exception(exc))[-4000:])
        dlq_headers = tuple(headers or ()) + tuple(
            (k, v.encode()) for k, v in zip(DLQ_HEADERS, values, strict=True))
        self.collector.send(self.dlq_topic, key, value, timestamp, dlq_headers)
        self.dead_lettered += 1
        log.warning("task %s: the record at %s cannot be deserialized (%s): sent to %s",
                    self.id, where, exc, self.dlq_topic)

    def flush_caches(self) -> None:
        """The record caches' latest values to the changelogs and the children."""
        if self._initialized:
            self.graph.flush()

    def punctuate_wall_clock(self) -> None:
        if self._initialized:
            self.graph.punctuate_wall_clock()

    # ------------------------------------------------------------------------ commits

    def offsets_to_commit(self) -> dict[TopicPartition, int]:
        """Input offsets moved since the last commit."""
        return {tp: o for tp, o in self.consumed.items() if self._committed.get(tp) != o}

    def mark_committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, o in offsets.items():
            if tp in self.partitions:
                self._committed[tp] = o

    def commit_stores(self, written: Mapping[tuple[str, int], int]) -> None:
        """Make each store durable with its changelog offset (``written``: next offsets of
        the partitions the producer wrote since the last commit)."""
        for name, store in self.stores.items():
            changelog = self.changelogs.get(name)
            if changelog is not None and changelog in written:
                self.changelog_offsets[name] = written[changelog]
            store.commit(self.changelog_offsets.get(name))

    def close(self, clean: bool) -> None:
        """Clean: the caller has committed; stores are closed and, under exactly_once,
        marked as safe to reuse. Dirty: processors and stores closed, nothing committed;
        under exactly_once the local state is wiped (it may hold aborted writes)."""
        try:
            if self._initialized:
                self.graph.close()
        except Exception:  # noqa: BLE001 - a processor's close() must not leak the stores
            log.exception("task %s: a processor's close() failed", self.id)
        for store in self.stores.values():
            try:
                store.close()
            except Exception:  # noqa: BLE001
                log.exception("task %s: closing store %s failed", self.id, store.name)
        if not clean and self.exactly_once:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif clean and os.path.isdir(self.dir):
            with open(os.path.join(self.dir, _CLEAN_MARKER), "w"):
                pass
        self._initialized = False


__all__ = ["DLQ_HEADERS", "Collector", "StreamTask"]
