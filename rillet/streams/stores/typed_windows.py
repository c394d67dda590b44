"""The typed window and session stores (api.WindowStore, api.SessionStore; the key-value
store and the life cycle they share are in ``typed.py``, whose docstring covers changelog
records, retention and threads for all three), and the record cache's writes they read
back (``cache_put``; ranges read through it, see ``WindowStoreImpl.ranged_cache``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..api import Window, Windowed
from .keys import SEQ_MASK, session_key, split_session_key, split_window_key, window_key
from .typed import _check_key, _TypedStore


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
            self._flush_expiring(min_live)
            self._min_live = min_live
            self._b.expire_before(min_live)  # type: ignore[attr-defined]

    def _flush_expiring(self, min_live: int) -> None:
        """Write the cached writes of the windows (sessions) about to expire, so their
        latest values reach the changelog; the others stay cached until the commit (a
        flush of everything here wrote the cache every retention / 2 of stream time)."""
        pending = self._pending  # type: ignore[attr-defined]
        if pending:
            time_of = self._pending_time  # type: ignore[attr-defined]
            for pk, value in [(pk, v) for pk, v in pending.items() if time_of(pk) < min_live]:
                self._write_one(pk, value)  # type: ignore[attr-defined]


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
        """As ``put`` of each, batched (see KeyValueStoreImpl._write_pending); windows
        that expired meanwhile are skipped, as ``put`` skips them."""
        if self._by_key is not None:
            self._by_key = {}
        kser, vser, topic, min_live = self._kser, self._vser, self._topic, self._min_live
        rows = []
        for (key, start), value in pending.items():
            if start >= min_live:
                rows.append((kser(topic, key), start, 0,
                             None if value is None else vser(topic, value)))
        if not rows:
            return
        self._b.write_many(rows)
        if self._logging:
            self._send_many([window_key(kb, start, 0) for kb, start, _, _ in rows],
                            [vb for _, _, _, vb in rows], [start for _, start, _, _ in rows])

    @staticmethod
    def _pending_time(pk: tuple[Any, int]) -> int:
        return pk[1]

    def _write_one(self, pk: tuple[Any, int], value: Any) -> None:
        self.put(pk[0], value, pk[1])  # (put takes it out of the cache)

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

    @staticmethod
    def _pending_time(session: Windowed) -> int:
        return session.window.end

    def _write_one(self, session: Windowed, value: Any) -> None:
        self.put(session, value)  # (put takes it out of the cache)

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
