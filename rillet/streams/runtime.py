"""What ``App.run`` does (docs/streams.md "Running"), on the run thread: the clients, the
tasks made and closed by the rebalance listener, the loop, and the commits (at_least_once:
flush, stores, offsets; exactly_once_v2: one transaction per commit interval, then the
stores). ``app.py`` holds the public App; this module owns no state of its own beyond one
run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from rillet._membership import ConsumerRebalanceListener
from rillet.admin import Admin
from rillet.consumer import Consumer
from rillet.errors import CommitFailedError, RilletError
from rillet.producer import Producer
from rillet.records import TopicPartition

from .api import TaskId, topic_of
from .config import (
    CACHE_ENTRY_BYTES,
    admin_client_config,
    consumer_client_config,
    producer_client_config,
    require_servers,
    restore_consumer_config,
)
from .errors import StreamsError, TaskMigratedError
from .restore import restore_task
from .task import Collector, StreamTask
from .topics import ensure_instances_topic, ensure_internal_topics

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("rillet.streams.app")

# States, as Kafka Streams' KafkaStreams.State
CREATED, REBALANCING, RUNNING = "CREATED", "REBALANCING", "RUNNING"
PENDING_SHUTDOWN, NOT_RUNNING, ERROR = "PENDING_SHUTDOWN", "NOT_RUNNING", "ERROR"


class _Listener(ConsumerRebalanceListener):
    """Forwards the consumer's rebalance callbacks to the runtime. The consumer logs and
    swallows a callback's exception, so it is kept here and raised by the loop after
    ``poll()`` returns (a failed restore must stop the app, a migration must rejoin)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.muted = False
        self.error: BaseException | None = None

    def _call(self, fn: Callable[[set[TopicPartition]], None], tps: set[TopicPartition]):
        if self.muted or self.error is not None:
            return
        try:
            fn(tps)
        except BaseException as exc:  # noqa: BLE001 - raised by the loop
            self.error = exc

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._call(self.runtime.revoke, revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._call(self.runtime.assign, assigned)

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self._call(self.runtime.lose, lost)

    def raise_error(self) -> None:
        error, self.error = self.error, None
        if error is not None:
            raise error


class Runtime:
    """What ``App.run`` does, on the run thread: the clients, the tasks and the loop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.cfg = app.config
        self.eos = app.config.exactly_once
        self.tasks = app.tasks
        self.task_of: dict[TopicPartition, StreamTask] = {}
        self.partition_counts: dict[str, int] = {}
        self.consumer: Consumer | None = None
        self.restore_consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.collector: Collector | None = None
        self.in_txn = False
        self.sent_at_begin = 0
        self.listener: _Listener | None = None
        self.standbys: Any = None  # standby.Standbys: standby tasks and the instances topic
        self._offsets_thread: ThreadPoolExecutor | None = None  # (exactly_once) commit()

    # -- start and stop ------------------------------------------------------------------

    def run(self) -> None:
        app, cfg = self.app, self.cfg
        require_servers(cfg)
        compiled = app._topology.compile(cfg.default_key_serde, cfg.default_value_serde)
        app._compiled = compiled
        self.compiled = compiled
        self.sub_of = {topic_of(s, cfg.application_id): st
                       for st in compiled.subtopologies for s in st.sources}
        if app._store_factory is None:
            from .stores import build
            app._store_factory = build
        try:
            admin = Admin(admin_client_config(cfg))
            try:
                self.partition_counts = ensure_internal_topics(
                    admin, compiled, cfg.application_id, cfg.replication_factor,
                    cfg.errors_dead_letter_queue_topic_name
                    if cfg.default_deserialization_exception_handler == "dead_letter"
                    else None)
            finally:
                admin.close()
            app._partition_counts = self.partition_counts
            self.start_standbys()
            self.new_producer()
            self.restore_consumer = Consumer(restore_consumer_config(cfg))
            self.consumer = Consumer(consumer_client_config(cfg, app.instance_id))
            self.listener = _Listener(self)
            self.consumer.subscribe(sorted(self.sub_of), listener=self.listener)
            log.info("streams app %s (instance %s, %s) started", cfg.application_id,
                     app.instance_id, cfg.processing_guarantee)
            self.loop()
            self.shutdown(clean=True)
        except BaseException:
            self.shutdown(clean=False)
            raise

    def start_standbys(self) -> None:
        """With standby replicas or an application.server: the instances topic (created
        if missing) and the standby tasks (standby.py)."""
        cfg = self.cfg
        if not cfg.num_standby_replicas and cfg.application_server is None:
            return
        from .instances import instances_topic
        from .standby import Standbys

        admin = Admin(admin_client_config(cfg))
        try:
            ensure_instances_topic(admin, instances_topic(cfg.application_id),
                                   cfg.replication_factor)
        finally:
            admin.close()
        self.standbys = Standbys(self, self.app._directory)

    def new_producer(self) -> None:
        old = self.producer
        if old is not None:
            try:
                old.close(timeout=0)
            except Exception:  # noqa: BLE001 - it is being replaced
                log.exception("closing the old producer failed")
        self.producer = Producer(producer_client_config(self.cfg, self.app.instance_id))
        self.collector = Collector(self.producer)
        self.in_txn, self.sent_at_begin = False, 0
        if self.eos:
            self.producer.init_transactions()

    def shutdown(self, clean: bool) -> None:
        self.app.state = PENDING_SHUTDOWN
        if clean:
            try:
                self.commit()
            except Exception:  # noqa: BLE001 - then close dirty
                log.exception("final commit failed: closing the tasks dirty")
                clean = False
        if not clean:
            self.abort()
        self.close_tasks(list(self.tasks), clean)
        if self.standbys is not None:
            self.standbys.close()
        if self.consumer is not None:
            if self.listener is not None:
                self.listener.muted = True
            self.consumer.close()
        if self._offsets_thread is not None:
            self._offsets_thread.shutdown(wait=True)
            self._offsets_thread = None
        for client in (self.restore_consumer, self.producer):
            if client is not None:
                try:
                    client.close(**({"timeout": 10} if client is self.producer else {}))
                except Exception:  # noqa: BLE001
                    log.exception("closing a client failed")

    # -- the loop ------------------------------------------------------------------------

    def loop(self) -> None:
        app, cfg = self.app, self.cfg
        consumer = self.consumer
        poll_ms = cfg.poll_ms
        commit_s = cfg.commit_interval_ms / 1000
        next_commit = time.monotonic() + commit_s
        while not app._closing.is_set():
            busy = any(t.buffered() for t in self.tasks.values())
            membership = getattr(consumer, "_membership", None)
            if self.eos and membership is not None and membership._changed.is_set():
                # a rebalance is coming: poll() may wait there (offsets fetched with
                # require_stable wait for the previous owner's transaction), so do not
                # leave ours open meanwhile
                try:
                    self.commit()
                except TaskMigratedError:
                    self.migrated()
                    continue
            try:
                batch = consumer.poll(0 if busy else poll_ms)
                self.listener.raise_error()
            except TaskMigratedError:
                self.migrated()
                continue
            task_of = self.task_of
            for tp, records in batch.items():
                task = task_of.get(tp)
                if task is not None:
                    task.add_records(tp, records)
            for task in list(self.tasks.values()):
                task.process(100_000)
                task.punctuate_wall_clock()
            if self.tasks and app.state == REBALANCING:
                app.state = RUNNING
            app._serve_queries()
            if self.standbys is not None:
                self.standbys.tick()
            if time.monotonic() >= next_commit:
                try:
                    self.commit()
                except TaskMigratedError:
                    self.migrated()
                next_commit = time.monotonic() + commit_s

    # -- commits -------------------------------------------------------------------------

    def commit(self) -> None:
        """Commit every task: outputs, changelog writes and input offsets together (under
        exactly_once one transaction), then the stores' local state."""
        offsets: dict[TopicPartition, int] = {}
        for task in self.tasks.values():
            offsets.update(task.offsets_to_commit())
        producer, consumer, collector = self.producer, self.consumer, self.collector
        if producer is None or consumer is None:
            return
        if self.cfg.statestore_cache_max_bytes:
            self.begin_if_needed()  # (exactly_once) the flushed updates are in the commit
            for task in self.tasks.values():
                task.flush_caches()
        if self.eos:
            if not offsets and collector.sent == self.sent_at_begin:
                return  # nothing happened: no empty transaction
            try:
                self.begin_if_needed()
                if offsets:
                    self.send_offsets_while_flushing(offsets)
                producer.commit_transaction()
                self.in_txn = False
                written = collector.check()
            except RilletError as exc:
                log.warning("committing the transaction failed (%s): aborting", exc)
                self.abort()
                raise TaskMigratedError(f"commit failed: {exc}") from exc
        else:
            producer.flush()
            try:
                written = collector.check()
            except RilletError as exc:
                raise StreamsError(f"a record could not be sent: {exc}") from exc
            if not offsets and not written:
                return
        for task in self.tasks.values():
            task.commit_stores(written)
        if not self.eos and offsets:
            try:
                consumer.commit(offsets)
            except CommitFailedError as exc:
                raise TaskMigratedError(f"offset commit failed: {exc}") from exc
        for task in self.tasks.values():
            task.mark_committed(offsets)
        self.app._counters["commits"] += 1
        if self.eos and not self.app._closing.is_set():
            self.begin_if_needed()  # the next records' sends belong to the next one

    def send_offsets_while_flushing(self, offsets: dict[TopicPartition, int]) -> None:
        """send_offsets_to_transaction (AddOffsetsToTxn, then TxnOffsetCommit: two round
        trips) on a helper thread while this one flushes the transaction's records: the
        two wait on different brokers' answers, so the commit waits for the longer, not
        for both one after the other (bench/README.md "Streams", wave 8). The producer
        is thread-safe; commit_transaction follows only when both are done, and an error
        of either is raised here."""
        if self._offsets_thread is None:
            self._offsets_thread = ThreadPoolExecutor(
                1, thread_name_prefix=f"rillet-streams-offsets-{self.cfg.application_id}")
        future = self._offsets_thread.submit(self.producer.send_offsets_to_transaction,
                                             offsets, self.consumer.group_metadata())
        try:
            # commit_transaction's own flush has max.block.ms too (then it has nothing left)
            self.producer.flush(self.producer._max_block_ms / 1000)
        finally:
            future.result()

    def abort(self) -> None:
        if self.eos and self.in_txn and self.producer is not None:
            try:
                self.producer.abort_transaction(timeout=10)
            except Exception as exc:  # noqa: BLE001 - the coordinator times it out anyway
                log.warning("abort_transaction failed: %s", exc)
            self.in_txn = False
        if self.collector is not None:
            self.collector.last.clear()
            self.collector.earlier.clear()

    def migrated(self) -> None:
        """Fenced while committing: every task closed dirty, then rejoin the group. Under
        exactly_once the producer is made again (a producer the coordinator fenced, e.g.
        after transaction.timeout.ms, cannot be used again), with the same
        transactional.id: init_transactions() bumps its epoch."""
        self.app._counters["migrations"] += 1
        self.close_tasks(list(self.tasks), clean=False)
        if self.eos:
            self.new_producer()
        self.listener.muted = True
        try:
            self.consumer.unsubscribe()
        finally:
            self.listener.muted = False
        self.consumer.subscribe(sorted(self.sub_of), listener=self.listener)
        self.app.state = REBALANCING

    # -- tasks (from the rebalance listener) ----------------------------------------------

    def begin_if_needed(self) -> None:
        if self.eos and not self.in_txn:
            self.producer.begin_transaction()
            self.in_txn = True
            self.sent_at_begin = self.collector.sent

    def assign(self, assigned: set[TopicPartition]) -> None:
        self.app.state = REBALANCING
        # the open transaction must not wait for the restores (transaction.timeout.ms)
        self.commit()
        self.begin_if_needed()
        for tp in sorted(assigned):
            st = self.sub_of.get(tp.topic)
            if st is None:
                continue
            task_id = TaskId(st.id, tp.partition)
            task = self.tasks.get(task_id)
            if task is None:
                task = self.make_task(task_id, st)
            task.add_partition(tp)
            self.task_of[tp] = task

    def make_task(self, task_id: TaskId, st: Any) -> StreamTask:
        cfg = self.cfg
        handed = {}
        if self.standbys is not None:
            handed = self.standbys.release(task_id)  # its stores become the task's
        task = StreamTask(task_id, st, application_id=cfg.application_id,
                          state_dir=cfg.state_dir, collector=self.collector,
                          store_factory=self.app._store_factory, exactly_once=self.eos,
                          handler=cfg.default_deserialization_exception_handler,
                          dlq_topic=cfg.errors_dead_letter_queue_topic_name,
                          partition_count=self.partition_count,
                          max_idle_ms=cfg.max_task_idle_ms,
                          cache_entries=cfg.statestore_cache_max_bytes // CACHE_ENTRY_BYTES,
                          handed_stores=handed)
        try:
            restored = restore_task(self.restore_consumer, task)
            self.app._counters["restored"] += restored
            task.initialize()
        except BaseException:
            task.close(clean=False)
            raise
        self.tasks[task_id] = task
        log.info("task %s created (%d changelog records restored)", task_id, restored)
        return task

    def revoke(self, revoked: set[TopicPartition]) -> None:
        self.app.state = REBALANCING
        self.commit()
        self.begin_if_needed()
        closing = []
        for tp in revoked:
            task = self.task_of.pop(tp, None)
            if task is not None:
                task.remove_partition(tp)
                if not task.partitions:
                    closing.append(task.id)
        self.close_tasks(closing, clean=True)

    def lose(self, lost: set[TopicPartition]) -> None:
        """Taken away without a commit (the consumer drops every partition then): the
        tasks are closed dirty; under exactly_once the open transaction, which holds every
        task's writes, is aborted and the local state wiped."""
        self.app.state = REBALANCING
        log.warning("partitions lost: %s", sorted(lost))
        self.abort()
        victims = list(self.tasks) if self.eos else list(
            {self.task_of[tp].id for tp in lost if tp in self.task_of})
        self.close_tasks(victims, clean=False)

    def close_tasks(self, ids: list[TaskId], clean: bool) -> None:
        for task_id in ids:
            task = self.tasks.pop(task_id, None)
            if task is None:
                continue
            for tp in list(task.partitions):
                self.task_of.pop(tp, None)
            for key in ("processed", "skipped", "dead_lettered"):
                self.app._counters[key] += getattr(task, key)
            task.close(clean)
            log.info("task %s closed (%s)", task_id, "clean" if clean else "dirty")

    def partition_count(self, topic: str) -> int:
        n = self.partition_counts.get(topic)
        if n is None:
            n = self.partition_counts[topic] = len(self.producer.partitions_for(topic))
        return n


__all__ = ["CREATED", "ERROR", "NOT_RUNNING", "PENDING_SHUTDOWN", "REBALANCING", "RUNNING",
           "Runtime"]
