"""Running one source task: poll, transform, convert, produce, then store offsets.

One iteration (:meth:`WorkerSourceTask.iterate`), on the task's actor thread:

1. ``task.poll()`` (retriable errors retried with backoff; others fail the task);
2. per record: transforms, key and value converters, each under errors.tolerance (a tolerated
   failure goes to the dead-letter topic, the record is skipped but its offset still counts);
3. produce the data; each record carries the header ``__connect.source`` =
   ``["connector", {source partition}, {source offset}]``; wait for the acks;
4. produce the latest source offset of each source partition touched and this task's data
   positions into ``connect-offsets``, wait for the acks, then ``task.commit()``.

Exactly once across a crash: a crash between 3 and 4 leaves data in the topic whose offsets
were not stored. On start the task reads its positions record (the log end offsets of the data
partitions at its last commit) and scans the data partitions from there for records of this
connector; a record polled again whose (source partition, source offset) is among them is not
produced again. Before a task's first record to a topic, the current log end offsets of its partitions are
stored as positions too. So a restart neither loses nor duplicates, provided source offsets
identify a record (true for the file and SQLite sources, except SQLite bulk mode).

Exactly-once with transactions (KIP-618, worker ``exactly.once.source.support=enabled``): the
task gets a transactional producer (``transactional.id`` ``{group.id or worker.id}-{connector}-
{task}``, :func:`transactional_id`) whose ``init_transactions()`` at start fences a zombie instance of the same task and
aborts its open transaction; the offsets are read after that, read_committed. Each transaction
(one per poll, or per ``transaction.boundary.interval.ms``) holds the records and the latest
source offsets, written to ``connect-offsets`` by the same producer, then commits;
``task.commit()`` follows the commit. No positions record and no dedup scan: an aborted
transaction leaves nothing that read_committed readers see, and the restarted task polls those
records again. Any failure inside a transaction aborts it and re-raises (a retriable one
restarts the task from the committed offsets); ProducerFencedError fails the task (a newer
instance took over).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger

from .api import SourceRecord, SourceTaskContext
from .clients import Clients, client_config, ensure_topic
from .converters import BytesConverter
from .errorhandling import SKIP, ErrorContext
from .errors import ConnectError, is_retriable
from .offsets import POSITIONS, OffsetStore, SnapshotReader, canonical
from .task_runner import ACK_TIMEOUT_S, TaskRunner
from .validation import ConnectorSpec

SOURCE_HEADER = "__connect.source"
_RAW = (bytes, type(None))


def best_effort_bytes(value: Any) -> bytes | None:
    """Something to put in a dead-letter record whose value could not be converted."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    try:
        return json.dumps(value, default=repr).encode()
    except (TypeError, ValueError):
        return repr(value).encode()


