"""Running one sink task: consume, convert, transform, put, and commit offsets.

Assignment: without consumer groups yet, a sink task consumes by manual assignment. The
partitions of the connector's topics (``topics`` or ``topics.regex``, re-listed every
``topic.refresh`` period so new topics and partitions are picked up) are dealt round-robin
over the tasks: task i of n takes the i-th, (i+n)-th, ... partition. :class:`ManualAssignment`
is the seam: a group-based assignment (KIP-848 style, once groups exist) replaces it with the
same ``current()`` method, and its ``connect-<name>`` group offsets replace :class:`OffsetStore`.

Offsets: the task's own (``context.offset()`` from ``open()``, as the SQLite and file sinks do)
win; otherwise the worker's stored ones (``connect-offsets``); otherwise the earliest offset.
Every ``offset.flush.interval.ms`` (and on stop) the worker calls ``task.pre_commit()`` (which
flushes by default) and stores what it returns.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger

from .api import SinkRecord, SinkTaskContext, TopicPartition
from .clients import Clients, client_config, ensure_topic, partition_count
from .errorhandling import SKIP, ErrorContext, ErrorHandler, dlq_headers
from .errors import ToleranceExceededError
from .offsets import OffsetStore, sink_partition
from .validation import ConnectorSpec, make_converter_for, transforms_for

ACK_TIMEOUT_S = 60
TOPIC_REFRESH_MS = 3000


class ManualAssignment:
    """Which partitions task ``task_id`` of ``n_tasks`` consumes (deterministic)."""

    def __init__(self, topics: list[str], regex: str, task_id: int, n_tasks: int) -> None:
        self.topics = topics
        self.regex = re.compile(regex) if regex else None
        self.task_id = task_id
        self.n_tasks = max(1, n_tasks)

    def current(self, admin: Any) -> list[TopicPartition]:
        names = self.topics
        if self.regex is not None:
            names = [t for t in admin.list_topics() if self.regex.fullmatch(t)]
        tps = []
        for t in sorted(names):
            n = partition_count(admin, t)
            tps += [TopicPartition(t, p) for p in range(n or 0)]
        return tps[self.task_id::self.n_tasks]


class _Reporter:
    def __init__(self, runner: WorkerSinkTask) -> None:
        self.runner = runner

    def report(self, record: SinkRecord, error: BaseException) -> None:
        self.runner.report_put_failure(record, error)


class WorkerSinkTask:
    """Owns one SinkTask, its consumer and its DLQ producer. One actor drives it."""

    def __init__(self, spec: ConnectorSpec, task_id: int, n_tasks: int,
                 task_config: dict[str, Any], worker: Mapping[str, Any], clients: Clients,
                 task_factory: Callable[[], Any], *,
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.spec = spec
        self.name = spec.name
        self.task_id = task_id
        self.task_config = task_config
        self.worker = worker
        self.clients = clients
        self.task_factory = task_factory
        self.handler = ErrorHandler(spec.config, self._report, sleep=sleep, stopping=stopping)
        self.key_converter = make_converter_for(spec.config, worker, "key")
        self.value_converter = make_converter_for(spec.config, worker, "value")
        self.transforms = transforms_for(spec.config)
        self.dlq_topic = spec.config["errors.deadletterqueue.topic.name"]
        self.dlq_headers = spec.config["errors.deadletterqueue.context.headers.enable"]
        self.assignment_policy = ManualAssignment(spec.config["topics"],
                                                  spec.config["topics.regex"], task_id, n_tasks)
        self.flush_interval_ms = int(worker["offset.flush.interval.ms"])
        self.assigned: list[TopicPartition] = []
        self.consumed: dict[TopicPartition, int] = {}   # next offset to consume
        self.committed: dict[TopicPartition, int] = {}
        self.raw: dict[tuple[str, int, int], tuple[bytes | None, bytes | None]] = {}
        self.task: Any = None
        self.consumer: Any = None
        self.admin: Any = None
        self.store: OffsetStore | None = None
        self._dlq_producer: Any = None
        self.last_commit_ms = self.last_refresh_ms = 0.0
        self.records_put = 0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.assigned, self.consumed, self.committed = [], {}, {}
        self.store = OffsetStore(self.clients, self.worker)
        self.admin = self.clients.admin(client_config(self.worker, "admin"))
        self.store.ensure_topic(self.admin)
        if self.dlq_topic:
            ensure_topic(self.clients, self.admin, self.dlq_topic, 1, self.spec.config[
                "errors.deadletterqueue.topic.replication.factor"])
        self.consumer = self.clients.consumer({
            **client_config(self.worker, "consumer", self.spec.config),
            "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.task = self.task_factory()
        self.task.context = SinkTaskContext(self.name, self.task_id, _Reporter(self))
        self.task.start(dict(self.task_config))
        self.last_commit_ms = _now_ms()
        self._refresh_assignment()

    def stop(self) -> None:
        """Commits what was put, then closes. Idempotent; start() may follow (a restart)."""
        task, self.task = self.task, None
        try:
            if task is not None:
                try:
                    if self.assigned:
                        self._commit_with(task)
                finally:
                    task.close(list(self.assigned))
                    task.stop()
        finally:
            for c in (self.consumer, self.admin, self._dlq_producer, self.store):
                if c is not None:
                    try:
                        c.close()
                    except Exception as e:
                        logger.warning("closing {}: {}", type(c).__name__, e)
            self.consumer = self.admin = self._dlq_producer = self.store = None

    # --- the loop --------------------------------------------------------------------------

    def iterate(self) -> int:
        now = _now_ms()
        if now - self.last_refresh_ms >= TOPIC_REFRESH_MS:
            self._refresh_assignment()
        if not self.assigned:
            return 500
        polled = self.consumer.poll(timeout_ms=200)
        batch: list[SinkRecord] = []
        positions: dict[TopicPartition, int] = {}
        self.raw.clear()
        for tp, recs in polled.items():
            tp = TopicPartition(tp[0], tp[1])
            for rec in recs:
                r = self._convert(rec)
                if r is not None:
                    batch.append(r)
                positions[tp] = rec.offset + 1
        self.handler.retry(lambda: self.task.put(batch))
        # only now: a failed put must not let a later commit skip its records
        self.consumed.update(positions)
        self.records_put += len(batch)
        ctx = self.task.context
        if ctx.requested_offsets:
            self._apply_requested_seeks()
        if ctx.commit_requested or _now_ms() - self.last_commit_ms >= self.flush_interval_ms:
            ctx.commit_requested = False
            self.commit()
        return 0

    def _convert(self, rec: Any) -> SinkRecord | None:
        def ctx() -> ErrorContext:
            return ErrorContext(self.name, self.task_id, rec.topic, rec.partition, rec.offset)

        self.raw[(rec.topic, rec.partition, rec.offset)] = (rec.key, rec.value)
        key = self.handler.execute(
            "KEY_CONVERTER", lambda: self.key_converter.deserialize(rec.topic, rec.key), ctx,
            executing=type(self.key_converter).__name__, raw_key=rec.key, raw_value=rec.value)
        if key is SKIP:
            return None
        value = self.handler.execute(
            "VALUE_CONVERTER", lambda: self.value_converter.deserialize(rec.topic, rec.value),
            ctx, executing=type(self.value_converter).__name__, raw_key=rec.key,
            raw_value=rec.value)
        if value is SKIP:
            return None
        r = SinkRecord(rec.topic, rec.partition, rec.offset, key, value,
                       tuple(tuple(h) for h in (rec.headers or ())), rec.timestamp)
        if len(self.transforms):
            r = self.handler.execute("TRANSFORMATION", lambda: self.transforms.apply(r), ctx,
                                     executing="transforms", raw_key=rec.key,
                                     raw_value=rec.value)
            if r is SKIP:
                return None
        return r

    def commit(self) -> None:
        if self.task is not None:
            self._commit_with(self.task)

    def _commit_with(self, task: Any) -> None:
        self.last_commit_ms = _now_ms()
        offsets = {tp: off for tp, off in self.consumed.items() if tp in set(self.assigned)}
        if not offsets:
            return
        safe = task.pre_commit(offsets) or {}
        assert self.store is not None
        futures = [self.store.write(self.name, sink_partition(tp[0], tp[1]),
                                    {"kafka_offset": int(off)})
                   for tp, off in safe.items() if self.committed.get(tp) != off]
        if not futures:
            return
        try:
            self.store.flush(ACK_TIMEOUT_S)
            for f in futures:
                f.get(timeout=ACK_TIMEOUT_S)
        except Exception as e:  # the task's own offsets (if any) still hold
            logger.warning("connector {} task {}: storing offsets failed: {}", self.name,
                           self.task_id, e)
            return
        self.committed.update(safe)

    # --- assignment ------------------------------------------------------------------------

    def _refresh_assignment(self) -> None:
        self.last_refresh_ms = _now_ms()
        wanted = self.assignment_policy.current(self.admin)
        new = [tp for tp in wanted if tp not in set(self.assigned)]
        if not new:
            return
        assert self.store is not None
        stored = {}
        for (_conn, pkey), off in self.store.read(self.name).items():
            p = json.loads(pkey)
            if "kafka_topic" in p and "kafka_offset" in off:
                stored[TopicPartition(p["kafka_topic"], int(p["kafka_partition"]))] = int(
                    off["kafka_offset"])
        self.assigned = self.assigned + new
        self.consumer.assign([self.clients.topic_partition(t, p) for t, p in self.assigned])
        self.task.context.assigned = frozenset(self.assigned)
        self.task.open(new)
        requested = self.task.context.requested_offsets
        for tp in new:
            ctp = self.clients.topic_partition(tp.topic, tp.partition)
            if tp in requested:
                self.consumer.seek(ctp, requested.pop(tp))
            elif tp in stored:
                self.consumer.seek(ctp, stored[tp])
            else:
                self.consumer.seek_to_beginning(ctp)
            self.committed[tp] = self.consumed[tp] = self.consumer.position(ctp)
        logger.info("connector {} task {}: assigned {}", self.name, self.task_id,
                    ", ".join(f"{t}-{p}" for t, p in new))

    def _apply_requested_seeks(self) -> None:
        requested = self.task.context.requested_offsets
        for tp, off in list(requested.items()):
            if tp in set(self.assigned):
                self.consumer.seek(self.clients.topic_partition(tp.topic, tp.partition), off)
                self.consumed[tp] = off
        requested.clear()

    # --- errors ----------------------------------------------------------------------------

    def report_put_failure(self, record: SinkRecord, error: BaseException) -> None:
        """ErrantRecordReporter: tolerate (DLQ) or raise ToleranceExceededError."""
        raw_key, raw_value = self.raw.get((record.topic, record.partition, record.offset),
                                          (None, None))
        ctx = ErrorContext(self.name, self.task_id, record.topic, record.partition,
                           record.offset)
        self.handler.handle("TASK_PUT", error, ctx, executing=type(self.task).__name__,
                            raw_key=raw_key, raw_value=raw_value)

    def _report(self, ctx: ErrorContext, stage: str, executing: str, error: BaseException,
                raw_key: bytes | None, raw_value: bytes | None) -> None:
        if not self.dlq_topic:
            return
        if self._dlq_producer is None:
            self._dlq_producer = self.clients.producer({
                **client_config(self.worker, "producer", self.spec.config), "acks": "all"})
        headers = dlq_headers(ctx, stage, executing, error) if self.dlq_headers else []
        fut = self._dlq_producer.send(self.dlq_topic, raw_value, key=raw_key, headers=headers)
        try:  # durable before the record's offset can be committed
            fut.get(timeout=ACK_TIMEOUT_S)
        except Exception as e:
            raise ToleranceExceededError("DEAD_LETTER_QUEUE", e) from e


def _now_ms() -> float:
    return time.monotonic() * 1000
