"""Running one sink task: consume, convert, transform, put, and commit offsets.

Assignment: every task of connector ``name`` is a member of the consumer group
``connect-<name>`` (Kafka Connect's default; ``consumer.override.group.id`` changes it),
subscribed to ``topics`` or ``topics.regex``. The group's assignor splits the partitions over
the tasks (tasks.max), picks up new topics and partitions, and moves the partitions of a task
that stops or dies to the others. The rebalance listener drives the task: on assignment
``SinkTask.open(partitions)``, then the consumer is positioned; on revocation the task's
offsets are committed (``pre_commit``) and ``SinkTask.close(partitions)`` runs; partitions
*lost* (fenced, session expired) are closed without a commit.

Offsets, on assignment: the task's own (``context.offset()`` from ``open()``, as the SQLite
and file sinks do: they store them atomically with the data, which makes them exactly-once)
win; otherwise the group's committed offset; otherwise the earliest offset. Every
``offset.flush.interval.ms`` (and before revoking, pausing or stopping) the worker calls
``task.pre_commit()`` (which flushes by default) and commits what it returns to the group,
so ``rillet group describe connect-<name>`` shows the sink's lag.

Leaving: ``stop()`` closes the consumer, which commits, runs the revocation and leaves the
group at once, so a restarted task gets its partitions back without waiting for the session
timeout. A worker killed with SIGKILL cannot leave: its partitions move once the broker's
``group.consumer.session.timeout.ms`` expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from loguru import logger

from .api import SinkRecord, SinkTaskContext, TopicPartition
from .clients import Clients, client_config, ensure_topic
from .errorhandling import SKIP, ErrorContext
from .task_runner import TaskRunner
from .validation import ConnectorSpec


def sink_group_id(spec_config: Mapping[str, Any]) -> str:
    """The consumer group of a sink connector: ``consumer.override.group.id`` or
    ``connect-<name>``."""
    return str(spec_config.get("consumer.override.group.id") or f"connect-{spec_config['name']}")


class _Listener:
    """The consumer's rebalance listener: runs in poll(), in the task's thread. Errors are
    kept and raised by the runner after poll() (the consumer would only log them)."""

    def __init__(self, runner: WorkerSinkTask) -> None:
        self.runner = runner

    def on_partitions_assigned(self, assigned: set) -> None:
        self._guard(self.runner.partitions_assigned, assigned)

    def on_partitions_revoked(self, revoked: set) -> None:
        self._guard(self.runner.partitions_revoked, revoked)

    def on_partitions_lost(self, lost: set) -> None:
        self._guard(self.runner.partitions_lost, lost)

    def _guard(self, fn: Callable[[list[TopicPartition]], None], tps: Iterable) -> None:
        try:
            fn(sorted(TopicPartition(tp[0], tp[1]) for tp in tps))
        except BaseException as e:
            if self.runner.listener_error is None:
                self.runner.listener_error = e
            raise


class _Reporter:
    def __init__(self, runner: WorkerSinkTask) -> None:
        self.runner = runner

    def report(self, record: SinkRecord, error: BaseException) -> None:
        self.runner.report_put_failure(record, error)


class WorkerSinkTask(TaskRunner):
    """Owns one SinkTask, its group consumer and its DLQ producer. One actor drives it."""

    #: a FAILED task is stopped at once (commits what was put, closes, leaves the group)
    release_on_failure = True

    def __init__(self, spec: ConnectorSpec, task_id: int, n_tasks: int,
                 task_config: dict[str, Any], worker: Mapping[str, Any], clients: Clients,
                 task_factory: Callable[[], Any], *,
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        super().__init__(spec, task_id, task_config, worker, clients, task_factory,
                         sleep=sleep, stopping=stopping)
        self.group_id = sink_group_id(spec.config)
        self.flush_interval_ms = int(worker["offset.flush.interval.ms"])
        self.assigned: list[TopicPartition] = []
        self.consumed: dict[TopicPartition, int] = {}   # next offset to consume
        self.committed: dict[TopicPartition, int] = {}
        self.raw: dict[tuple[str, int, int], tuple[bytes | None, bytes | None]] = {}
        self.consumer: Any = None
        self.listener_error: BaseException | None = None
        self._dlq_producer: Any = None
        self.last_commit_ms = 0.0
        self.records_put = 0

    def consumer_config(self) -> dict[str, Any]:
        """The worker's ``consumer.*`` and the connector's ``consumer.override.*`` keys, the
        group, no auto-commit. A ``group.instance.id`` (static membership, opt-in) gets the
        task id appended, so that the tasks of one connector do not fence each other."""
        cfg = {"client.id": f"connector-consumer-{self.name}-{self.task_id}",
               **client_config(self.worker, "consumer", self.spec.config),
               "group.id": self.group_id, "auto.offset.reset": "earliest",
               "enable.auto.commit": False}
        if cfg.get("group.instance.id"):
            cfg["group.instance.id"] = f"{cfg['group.instance.id']}-{self.task_id}"
        return cfg

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.assigned, self.consumed, self.committed = [], {}, {}
        self.listener_error = None
        if self.dlq_topic:
            self.admin = self.clients.admin(client_config(self.worker, "admin"))
            ensure_topic(self.clients, self.admin, self.dlq_topic, 1, self.spec.config[
                "errors.deadletterqueue.topic.replication.factor"])
        self.consumer = self.clients.consumer(self.consumer_config())
        self.task = self.task_factory()
        self.task.context = SinkTaskContext(self.name, self.task_id, _Reporter(self))
        self.task.start(dict(self.task_config))
        self.last_commit_ms = _now_ms()
        regex = self.spec.config["topics.regex"]
        listener = _Listener(self)
        if regex:
            self.consumer.subscribe(pattern=regex, listener=listener)
        else:
            self.consumer.subscribe(list(self.spec.config["topics"]), listener=listener)

    def stop(self) -> None:
        """Commits what was put, closes the partitions, leaves the group. Idempotent; start()
        may follow (a restart)."""
        task = self.task
        try:
            if task is not None and self.consumer is not None:
                try:  # the revocation listener commits and closes the partitions
                    self.consumer.close()
                except Exception as e:
                    logger.warning("connector {} task {}: closing the consumer: {}",
                                   self.name, self.task_id, e)
        finally:
            self.task = None
            try:
                if task is not None:
                    try:
                        if self.assigned:  # the consumer could not revoke them
                            task.close(list(self.assigned))
                    finally:
                        task.stop()
            finally:
                self.assigned = []
                for c in (self.consumer, self.admin, self._dlq_producer):
                    if c is not None:
                        try:
                            c.close()
                        except Exception as e:
                            logger.warning("closing {}: {}", type(c).__name__, e)
                self.consumer = self.admin = self._dlq_producer = None

    # --- the loop --------------------------------------------------------------------------

    def iterate(self) -> int:
        polled = self.consumer.poll(timeout_ms=200)
        self._raise_listener_error()
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
        if batch or self.assigned:
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

    def _raise_listener_error(self) -> None:
        e, self.listener_error = self.listener_error, None
        if e is not None:
            raise e

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

    def _commit_with(self, task: Any, tps: Iterable[TopicPartition] | None = None) -> None:
        """pre_commit() (flush) the consumed offsets of ``tps`` (default: every assigned
        partition) and commit what the task says is safe to the group."""
        self.last_commit_ms = _now_ms()
        owned = set(self.assigned if tps is None else tps) & set(self.assigned)
        offsets = {tp: off for tp, off in self.consumed.items() if tp in owned}
        if not offsets:
            return
        safe = task.pre_commit(offsets) or {}
        todo = {TopicPartition(tp[0], tp[1]): int(off) for tp, off in safe.items()
                if tp in owned and self.committed.get(TopicPartition(tp[0], tp[1])) != off}
        if not todo:
            return
        try:
            self.consumer.commit(offsets={
                self.clients.topic_partition(tp.topic, tp.partition): off
                for tp, off in todo.items()})
        except Exception as e:  # the task's own offsets (if any) still hold
            logger.warning("connector {} task {}: committing offsets to group {} failed: {}",
                           self.name, self.task_id, self.group_id, e)
            return
        self.committed.update(todo)

    # --- assignment (called by the rebalance listener, inside consumer.poll()) -------------

    def partitions_assigned(self, new: list[TopicPartition]) -> None:
        new = [tp for tp in new if tp not in set(self.assigned)]
        if not new or self.task is None:
            return
        self.assigned = self.assigned + new
        self.task.context.assigned = frozenset(self.assigned)
        self.task.open(new)
        requested = self.task.context.requested_offsets
        for tp in new:
            ctp = self.clients.topic_partition(tp.topic, tp.partition)
            if tp in requested:  # the sink's own offsets
                self.consumer.seek(ctp, requested.pop(tp))
            # else: the consumer starts at the group's committed offset (or the earliest)
            self.committed[tp] = self.consumed[tp] = self.consumer.position(ctp)
        logger.info("connector {} task {}: assigned {}", self.name, self.task_id,
                    ", ".join(f"{t}-{p}" for t, p in new))

    def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        revoked = [tp for tp in revoked if tp in set(self.assigned)]
        if not revoked or self.task is None:
            return
        try:
            self._commit_with(self.task, revoked)
        finally:
            self._close_partitions(revoked)
        logger.info("connector {} task {}: revoked {}", self.name, self.task_id,
                    ", ".join(f"{t}-{p}" for t, p in revoked))

    def partitions_lost(self, lost: list[TopicPartition]) -> None:
        """Taken away without a chance to commit (the new owner resumes from the last commit
        or, for the SQLite and file sinks, from their own offsets)."""
        lost = [tp for tp in lost if tp in set(self.assigned)]
        if lost and self.task is not None:
            logger.warning("connector {} task {}: lost {}", self.name, self.task_id,
                           ", ".join(f"{t}-{p}" for t, p in lost))
            self._close_partitions(lost)

    def _close_partitions(self, tps: list[TopicPartition]) -> None:
        gone = set(tps)
        self.assigned = [tp for tp in self.assigned if tp not in gone]
        for tp in gone:
            self.consumed.pop(tp, None)
            self.committed.pop(tp, None)
        self.task.context.assigned = frozenset(self.assigned)
        self.task.close(tps)

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

    def _dead_letter_producer(self) -> Any:
        if self._dlq_producer is None:
            self._dlq_producer = self.clients.producer({
                **client_config(self.worker, "producer", self.spec.config), "acks": "all"})
        return self._dlq_producer


def _now_ms() -> float:
    return time.monotonic() * 1000
