"""The typed stores processors call (api.KeyValueStore, WindowStore, SessionStore), each
also the api.StateStore the task drives. One object per (store, task), made by
``stores.build``; it serializes with the spec's serdes, writes bytes to its backend (in
memory or SQLite) and sends every change to the changelog (Kafka's metered, change-logging
and inner store layers folded into one thin object: one call per put, no layer chain).

Changelog records: key and value bytes (value None: a delete), to ``changelog`` (topic,
partition) given to ``open``, through the task's RecordCollector, timestamped by
``timestamp_source()`` when the runtime gives one (Kafka: the timestamp of the record being
processed), else the window start (window stores), the session end (session stores) or the
wall clock (key-value stores). Window and session keys are encoded as Kafka's (keys.py).

Retention (window and session stores): ``expire(stream_time)`` drops windows whose start
(sessions whose end) is <= stream_time - retention_ms, as Kafka's stores do, and a put for
such a window is ignored (it is already closed). Expired windows are not deleted from the
changelog: its topic is ``compact,delete`` with ``retention.ms`` = retention + 1 day, so the
broker drops them (Kafka does the same); a restore may therefore bring back expired windows,
which the next ``expire`` removes.

The window and session stores are in ``typed_windows.py``.

Threads: the owning task's thread calls everything; other threads (interactive queries) may
call the read methods at any time (the backends lock, see memory.py and sqlite.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from ..api import RecordCollector, StoreSpec, TaskId


class _TypedStore:
    """The StateStore life cycle, shared by the three kinds."""

    kind = ""

    def __init__(self, spec: StoreSpec, task_id: TaskId, backend: Any) -> None:
        self.name = spec.name
        self.spec = spec
        self.task_id = task_id
        self._b = backend
        self._kser = spec.key_serde.serialize
        self._kde = spec.key_serde.deserialize
        self._vser = spec.value_serde.serialize
        self._vde = spec.value_serde.deserialize
        self._topic = spec.name  # the topic serdes see: the changelog's once opened
        self._collector: RecordCollector | None = None
        self._changelog: tuple[str, int] | None = None
        self._logging = False
        self.timestamp_source: Callable[[], int] | None = None
        # the record cache's latest values not yet written (typed; see cache_put)
        self._pending: dict[Any, Any] = {}

    @property
    def persistent(self) -> bool:
        """True when the local state survives a restart (SQLite under a task dir)."""
        return bool(self._b.persistent)

    @property
    def logging(self) -> bool:
        """True when changes go to the changelog."""
        return self._logging

    def open(self, task_dir: str | None, collector: RecordCollector | None,
             changelog: tuple[str, int] | None, *,
             timestamp_source: Callable[[], int] | None = None) -> None:
        self._b.open(task_dir)
        self._collector = collector
        self._changelog = changelog
        self._logging = bool(self.spec.logged and collector is not None
                             and changelog is not None)
        if changelog is not None:
            self._topic = changelog[0]
        if timestamp_source is not None:
            self.timestamp_source = timestamp_source
        self._opened()

    def _opened(self) -> None:
        pass

    def _send(self, key: bytes, value: bytes | None, default_ts: int | None) -> None:
        source = self.timestamp_source
        if source is not None:
            ts = source()
        elif default_ts is not None:
            ts = default_ts
        else:
            ts = int(time.time() * 1000)
        topic, partition = self._changelog  # type: ignore[misc]
        self._collector.send(topic, key, value, ts, (), partition)  # type: ignore[union-attr]

    def _send_many(self, keys: list[bytes], values: list[bytes | None],
                   default_ts: list[int] | None) -> None:
        """``_send`` of a cache flush's records, through the collector's ``send_many``
        when it has one (one producer call for the batch: the changelog is one partition)."""
        n = len(keys)
        source = self.timestamp_source
        if source is not None:
            timestamps = [source()] * n
        elif default_ts is not None:
            timestamps = default_ts
        else:
            timestamps = [int(time.time() * 1000)] * n
        topic, partition = self._changelog  # type: ignore[misc]
        many = getattr(self._collector, "send_many", None)
        if many is not None:
            many(topic, partition, keys, values, timestamps)
            return
        send = self._collector.send  # type: ignore[union-attr]
        for i in range(n):
            send(topic, keys[i], values[i], timestamps[i], (), partition)

    def checkpoint(self) -> int | None:
        return self._b.checkpoint()

    def commit(self, changelog_offset: int | None) -> None:
        if self._pending:
            raise RuntimeError(f"store {self.name}: commit with unflushed cached writes "
                               "(flush_cache first: their changelog records must be in "
                               "the commit)")
        self._b.commit(changelog_offset)

    def close(self) -> None:
        self._pending = {}  # not flushed: lost with the other uncommitted writes
        self._b.close()

    def wipe(self) -> None:
        self._pending = {}
        self._b.wipe()
        self._opened()

    def flush_cache(self) -> None:
        """Write the values ``cache_put`` deferred (serialized, into the backend and the
        changelog), in the order their keys were first cached."""
        pending = self._pending
        if pending:
            self._pending = {}
            self._write_pending(pending)

    def _write_pending(self, pending: dict[Any, Any]) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        self.flush_cache()
        return self._b.count()

    def __repr__(self) -> str:
        backend = type(self._b).__name__
        return f"<{type(self).__name__} {self.name!r} task {self.task_id} on {backend}>"


def _check_key(key: Any) -> None:
    if key is None:
        raise TypeError("a state store key cannot be None")


class KeyValueStoreImpl(_TypedStore):
    """api.KeyValueStore: values by key; iteration in serialized-key order."""

    kind = "kv"

    def get(self, key: Any) -> Any:
        pending = self._pending
        if pending and key.__hash__ is not None and key in pending:
            return pending[key]
        value = self._b.get(self._kser(self._topic, key))
        return None if value is None else self._vde(self._topic, value)

    def cache_put(self, key: Any, value: Any) -> None:
        """Put ``key``'s value later: it is kept as it is (no serialization), read back by
        ``get`` (and every read: iterations flush first), and written to the backend and
        the changelog by ``flush_cache`` (the record cache's flush, before every commit).
        Only the latest value of a key is written."""
        if key is None:
            _check_key(key)
        self._pending[key] = value

    def _write_pending(self, pending: dict[Any, Any]) -> None:
        """As ``put`` of each, batched: the backend's lock once (``write_many``), the
        changelog records in one ``send_many``."""
        kser, vser, topic = self._kser, self._vser, self._topic
        keys = [kser(topic, key) for key in pending]
        values = [None if v is None else vser(topic, v) for v in pending.values()]
        self._b.write_many(list(zip(keys, values, strict=True)))
        if self._logging:
            self._send_many(keys, values, None)

    def put(self, key: Any, value: Any, *, log: bool = True) -> None:
        """``log=False``: the local store only; the caller sends the change later with
        ``log``."""
        if key is None:
            _check_key(key)
        if self._pending and key.__hash__ is not None:
            self._pending.pop(key, None)
        kb = self._kser(self._topic, key)
        if value is None:
            self._b.delete(kb)
            vb = None
        else:
            vb = self._vser(self._topic, value)
            self._b.put(kb, vb)
        if log and self._logging:
            self._send(kb, vb, None)

    def log(self, key: Any, value: Any) -> None:
        """Send ``key``'s value (None: a tombstone) to the changelog, if the store logs."""
        if self._logging:
            kb = self._kser(self._topic, key)
            self._send(kb, None if value is None else self._vser(self._topic, value), None)

    def put_if_absent(self, key: Any, value: Any) -> Any:
        """Put unless ``key`` has a value; returns the value it had (None: it was put)."""
        old = self.get(key)
        if old is None:
            self.put(key, value)
        return old

    def put_all(self, entries: list[tuple[Any, Any]]) -> None:
        for key, value in entries:
            self.put(key, value)

    def delete(self, key: Any) -> Any:
        """Remove ``key``; returns its old value (None if it had none). Logged either way
        (a tombstone), as Kafka's."""
        _check_key(key)
        self.flush_cache()
        kb = self._kser(self._topic, key)
        old = self._b.delete(kb)
        if self._logging:
            self._send(kb, None, None)
        return None if old is None else self._vde(self._topic, old)

    def _typed(self, pairs: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[Any, Any]]:
        kde, vde, topic = self._kde, self._vde, self._topic
        for kb, vb in pairs:
            yield kde(topic, kb), vde(topic, vb)

    def all(self) -> Iterator[tuple[Any, Any]]:
        self.flush_cache()
        return self._typed(self._b.range(None, None))

    def range(self, lo: Any, hi: Any) -> Iterator[tuple[Any, Any]]:
        """Keys whose serialized form is within [ser(lo), ser(hi)] (None: unbounded)."""
        self.flush_cache()
        return self._typed(self._b.range(
            None if lo is None else self._kser(self._topic, lo),
            None if hi is None else self._kser(self._topic, hi)))

    def reverse_all(self) -> Iterator[tuple[Any, Any]]:
        """``all()`` in descending key order (read into a list first)."""
        return reversed(list(self.all()))

    def reverse_range(self, lo: Any, hi: Any) -> Iterator[tuple[Any, Any]]:
        """``range(lo, hi)`` in descending key order (read into a list first)."""
        return reversed(list(self.range(lo, hi)))

    def prefix_scan(self, prefix: Any, prefix_serializer: Any = None
                    ) -> Iterator[tuple[Any, Any]]:
        """Keys whose serialized form starts with the serialized ``prefix`` (Kafka's
        ``prefixScan``; ``prefix_serializer``: a serde for the prefix if not the key's)."""
        ser = self._kser if prefix_serializer is None else prefix_serializer.serialize
        pb = ser(self._topic, prefix)
        self.flush_cache()
        kde, vde, topic = self._kde, self._vde, self._topic
        for kb, vb in self._b.range(pb, None):
            if not kb.startswith(pb):
                return
            yield kde(topic, kb), vde(topic, vb)

    def approximate_num_entries(self) -> int:
        self.flush_cache()
        return self._b.count()

    def restore(self, records: list[tuple[bytes, bytes | None]]) -> None:
        if records:
            self._b.put_many(list(dict(records).items()))  # the last write of a key wins
