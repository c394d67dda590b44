"""SQLite byte stores (stdlib ``sqlite3``): the key-value, window and session backends behind
the typed stores (``typed.py``) unless ``StoreSpec.in_memory``.

One file per store per task: ``{task_dir}/{store}.sqlite`` (``:memory:`` when the task has
no directory). WAL journal, ``synchronous=NORMAL``. A write transaction stays open between
commits: puts cost no fsync, ``commit(changelog_offset)`` writes the changelog offset into
the same file's ``rillet_checkpoint`` table and commits both in one transaction, so the
local state and its checkpoint never disagree: after a crash of the process (no commit)
the file reopens at the last commit, with that commit's checkpoint, and the task restores
the changelog from there. A commit does not fsync (WAL with ``synchronous=NORMAL``: the
WAL is synced at its checkpoints): a power loss may take back the last commits, but
data and checkpoint together, so the restore reads the changelog from the older
checkpoint and nothing is lost (the changelog is the durable copy). ``close`` without
``commit`` discards the uncommitted writes.

A write-back cache (key-value and window stores without duplicates, Kafka's caching layer
without its downstream de-duplication): puts land in a dict of at most ``cache_entries``
entries and reach SQLite in one ``executemany`` at commit, when the dict is full, or before
any SQL read (iterations, counts); point reads are answered from it when it holds the key,
misses are read from SQLite and remembered. It is part of the open transaction: a close or
crash without commit loses it exactly as it loses the uncommitted rows, so the file and its
checkpoint still agree. Changelog records are not cached: they are sent on every put (the
typed store does), so ``commit``'s offset covers them.

Threads: one connection per store, used under the store's lock by the task's thread and by
interactive-query threads alike (``check_same_thread=False``). So a query sees the latest
writes, uncommitted ones included, exactly as with the in-memory store (and Kafka's RocksDB
stores); a second, read-only connection would see only the last commit, up to
``commit.interval.ms`` old. Iterations fetch a page of rows per lock hold (keyset
pagination: each page a fresh query resuming after the last row), so no cursor stays open
across a yield and a slow reader never holds up the task for more than one page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .sqlite_base import _MAX, _MIN, _PAGE, DEFAULT_CACHE_ENTRIES, _SqliteBase

__all__ = ["DEFAULT_CACHE_ENTRIES", "SqliteKeyValueBytes", "SqliteSessionBytes",
           "SqliteWindowBytes"]


class SqliteKeyValueBytes(_SqliteBase):
    """Rows ``(k, v)``; pk: the key."""

    kind = "kv"
    schema = """
    CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
    """
    _PUT = "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    _DELETE = "DELETE FROM kv WHERE k = ?"
    _GET = "SELECT v FROM kv WHERE k = ?"

    @staticmethod
    def _put_row(pk: bytes, value: bytes) -> tuple:
        return (pk, value)

    @staticmethod
    def _pk_row(pk: bytes) -> tuple:
        return (pk,)

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            return self._get(key)

    def put(self, key: bytes, value: bytes) -> None:
        with self._lock:
            self._set(key, value)

    def delete(self, key: bytes) -> bytes | None:
        with self._lock:
            old = self._get(key)
            if old is not None:
                self._set(key, None)
            return old

    def range(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        upper = "" if hi is None else " AND k <= ?"
        params: tuple = () if hi is None else (hi,)
        return self._pages_from(
            "SELECT k, v FROM kv WHERE k >= ?" + upper + " ORDER BY k LIMIT ?",
            "SELECT k, v FROM kv WHERE k > ?" + upper + " ORDER BY k LIMIT ?",
            b"" if lo is None else lo, params)

    def _pages_from(self, first: str, more: str, bound: bytes, params: tuple
                    ) -> Iterator[tuple[bytes, bytes]]:
        sql = first
        while True:
            with self._lock:
                self._flush()
                rows = self._cur.execute(sql, (bound, *params, _PAGE)).fetchall()
            yield from rows
            if len(rows) < _PAGE:
                return
            sql, bound = more, rows[-1][0]

    def count(self) -> int:
        return self._scalar("SELECT count(*) FROM kv")


_INF = 2**63


class SqliteWindowBytes(_SqliteBase):
    """Rows ``(k, start, seq, v)``; pk: ``(k, start, seq)``. Stores retaining duplicates
    (every put a new row, reads by range) skip the cache."""

    kind = "window"
    schema = """
    CREATE TABLE IF NOT EXISTS win (
        k BLOB NOT NULL, start INTEGER NOT NULL, seq INTEGER NOT NULL, v BLOB NOT NULL,
        PRIMARY KEY (k, start, seq)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS win_by_start ON win (start, k, seq);
    """
    _PUT = ("INSERT INTO win (k, start, seq, v) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (k, start, seq) DO UPDATE SET v = excluded.v")
    _DELETE = "DELETE FROM win WHERE k = ? AND start = ? AND seq = ?"
    _GET = "SELECT v FROM win WHERE k = ? AND start = ? AND seq = ?"

    def __init__(self, name: str, retain_duplicates: bool,
                 cache_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        super().__init__(name, 0 if retain_duplicates else cache_entries)
        self.dups = retain_duplicates
        self._oldest = _INF  # no window starts before: expiry below it has nothing to do
        self._newest = -_INF  # no window starts after: a get above it needs no SQL

    def _connected(self) -> None:
        row = self._cur.execute("SELECT min(start), max(start) FROM win").fetchone()
        self._oldest = _INF if row[0] is None else row[0]
        self._newest = -_INF if row[1] is None else row[1]

    def _restored(self, rows: list) -> None:
        for (_, start, _), value in rows:
            if value is not None:
                if start < self._oldest:
                    self._oldest = start
                if start > self._newest:
                    self._newest = start

    def put_many(self, rows: list[tuple[Any, bytes | None]]) -> None:
        """``(key, start, seq, value or None)`` rows."""
        super().put_many([((k, s, q), v) for k, s, q, v in rows])

    def write_many(self, rows: list[tuple[Any, bytes | None]]) -> None:
        """``(key, start, seq, value or None: delete)`` rows, as ``put`` / ``delete``."""
        with self._lock:
            for key, start, seq, value in rows:
                self._set((key, start, seq), value)
                if value is not None:
                    if start < self._oldest:
                        self._oldest = start
                    if start > self._newest:
                        self._newest = start

    def put(self, key: bytes, start: int, seq: int, value: bytes) -> None:
        with self._lock:
            self._set((key, start, seq), value)
            if start < self._oldest:
                self._oldest = start
            if start > self._newest:
                self._newest = start

    def delete(self, key: bytes, start: int, seq: int = 0) -> None:
        with self._lock:
            self._set((key, start, seq), None)

    def get(self, key: bytes, start: int) -> bytes | None:
        with self._lock:
            if start > self._newest:
                return None  # a window newer than any written: in no row, cached or not
            if not self.dups:
                return self._get((key, start, 0))
            row = self._cur.execute(
                "SELECT v FROM win WHERE k = ? AND start = ? ORDER BY seq LIMIT 1",
                (key, start)).fetchone()
        return None if row is None else row[0]

    def fetch_range(self, key: bytes, time_from: int, time_to: int
                    ) -> Iterator[tuple[int, bytes]]:
        rows = self._pages(
            "SELECT start, seq, v FROM win WHERE k = ? AND start BETWEEN ? AND ? "
            "ORDER BY start, seq LIMIT ?",
            "SELECT start, seq, v FROM win WHERE k = ? AND start BETWEEN ? AND ? "
            "AND (start, seq) > (?, ?) ORDER BY start, seq LIMIT ?",
            (key, time_from, time_to), 2)
        return ((start, v) for start, _seq, v in rows)

    def fetch_all(self, time_from: int | None, time_to: int | None
                  ) -> Iterator[tuple[bytes, int, bytes]]:
        """``(key, start, value)`` by start, key, sequence number."""
        params = (_MIN if time_from is None else time_from,
                  _MAX if time_to is None else time_to)
        rows = self._pages(
            "SELECT start, k, seq, v FROM win WHERE start BETWEEN ? AND ? "
            "ORDER BY start, k, seq LIMIT ?",
            "SELECT start, k, seq, v FROM win WHERE start BETWEEN ? AND ? "
            "AND (start, k, seq) > (?, ?, ?) ORDER BY start, k, seq LIMIT ?",
            params, 3)
        return ((k, start, v) for start, k, _seq, v in rows)

    def expire_before(self, min_live_start: int) -> None:
        """Drop the windows whose start is < ``min_live_start`` (nothing to do, and no SQL,
        while no window is that old: the common case between window boundaries)."""
        with self._lock:
            if min_live_start <= self._oldest:
                return
            # cached writes of the windows this drops need not reach SQLite (the DELETE
            # below would remove them again; their changelog records were sent with the
            # put): written then deleted, they were half of the expiry's cost
            dirty = self._dirty
            if dirty:
                expired = [pk for pk in dirty if pk[1] < min_live_start]
                dirty.difference_update(expired)
            self._flush()
            self._cur.execute("DELETE FROM win WHERE start < ?", (min_live_start,))
            self._cache.clear()  # flushed: cheaper than sifting out the expired entries
            row = self._cur.execute("SELECT min(start) FROM win").fetchone()
            self._oldest = _INF if row[0] is None else row[0]

    def max_seq(self) -> int:
        return self._scalar("SELECT max(seq) FROM win") or 0

    def count(self) -> int:
        return self._scalar("SELECT count(*) FROM win")


class SqliteSessionBytes(_SqliteBase):
    """Rows ``(k, end_, start, v)``; pk: ``(k, end, start)``. No cache: every session
    update starts with a ``find`` (an SQL read), which would flush it each time."""

    kind = "session"
    schema = """
    CREATE TABLE IF NOT EXISTS ses (
        k BLOB NOT NULL, end_ INTEGER NOT NULL, start INTEGER NOT NULL, v BLOB NOT NULL,
        PRIMARY KEY (k, end_, start)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS ses_by_end ON ses (end_, k, start);
    """
    _PUT = ("INSERT INTO ses (k, end_, start, v) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (k, end_, start) DO UPDATE SET v = excluded.v")
    _DELETE = "DELETE FROM ses WHERE k = ? AND end_ = ? AND start = ?"

    def __init__(self, name: str) -> None:
        super().__init__(name, 0)

    def put(self, key: bytes, start: int, end: int, value: bytes) -> None:
        with self._lock:
            self._set((key, end, start), value)

    def remove(self, key: bytes, start: int, end: int) -> None:
        with self._lock:
            self._set((key, end, start), None)

    def put_many(self, rows: list[tuple[Any, bytes | None]]) -> None:
        """``(key, start, end, value or None)`` rows."""
        super().put_many([((k, e, s), v) for k, s, e, v in rows])

    def find(self, key: bytes, earliest_end: int | None, latest_start: int | None
             ) -> Iterator[tuple[int, int, bytes]]:
        """``(start, end, value)`` by end then start."""
        params = (key, _MIN if earliest_end is None else earliest_end,
                  _MAX if latest_start is None else latest_start)
        rows = self._pages(
            "SELECT end_, start, v FROM ses WHERE k = ? AND end_ >= ? AND start <= ? "
            "ORDER BY end_, start LIMIT ?",
            "SELECT end_, start, v FROM ses WHERE k = ? AND end_ >= ? AND start <= ? "
            "AND (end_, start) > (?, ?) ORDER BY end_, start LIMIT ?",
            params, 2)
        return ((start, end, v) for end, start, v in rows)

    def all(self) -> Iterator[tuple[bytes, int, int, bytes]]:
        """``(key, start, end, value)`` by end, key, start."""
        rows = self._pages(
            "SELECT end_, k, start, v FROM ses ORDER BY end_, k, start LIMIT ?",
            "SELECT end_, k, start, v FROM ses WHERE (end_, k, start) > (?, ?, ?) "
            "ORDER BY end_, k, start LIMIT ?",
            (), 3)
        return ((k, start, end, v) for end, k, start, v in rows)

    def expire_before(self, min_live_end: int) -> None:
        with self._lock:
            self._cur.execute("DELETE FROM ses WHERE end_ < ?", (min_live_end,))

    def count(self) -> int:
        return self._scalar("SELECT count(*) FROM ses")
