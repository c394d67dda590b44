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

Threads: the owning task's thread calls everything; other threads (interactive queries) may
call the read methods at any time (the backends lock, see memory.py and sqlite.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from ..api import RecordCollector, StoreSpec, TaskId, Window, Windowed
from .keys import SEQ_MASK, session_key, split_session_key, split_window_key, window_key


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
        for key, value in pending.items():
            self.put(key, value)

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


class _Retention:
    """Stream time as seen through ``expire`` and what it makes too old."""

    def _opened(self) -> None:
        self._observed = -(1 << 63)
        self._min_live = -(1 << 63)

    def _expired(self, t: int) -> bool:
        return t < self._min_live

    def expire(self, stream_time: int) -> None:
        retention = self.spec.retention_ms  # type: ignore[attr-defined]
        if retention is None or stream_time <= self._observed:
            return
        self._observed = stream_time
        min_live = stream_time - retention + 1
        if min_live > self._min_live:
            self.flush_cache()  # type: ignore[attr-defined]
            self._min_live = min_live
            self._b.expire_before(min_live)  # type: ignore[attr-defined]


class WindowStoreImpl(_Retention, _TypedStore):
    """api.WindowStore: values by (key, window start). With ``retain_duplicates`` (the
    buffers of stream-stream joins) every put adds a value under a new sequence number and
    a None put does nothing; ``fetch`` then returns the first value put."""

    kind = "window"

    def _opened(self) -> None:
        super()._opened()
        self._dups = self.spec.retain_duplicates
        self._size = self.spec.window_size_ms or 0
        self._seq = self._b.max_seq() if self._dups and self._b.is_open else 0
        # with ranged_cache(): the cached windows by key, so fetch_range reads through
        # the cache instead of flushing it (sliding windows read a range per record)
        self._by_key: dict[Any, dict[int, Any]] | None = (
            {} if getattr(self, "_ranged", False) else None)

    def ranged_cache(self) -> None:
        """Let ``fetch_range`` answer from the cached writes plus the backend, without
        flushing them (a sliding-window aggregation's record cache)."""
        self._ranged = True
        if self._by_key is None:
            self.flush_cache()
            self._by_key = {}

    def cache_put(self, key: Any, value: Any, window_start: int) -> None:
        """``put`` later (see KeyValueStoreImpl.cache_put): read back by ``fetch`` (and
        ``fetch_range`` after ``ranged_cache()``), written by ``flush_cache`` (and before
        any other read)."""
        _check_key(key)
        if self._dups:
            raise TypeError(f"store {self.name}: cache_put on a store with duplicates")
        self._pending[(key, window_start)] = value
        by_key = self._by_key
        if by_key is not None:
            windows = by_key.get(key)
            if windows is None:
                windows = by_key[key] = {}
            windows[window_start] = value

    def _write_pending(self, pending: dict[Any, Any]) -> None:
        if self._by_key is not None:
            self._by_key = {}
        for (key, start), value in pending.items():
            self.put(key, value, start)

    def put(self, key: Any, value: Any, window_start: int) -> None:
        _check_key(key)
        if self._pending and key.__hash__ is not None:
            self._pending.pop((key, window_start), None)
            if self._by_key:
                self._by_key.get(key, {}).pop(window_start, None)
        if window_start < self._min_live:
            return  # already expired: Kafka's "Skipping record for expired segment"
        kb = self._kser(self._topic, key)
        if value is None:
            if self._dups:
                return
            self._b.delete(kb, window_start)
            vb = None
            seq = 0
        else:
            vb = self._vser(self._topic, value)
            if self._dups:
                self._seq = seq = (self._seq + 1) & SEQ_MASK
            else:
                seq = 0
            self._b.put(kb, window_start, seq, vb)
        if self._logging:
            self._send(window_key(kb, window_start, seq), vb, window_start)

    def fetch(self, key: Any, window_start: int) -> Any:
        pending = self._pending
        if pending and key.__hash__ is not None:
            pk = (key, window_start)
            if pk in pending:
                return pending[pk]
        value = self._b.get(self._kser(self._topic, key), window_start)
        return None if value is None else self._vde(self._topic, value)

    def fetch_range(self, key: Any, time_from: int, time_to: int
                    ) -> Iterator[tuple[int, Any]]:
        vde, topic = self._vde, self._topic
        if self._by_key is None or key.__hash__ is None:
            self.flush_cache()
            cached = None
        else:
            cached = self._by_key.get(key) if self._pending else None
        rows = self._b.fetch_range(self._kser(topic, key), time_from, time_to)
        if not cached:
            for start, vb in rows:
                yield start, vde(topic, vb)
            return
        merged = {start: vde(topic, vb) for start, vb in rows}
        for start, value in cached.items():
            if time_from <= start <= time_to:
                if value is None:
                    merged.pop(start, None)
                else:
                    merged[start] = value
        yield from sorted(merged.items())

    def backward_fetch(self, key: Any, time_from: int, time_to: int
                       ) -> Iterator[tuple[int, Any]]:
        """``fetch_range`` latest window first (Kafka's ``backwardFetch``)."""
        return reversed(list(self.fetch_range(key, time_from, time_to)))

    def _typed(self, rows: Iterator[tuple[bytes, int, bytes]]
               ) -> Iterator[tuple[Windowed, Any]]:
        kde, vde, topic, size = self._kde, self._vde, self._topic, self._size
        for kb, start, vb in rows:
            yield Windowed(kde(topic, kb), Window(start, start + size)), vde(topic, vb)

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[Windowed, Any]]:
        """Every key's windows with time_from <= start <= time_to, by start then key."""
        self.flush_cache()
        return self._typed(self._b.fetch_all(time_from, time_to))

    def all(self) -> Iterator[tuple[Windowed, Any]]:
        self.flush_cache()
        return self._typed(self._b.fetch_all(None, None))

    def restore(self, records: list[tuple[bytes, bytes | None]]) -> None:
        if not records:
            return
        latest: dict[tuple[bytes, int, int], bytes | None] = {}
        for data, vb in records:
            kb, start, seq = split_window_key(data)
            latest[(kb, start, seq if self._dups else 0)] = vb
        if self._dups:
            self._seq = max(self._seq, max(seq for (_, _, seq) in latest))
        self._b.put_many([(kb, start, seq, vb) for (kb, start, seq), vb in latest.items()])


