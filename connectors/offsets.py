"""Offsets in the compacted ``connect-offsets`` topic (``offset.storage.topic``).

Records use Kafka Connect's layout: key = JSON ``["<connector>", {source partition}]``,
value = JSON ``{source offset}`` (a null value deletes it). Sinks commit their consumed
positions to their consumer group instead (sink_runtime); :func:`sink_partition` gives the
``{"kafka_topic": t, "kafka_partition": p}`` shape Kafka's offsets REST API uses. The worker also
writes one ``["<connector>", {"__rillet.positions": task}]`` record per source task: the log
end offsets of the data partitions it had written when it last committed, from where a
restarted task scans for records written after that commit (see source_runtime).

Reading is a full scan of the topic (assign all partitions, from the beginning to the log end
offsets taken at the start) with ``isolation.level=read_committed``, so the offsets of an
aborted (or still open) transaction are never seen (KIP-618); compaction keeps the topic small.
With exactly-once sources a task's transactional producer writes its offsets
(:meth:`OffsetStore.use_producer`), inside the transaction that holds its records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from .clients import Clients, client_config, ensure_topic

POSITIONS = "__rillet.positions"
#: a read waits at most this long for open transactions below the log end to finish (the
#: coordinator aborts one after transaction.timeout.ms, 60 s by default)
READ_TIMEOUT_S = 120


# json.dumps with arguments builds an encoder per call; this is per record on the source path
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def canonical(obj: Any) -> str:
    """The one JSON text of a partition/offset dict (sorted keys, no spaces)."""
    return _CANONICAL(obj)


def offset_key(connector: str, partition: Mapping[str, Any]) -> bytes:
    return json.dumps([connector, dict(partition)], sort_keys=True,
                      separators=(",", ":")).encode()


def parse_key(data: bytes | None) -> tuple[str, dict[str, Any]] | None:
    try:
        k = json.loads(data) if data is not None else None
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(k, list) and len(k) == 2 and isinstance(k[0], str) and isinstance(k[1], dict):
        return k[0], k[1]
    return None


class OffsetStore:
    """Reads and writes ``offset.storage.topic``. Used from one thread at a time (a task
    actor, or the worker for the REST offsets calls); each user has its own instance."""

    def __init__(self, clients: Clients, worker: Mapping[str, Any]) -> None:
        self.clients = clients
        self.worker = worker
        self.topic = worker["offset.storage.topic"]
        self._producer: Any = None
        self._owns_producer = True
        self._partitions: int | None = None

    def ensure_topic(self, admin: Any) -> int:
        self._partitions = ensure_topic(
            self.clients, admin, self.topic, self.worker["offset.storage.partitions"],
            self.worker["offset.storage.replication.factor"], {"cleanup.policy": "compact"})
        return self._partitions

    def read(self, connector: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """``{(connector, canonical(partition)): offset}``, latest value per key wins."""
        n = self._partitions
        if n is None:
            admin = self.clients.admin(client_config(self.worker, "admin"))
            try:
                n = self.ensure_topic(admin)
            finally:
                admin.close()
        base = {**client_config(self.worker, "consumer"), "auto.offset.reset": "earliest",
                "enable.auto.commit": False}
        tps = [self.clients.topic_partition(self.topic, p) for p in range(n)]
        # the end to read to is the log end (high watermark), not the last stable offset: a
        # transaction of another task still open below our last committed offsets would hide
        # them from a read_committed reader that stopped at the LSO
        probe = self.clients.consumer({**base, "isolation.level": "read_uncommitted"})
        try:
            end = probe.end_offsets(tps)
        finally:
            probe.close()
        consumer = self.clients.consumer({**base, "isolation.level": "read_committed"})
        out: dict[tuple[str, str], dict[str, Any]] = {}
        deadline = time.monotonic() + READ_TIMEOUT_S
        try:
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            pending = {tp for tp in tps if end.get(tp, 0) > consumer.position(tp)}
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {self.topic} to its end took more than "
                                       f"{READ_TIMEOUT_S} s (an open transaction?)")
                for _tp, records in consumer.poll(timeout_ms=200).items():
                    for r in records:
                        k = parse_key(r.key)
                        if k is None or (connector is not None and k[0] != connector):
                            continue
                        if r.value is None:
                            out.pop((k[0], canonical(k[1])), None)
                        else:
                            try:
                                out[(k[0], canonical(k[1]))] = json.loads(r.value)
                            except (ValueError, UnicodeDecodeError):
                                continue
                pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
        finally:
            consumer.close()
        return out

    def use_producer(self, producer: Any) -> None:
        """Write offsets through ``producer`` (a task's transactional producer, owned and
        closed by the task) instead of one of the store's own."""
        self._producer, self._owns_producer = producer, False

    @property
    def producer(self) -> Any:
        if self._producer is None:
            self._owns_producer = True
            self._producer = self.clients.producer({**client_config(self.worker, "producer"),
                                                    "acks": "all"})
        return self._producer

    def write(self, connector: str, partition: Mapping[str, Any],
              offset: Mapping[str, Any] | None) -> Any:
        """Queue one offset record (None: a tombstone); returns the producer's future."""
        value = None if offset is None else canonical(dict(offset)).encode()
        return self.producer.send(self.topic, value, key=offset_key(connector, partition))

    def flush(self, timeout: float | None = 30) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)

    def close(self) -> None:
        if self._producer is not None and self._owns_producer:
            self._producer.close()
        self._producer = None


class SnapshotReader:
    """The OffsetStorageReader a source task sees: the offsets read at its start."""

    def __init__(self, connector: str, offsets: Mapping[tuple[str, str], dict[str, Any]]):
        self._offsets = {p: o for (c, p), o in offsets.items() if c == connector}

    def offset(self, partition: Mapping[str, Any]) -> dict[str, Any] | None:
        o = self._offsets.get(canonical(dict(partition)))
        return dict(o) if o is not None else None

    def offsets(self, partitions: Any) -> dict[str, dict[str, Any]]:
        out = {}
        for p in partitions:
            o = self.offset(p)
            if o is not None:
                out[canonical(dict(p))] = o
        return out


def sink_partition(topic: str, partition: int) -> dict[str, Any]:
    return {"kafka_topic": topic, "kafka_partition": partition}
