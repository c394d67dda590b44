"""In-memory byte stores: the key-value, window and session backends behind the typed stores
(``typed.py``) when ``StoreSpec.in_memory``. Keys and values are bytes; order is bytes order.

Threads: the task's thread writes; interactive queries read from other threads. Single
dict reads need no lock (one dict operation is atomic); writes and every iteration take the
store's lock, and iterations copy what they return under it, so a reader never sees a dict
change size under its feet and the writer never waits for a slow reader's loop.

A closed store's containers are replaced by :data:`_CLOSED`, whose every use raises
:class:`InvalidStateStoreError`: no per-call "is open" test on the hot path.
"""

from __future__ import annotations

import bisect
import heapq
import threading
from collections.abc import Iterator
from typing import Any

from .errors import InvalidStateStoreError

_PAGE = 1024


class _Closed:
    """Stands in for the containers of a closed store: every access raises."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise InvalidStateStoreError(self._name)

    def _raise(self, *_: Any) -> Any:
        raise InvalidStateStoreError(self._name)

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __len__ = __iter__ = _raise


class _MemoryBase:
    """Life cycle shared by the memory backends: nothing is durable, so the checkpoint is
    the offset of the last ``commit`` since ``open`` (None after a restart)."""

    persistent = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._checkpoint: int | None = None
        self._set_closed()

    def _set_closed(self) -> None:
        raise NotImplementedError

    def _set_empty(self) -> None:
        raise NotImplementedError

    @property
    def is_open(self) -> bool:
        return not isinstance(self._data, _Closed)  # type: ignore[attr-defined]

    def open(self, task_dir: str | None) -> None:
        """Empty, unless already open: then it keeps its content and checkpoint (a standby
        replica's store handed to the active task, standby.py)."""
        with self._lock:
            if self.is_open:
                return
            self._set_empty()
            self._checkpoint = None

    def checkpoint(self) -> int | None:
        return self._checkpoint

    def commit(self, changelog_offset: int | None) -> None:
        if not self.is_open:
            raise InvalidStateStoreError(self.name)
        self._checkpoint = changelog_offset

    def close(self) -> None:
        with self._lock:
            self._set_closed()

    def wipe(self) -> None:
        with self._lock:
            if self.is_open:
                self._set_empty()
            self._checkpoint = None


class MemoryKeyValueBytes(_MemoryBase):
    """A dict, plus the sorted list of its keys built when an ordered read needs it and
    dropped when a key is added or removed (updating a key keeps it: the common case of
    an aggregate)."""

    def _set_closed(self) -> None:
        self._data: dict[bytes, bytes] = _Closed(self.name)  # type: ignore[assignment]
        self._sorted: list[bytes] | None = None

    def _set_empty(self) -> None:
        self._data = {}
        self._sorted = []

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        with self._lock:
            data = self._data
            n = len(data)
            data[key] = value
            if len(data) != n:
                self._sorted = None

    def put_many(self, items: list[tuple[bytes, bytes | None]]) -> None:
        with self._lock:
            data = self._data
            for key, value in items:
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            self._sorted = None

    write_many = put_many  # (a record cache's flush: the same as a restore's rows)

    def delete(self, key: bytes) -> bytes | None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._sorted = None
            return old

    def _keys(self) -> list[bytes]:  # under the lock
        if self._sorted is None:
            self._sorted = sorted(self._data)
        return self._sorted

    def range(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with lo <= key <= hi (None: unbounded), by key, a page at a time (each
        page copied under the lock; the next resumes after the last key returned)."""
        after: bytes | None = None
        while True:
            with self._lock:
                keys = self._keys()
                if after is not None:
                    i = bisect.bisect_right(keys, after)
                else:
                    i = 0 if lo is None else bisect.bisect_left(keys, lo)
                j = len(keys) if hi is None else bisect.bisect_right(keys, hi)
                page = [(k, self._data[k]) for k in keys[i:min(j, i + _PAGE)]]
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    def count(self) -> int:
        return len(self._data)


class MemoryWindowBytes(_MemoryBase):
    """Windows by start: ``{start: {key: value}}`` (``{start: {key: {seq: value}}}`` when
    duplicates are retained), and the sorted list of starts, so expiry drops whole
    windows from the front (Kafka's in-memory window store's segment map)."""

    def __init__(self, name: str, retain_duplicates: bool) -> None:
        self.dups = retain_duplicates
        super().__init__(name)

    def _set_closed(self) -> None:
        self._data: dict[int, dict[bytes, Any]] = _Closed(self.name)  # type: ignore
        self._starts: list[int] = []

    def _set_empty(self) -> None:
        self._data = {}
        self._starts = []

    def _segment(self, start: int) -> dict[bytes, Any]:  # under the lock
        seg = self._data.get(start)
        if seg is None:
            seg = self._data[start] = {}
            bisect.insort(self._starts, start)
        return seg

    def put(self, key: bytes, start: int, seq: int, value: bytes) -> None:
        with self._lock:
            seg = self._segment(start)
            if self.dups:
                seg.setdefault(key, {})[seq] = value
            else:
                seg[key] = value

    def put_many(self, rows: list[tuple[bytes, int, int, bytes | None]]) -> None:
        """``(key, start, seq, value or None: delete)`` rows."""
        for key, start, seq, value in rows:
            if value is None:
                self.delete(key, start, seq)
            else:
                self.put(key, start, seq, value)

    write_many = put_many

    def delete(self, key: bytes, start: int, seq: int = 0) -> None:
        with self._lock:
            seg = self._data.get(start)
            if seg is None:
                return
            if self.dups:
                seqs = seg.get(key)
                if seqs is not None:
                    seqs.pop(seq, None)
                    if not seqs:
                        del seg[key]
            else:
                seg.pop(key, None)

    def get(self, key: bytes, start: int) -> bytes | None:
        with self._lock:
            seg = self._data.get(start)
            value = None if seg is None else seg.get(key)
            if value is not None and self.dups:
                return value[min(value)] if value else None
            return value

    def _values(self, value: Any) -> list[tuple[int, bytes]]:
        return sorted(value.items()) if self.dups else [(0, value)]

    def fetch_range(self, key: bytes, time_from: int, time_to: int
                    ) -> Iterator[tuple[int, bytes]]:
        with self._lock:
            starts = self._starts
            out = []
            for start in starts[bisect.bisect_left(starts, time_from):
                                bisect.bisect_right(starts, time_to)]:
                value = self._data[start].get(key)
                if value is not None:
                    out.extend((start, v) for _, v in self._values(value))
        return iter(out)

    def fetch_all(self, time_from: int | None, time_to: int | None
                  ) -> Iterator[tuple[bytes, int, bytes]]:
        """``(key, start, value)`` by start, key, sequence number."""
        with self._lock:
            starts = self._starts
            lo = 0 if time_from is None else bisect.bisect_left(starts, time_from)
            hi = len(starts) if time_to is None else bisect.bisect_right(starts, time_to)
            chosen = starts[lo:hi]
        for start in chosen:
            with self._lock:
                seg = self._data.get(start)
                page = [] if seg is None else [
                    (k, start, v) for k in sorted(seg) for _, v in self._values(seg[k])]
            yield from page

    def expire_before(self, min_live_start: int) -> None:
        """Drop the windows whose start is < ``min_live_start``."""
        with self._lock:
            starts = self._starts
            n = bisect.bisect_left(starts, min_live_start)
            for start in starts[:n]:
                del self._data[start]
            del starts[:n]

    def max_seq(self) -> int:
        with self._lock:
            return max((s for seg in self._data.values() for seqs in seg.values()
                        for s in seqs), default=0) if self.dups else 0

    def count(self) -> int:
        with self._lock:
            if self.dups:
                return sum(len(s) for seg in self._data.values() for s in seg.values())
            return sum(len(seg) for seg in self._data.values())


class MemorySessionBytes(_MemoryBase):
    """Sessions by key: ``{key: {(end, start): value}}``, and a heap of ``(end, key,
    start)`` for expiry (an entry whose session is gone is skipped when popped)."""

    def _set_closed(self) -> None:
        self._data: dict[bytes, dict[tuple[int, int], bytes]] = _Closed(self.name)  # type: ignore
        self._heap: list[tuple[int, bytes, int]] = []

    def _set_empty(self) -> None:
        self._data = {}
        self._heap = []

    def put(self, key: bytes, start: int, end: int, value: bytes) -> None:
        with self._lock:
            sessions = self._data.get(key)
            if sessions is None:
                sessions = self._data[key] = {}
            if (end, start) not in sessions:
                heapq.heappush(self._heap, (end, key, start))
            sessions[(end, start)] = value

    def put_many(self, rows: list[tuple[bytes, int, int, bytes | None]]) -> None:
        """``(key, start, end, value or None: remove)`` rows."""
        for key, start, end, value in rows:
            if value is None:
                self.remove(key, start, end)
            else:
                self.put(key, start, end, value)

    def remove(self, key: bytes, start: int, end: int) -> None:
        with self._lock:
            sessions = self._data.get(key)
            if sessions is not None:
                sessions.pop((end, start), None)
                if not sessions:
                    del self._data[key]

    def find(self, key: bytes, earliest_end: int | None, latest_start: int | None
             ) -> Iterator[tuple[int, int, bytes]]:
        """``(start, end, value)`` of ``key``'s sessions with end >= earliest_end and
        start <= latest_start (None: unbounded), by end then start."""
        with self._lock:
            sessions = self._data.get(key)
            if not sessions:
                return iter(())
            out = [(start, end, v) for (end, start), v in sorted(sessions.items())
                   if (earliest_end is None or end >= earliest_end)
                   and (latest_start is None or start <= latest_start)]
        return iter(out)

    def all(self) -> Iterator[tuple[bytes, int, int, bytes]]:
        """``(key, start, end, value)`` by end, key, start."""
        with self._lock:
            out = sorted((end, key, start, v) for key, sessions in self._data.items()
                         for (end, start), v in sessions.items())
        return iter([(key, start, end, v) for end, key, start, v in out])

    def expire_before(self, min_live_end: int) -> None:
        """Drop the sessions whose end is < ``min_live_end``."""
        with self._lock:
            heap = self._heap
            while heap and heap[0][0] < min_live_end:
                end, key, start = heapq.heappop(heap)
                sessions = self._data.get(key)
                if sessions is not None and sessions.pop((end, start), None) is not None:
                    if not sessions:
                        del self._data[key]

    def count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._data.values())