class SessionStoreImpl(_Retention, _TypedStore):
    """api.SessionStore: values by (key, session window [start, end])."""

    kind = "session"

    def _opened(self) -> None:
        super()._opened()
        self._by_key: dict[Any, dict[tuple[int, int], Any]] = {}  # cached, by key

    def cache_put(self, session: Windowed, value: Any) -> None:
        """``put`` (None: ``remove``) later, as KeyValueStoreImpl.cache_put: the session
        reads (``find_sessions``, ``fetch``, ``fetch_session``) answer from the cached
        writes plus the backend; ``all`` and ``expire`` flush them first."""
        _check_key(session.key)
        self._pending[session] = value
        windows = self._by_key.get(session.key)
        if windows is None:
            windows = self._by_key[session.key] = {}
        windows[(session.window.start, session.window.end)] = value

    def _write_pending(self, pending: dict[Any, Any]) -> None:
        self._by_key = {}
        for session, value in pending.items():
            self.put(session, value)

    def _session(self, kb: bytes, start: int, end: int) -> Windowed:
        return Windowed(self._kde(self._topic, kb), Window(start, end))

    def find_sessions(self, key: Any, earliest_session_end: int | None,
                      latest_session_start: int | None) -> Iterator[tuple[Windowed, Any]]:
        """Sessions of ``key`` with end >= earliest_session_end and start <=
        latest_session_start (None: unbounded), by end then start."""
        topic, vde = self._topic, self._vde
        rows = self._b.find(self._kser(topic, key), earliest_session_end,
                            latest_session_start)
        cached = (self._by_key.get(key) if self._pending and key.__hash__ is not None
                  else None)
        if not cached:
            for start, end, vb in rows:
                yield Windowed(key, Window(start, end)), vde(topic, vb)
            return
        merged = {(start, end): vde(topic, vb) for start, end, vb in rows}
        for (start, end), value in cached.items():
            if ((earliest_session_end is None or end >= earliest_session_end)
                    and (latest_session_start is None or start <= latest_session_start)):
                if value is None:
                    merged.pop((start, end), None)
                else:
                    merged[(start, end)] = value
        for (start, end), value in sorted(merged.items(), key=lambda kv: (kv[0][1],
                                                                          kv[0][0])):
            yield Windowed(key, Window(start, end)), value

    def fetch(self, key: Any) -> Iterator[tuple[Windowed, Any]]:
        """All sessions of ``key``, by end then start."""
        return self.find_sessions(key, None, None)

    def fetch_session(self, key: Any, start: int, end: int) -> Any:
        """The value of the session [start, end] of ``key`` (None: no such session)."""
        for wk, value in self.find_sessions(key, end, start):
            if wk.window.start == start and wk.window.end == end:
                return value
        return None

    def all(self) -> Iterator[tuple[Windowed, Any]]:
        """Every session, by end, key, then start."""
        vde, topic = self._vde, self._topic
        self.flush_cache()
        for kb, start, end, vb in self._b.all():
            yield self._session(kb, start, end), vde(topic, vb)

    def put(self, session: Windowed, value: Any) -> None:
        _check_key(session.key)
        start, end = session.window.start, session.window.end
        if self._pending and session.key.__hash__ is not None:
            if session in self._pending:
                del self._pending[session]
                self._by_key.get(session.key, {}).pop((start, end), None)
        if end < self._min_live:
            return  # already expired
        kb = self._kser(self._topic, session.key)
        if value is None:
            self._b.remove(kb, start, end)
            vb = None
        else:
            vb = self._vser(self._topic, value)
            self._b.put(kb, start, end, vb)
        if self._logging:
            self._send(session_key(kb, start, end), vb, end)

    def remove(self, session: Windowed) -> None:
        self.put(session, None)

    def restore(self, records: list[tuple[bytes, bytes | None]]) -> None:
        if records:
            latest = {split_session_key(data): vb for data, vb in records}
            self._b.put_many([(kb, s, e, vb) for (kb, s, e), vb in latest.items()])