class WorkerSourceTask(TaskRunner):
    """Owns one SourceTask and its producer. Not thread-safe: one actor drives it."""

    def __init__(self, spec: ConnectorSpec, task_id: int, task_config: dict[str, Any],
                 worker: Mapping[str, Any], clients: Clients, task_factory: Callable[[], Any],
                 *, sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(spec, task_id, task_config, worker, clients, task_factory,
                         sleep=sleep, stopping=stopping)
        self.eos = worker.get("exactly.once.source.support") == "enabled"
        #: a connector may opt out of the ``__connect.source`` header (and so of the dedup
        #: scan: at-least-once without transactions); the mirror does, its copies must equal
        #: the originals
        self.markers = getattr(spec.connector_class, "source_markers", True)
        self.passthrough = (not self.markers and not len(self.transforms)
                            and type(self.key_converter) is BytesConverter
                            and type(self.value_converter) is BytesConverter)
        self.transactional_id = transactional_id(worker, self.name, task_id)
        self.boundary = spec.config.get("transaction.boundary") or "poll"
        interval = (spec.config.get("transaction.boundary.interval.ms")
                    or worker.get("offset.flush.interval.ms") or 10000)
        self.boundary_interval_s = int(interval) / 1000
        self.clock = clock
        self.txn_open = False
        self.txn_started = 0.0
        self.txn_latest: dict[str, tuple[dict, dict]] = {}
        self.txn_sent: list[tuple[SourceRecord, Any]] = []
        self.transactions_committed = 0
        self.positions: dict[tuple[str, int], int] = {}
        self.already_written: set[tuple[str, str]] = set()
        self.producer: Any = None
        self.store: OffsetStore | None = None
        self.known_topics: set[str] = set()
        self.records_produced = 0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.store = OffsetStore(self.clients, self.worker)
        self.admin = admin = self.clients.admin(client_config(self.worker, "admin"))
        self.store.ensure_topic(admin)
        if self.dlq_topic:
            ensure_topic(self.clients, admin, self.dlq_topic, 1, self.spec.config[
                "errors.deadletterqueue.topic.replication.factor"])
        if self.eos:
            # fence a zombie of this task (its open transaction is aborted) before reading
            # the offsets, so what we read is all that was committed
            self.producer = self.clients.producer({
                **client_config(self.worker, "producer", self.spec.config), "acks": "all",
                "transactional.id": self.transactional_id})
            self.producer.init_transactions()
            self.store.use_producer(self.producer)
            offsets = self.store.read(self.name)
            self.scan_from = {}  # no dedup scan: aborted data is invisible to read_committed
        else:
            offsets = self.store.read(self.name)
            self.scan_from = {}
            if self.markers:
                self._load_positions(offsets)
                self._scan_unacknowledged()
            self.producer = self.clients.producer({
                **client_config(self.worker, "producer", self.spec.config), "acks": "all"})
        self.task = self.task_factory()
        self.task.context = SourceTaskContext(self.name, self.task_id,
                                              SnapshotReader(self.name, offsets))
        self.task.start(dict(self.task_config))

    def stop(self) -> None:
        """Idempotent; start() may be called again afterwards (a restart). A graceful stop
        commits an open transaction (interval boundaries), as Kafka's final offset commit."""
        if self.txn_open:
            try:
                self._commit_transaction()
            except Exception as e:
                logger.warning("connector {} task {}: the last transaction was aborted: {}",
                               self.name, self.task_id, e)
        task, self.task = self.task, None
        try:
            if task is not None:
                task.stop()
        finally:
            for closeable in (self.producer, self.store, self.admin):
                if closeable is not None:
                    try:
                        closeable.close()
                    except Exception as e:  # closing must not hide the first error
                        logger.warning("closing {}: {}", type(closeable).__name__, e)
            self.producer = self.store = self.admin = None
            self.known_topics.clear()
            self.txn_open = False
            self.txn_latest, self.txn_sent = {}, []

    def on_pause(self) -> None:
        """Pausing commits an open transaction (interval boundaries): a paused task must not
        hold one open past transaction.timeout.ms, nor hold read_committed readers back."""
        if self.txn_open:
            self._commit_transaction()

    # --- the loop --------------------------------------------------------------------------

    def iterate(self) -> int:
        """One poll-produce-commit round; returns how long to wait before the next (ms)."""
        if self.eos:
            return self._iterate_transactional()
        records = self.handler.retry(self.task.poll) or []
        if not records:
            return int(self.task.idle_wait_ms())
        sent: list[tuple[SourceRecord, Any]] = []
        latest: dict[str, tuple[dict, dict]] = {}
        markers = self.markers
        last_part: Any = None
        pkey = ""
        for r in records:
            if r.source_partition is not last_part:  # usually one dict for many records
                last_part, pkey = r.source_partition, canonical(dict(r.source_partition))
            # the offset's canonical JSON is needed per record only for the marker header
            # (an error context computes its own)
            okey = canonical(dict(r.source_offset)) if markers else None
            latest[pkey] = (r.source_partition, r.source_offset)
            sent.append((r, self._produce(r, pkey, okey)))
        self.producer.flush(ACK_TIMEOUT_S)
        acked: list[tuple[SourceRecord, Any]] = []
        for r, fut in sent:
            md = None
            if fut is not None:
                try:
                    md = fut.get(timeout=ACK_TIMEOUT_S)
                except Exception as e:
                    if is_retriable(e):
                        raise  # the actor restarts the task: offsets are re-read
                    self.handler.handle("KAFKA_PRODUCE", e, self._ctx(r))
                else:
                    if markers:  # the dedup scan's positions
                        tp = (md.topic, md.partition)
                        self.positions[tp] = max(self.positions.get(tp, 0), md.offset + 1)
                    self.records_produced += 1
            acked.append((r, md))
        self._commit(latest)
        self.task.commit()
        for r, md in acked:
            self.task.commit_record(r, md)
        return 0

    # --- exactly-once: transactions (KIP-618) ------------------------------------------------

    def _iterate_transactional(self) -> int:
        try:
            records = self.handler.retry(self.task.poll) or []
        except BaseException:
            self._abort_transaction()
            raise
        if records:
            if not self.txn_open:
                self.producer.begin_transaction()
                self.txn_open, self.txn_started = True, self.clock()
            try:
                last_part: Any = None
                pkey = ""
                for r in records:
                    if r.source_partition is not last_part:
                        last_part, pkey = r.source_partition, canonical(dict(r.source_partition))
                    okey = canonical(dict(r.source_offset)) if self.markers else None
                    self.txn_latest[pkey] = (r.source_partition, r.source_offset)
                    self.txn_sent.append((r, self._produce(r, pkey, okey)))
            except BaseException:
                self._abort_transaction()
                raise
        if not self.txn_open:
            return int(self.task.idle_wait_ms())
        left = self.txn_started + self.boundary_interval_s - self.clock()
        if self.boundary == "poll" or left <= 0:
            self._commit_transaction()
            return 0 if records else int(self.task.idle_wait_ms())
        return 0 if records else max(1, min(int(self.task.idle_wait_ms()), int(left * 1000)))

    def _commit_transaction(self) -> None:
        """The latest source offsets into the open transaction, then commit it; then
        ``task.commit()`` and ``commit_record()``. Any failure aborts the transaction."""
        assert self.store is not None
        try:
            for part, off in self.txn_latest.values():
                self.store.write(self.name, dict(part), dict(off))
            self.producer.commit_transaction(ACK_TIMEOUT_S)
        except BaseException as e:
            self._abort_transaction()
            cause = e.__cause__
            if type(e).__name__ == "TransactionAbortableError" and cause is not None:
                if is_retriable(cause):
                    raise cause from e  # the task restarts from the committed offsets
                raise ConnectError(f"a record of the transaction failed: "
                                   f"{type(cause).__name__}: {cause}") from e
            raise
        sent, self.txn_sent, self.txn_latest, self.txn_open = self.txn_sent, [], {}, False
        self.transactions_committed += 1
        acked = []
        for r, fut in sent:
            md = None
            if fut is not None:
                md = fut.get(timeout=ACK_TIMEOUT_S)  # done: the commit flushed them
                self.records_produced += 1
            acked.append((r, md))
        self.task.commit()
        for r, md in acked:
            self.task.commit_record(r, md)

    def _abort_transaction(self) -> None:
        """Best effort: a fenced producer cannot abort, and the coordinator aborts a
        transaction of a fenced epoch (or one that outlived transaction.timeout.ms) itself."""
        was_open, self.txn_open = self.txn_open, False
        self.txn_latest, self.txn_sent = {}, []
        if not was_open or self.producer is None:
            return
        try:
            self.producer.abort_transaction(ACK_TIMEOUT_S)
            logger.warning("connector {} task {}: transaction aborted; the task restarts from "
                           "the committed offsets", self.name, self.task_id)
        except Exception as e:
            logger.warning("connector {} task {}: abort_transaction failed: {}: {}", self.name,
                           self.task_id, type(e).__name__, e)

    def _produce(self, r: SourceRecord, pkey: str, okey: str | None) -> Any:
        if (self.passthrough and r.topic in self.known_topics and type(r.value) in _RAW
                and type(r.key) in _RAW):
            # bytes through bytes converters, no transforms, no marker: nothing to convert
            # (what the mirror's copies are); the same send and error handling as below
            return self._send(r, r.key, r.value, list(r.headers) or None,
                              lambda: self._ctx(r, pkey, okey))

        def ctx() -> ErrorContext:
            return self._ctx(r, pkey, okey)

        def raw() -> bytes | None:
            return best_effort_bytes(r.value)

        t = r
        if len(self.transforms):
            t = self.handler.execute("TRANSFORMATION", lambda: self.transforms.apply(r), ctx,
                                     executing="transforms", raw_value=raw)
            if t is SKIP or t is None:
                return None
        key = self.handler.execute(
            "KEY_CONVERTER", lambda: self.key_converter.serialize(t.topic, t.key), ctx,
            executing=type(self.key_converter).__name__, raw_value=raw)
        if key is SKIP:
            return None
        value = self.handler.execute(
            "VALUE_CONVERTER", lambda: self.value_converter.serialize(t.topic, t.value), ctx,
            executing=type(self.value_converter).__name__, raw_key=key, raw_value=raw)
        if value is SKIP:
            return None
        if (pkey, okey) in self.already_written and okey != "{}":
            self.already_written.discard((pkey, okey))
            return None
        if t.topic not in self.known_topics:
            self._first_write_to(t.topic)
        if self.markers:
            marker = f'["{_json_str(self.name)}",{pkey},{okey}]'.encode()
            headers: Any = [*t.headers, (SOURCE_HEADER, marker)]
        else:
            headers = list(t.headers) or None
        return self._send(t, key, value, headers, ctx)

    def _send(self, t: SourceRecord, key: bytes | None, value: bytes | None, headers: Any,
              ctx: Callable[[], ErrorContext]) -> Any:
        try:
            return self.producer.send(t.topic, value, key=key, headers=headers,
                                      partition=t.partition, timestamp_ms=t.timestamp)
        except Exception as e:  # too large, bad partition, ...
            if is_retriable(e):
                raise
            self.handler.handle("KAFKA_PRODUCE", e, ctx, executing="producer", raw_key=key,
                                raw_value=value)
            return None

    def _first_write_to(self, topic: str) -> None:
        """Before this task's first record to ``topic``: create it if needed (KIP-158; the
        broker does not auto-create) and record its partitions' current log end offsets as
        scan positions, so even a crash during this very first write is deduplicated."""
        c = self.spec.config
        n = ensure_topic(self.clients, self.admin, topic, c["topic.creation.default.partitions"],
                         c["topic.creation.default.replication.factor"])
        if self.eos or not self.markers:  # no scan positions in transactional mode
            self.known_topics.add(topic)
            return
        new = [(topic, p) for p in range(n) if (topic, p) not in self.positions]
        if new:
            consumer = self.clients.consumer(client_config(self.worker, "consumer"))
            try:
                ends = consumer.end_offsets([self.clients.topic_partition(t, p)
                                             for t, p in new])
            finally:
                consumer.close()
            for tp, end in ends.items():
                self.positions[(tp[0], tp[1])] = int(end)
            self._commit({})
        self.known_topics.add(topic)

    def _commit(self, latest: Mapping[str, tuple[dict, dict]]) -> None:
        assert self.store is not None
        futures = [self.store.write(self.name, dict(part), dict(off))
                   for part, off in latest.values()]
        if self.positions:
            futures.append(self.store.write(self.name, {POSITIONS: self.task_id}, {
                "positions": [[t, p, o] for (t, p), o in sorted(self.positions.items())]}))
        self.store.flush(ACK_TIMEOUT_S)
        for f in futures:
            f.get(timeout=ACK_TIMEOUT_S)

    # --- errors ----------------------------------------------------------------------------

    def _ctx(self, r: SourceRecord, pkey: str | None = None,
             okey: str | None = None) -> ErrorContext:
        return ErrorContext(self.name, self.task_id, r.topic, -1 if r.partition is None
                            else r.partition, -1,
                            pkey or canonical(dict(r.source_partition)),
                            okey or canonical(dict(r.source_offset)))

    def _dead_letter_producer(self) -> Any:
        return self.producer

    # --- exactly-once restart ---------------------------------------------------------------

    def _load_positions(self, offsets: Mapping[tuple[str, str], dict[str, Any]]) -> None:
        """The lowest recorded data position per partition over this connector's tasks."""
        self.scan_from: dict[tuple[str, int], int] = {}
        for (conn, pkey), value in offsets.items():
            if conn != self.name or POSITIONS not in pkey:
                continue
            for t, p, o in value.get("positions", []):
                tp = (t, int(p))
                self.scan_from[tp] = min(self.scan_from.get(tp, int(o)), int(o))
                if json.loads(pkey).get(POSITIONS) == self.task_id:
                    self.positions[tp] = int(o)

    def _scan_unacknowledged(self) -> None:
        if not self.scan_from:
            return
        consumer = self.clients.consumer({**client_config(self.worker, "consumer"),
                                          "auto.offset.reset": "earliest",
                                          "enable.auto.commit": False})
        prefix = f'["{_json_str(self.name)}",'.encode()
        try:
            tps = [self.clients.topic_partition(t, p) for t, p in self.scan_from]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, self.scan_from[(tp.topic, tp.partition)])
            end = consumer.end_offsets(tps)
            pending = {tp for tp in tps if consumer.position(tp) < end[tp]}
            while pending:
                for _tp, recs in consumer.poll(timeout_ms=500).items():
                    for rec in recs:
                        for hk, hv in rec.headers or ():
                            if hk == SOURCE_HEADER and hv and hv.startswith(prefix):
                                _, part, off = json.loads(hv)
                                self.already_written.add((canonical(part), canonical(off)))
                pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
        finally:
            consumer.close()
        if self.already_written:
            logger.info("connector {} task {}: {} records were written but not committed "
                        "before the last stop; they will not be produced again", self.name,
                        self.task_id, len(self.already_written))


def transactional_id(worker: Mapping[str, Any], connector: str, task_id: int) -> str:
    """Kafka's ``{group.id}-{connector}-{task}``; without group.id the worker's ``worker.id``,
    else ``connect``. Never the REST address (standalone's worker id): with rest.port=0 it
    changes at every start, and a restarted task must reuse its id to fence its zombie."""
    prefix = worker.get("group.id") or worker.get("worker.id") or "connect"
    return f"{prefix}-{connector}-{task_id}"


def _json_str(s: str) -> str:
    return json.dumps(s)[1:-1]
