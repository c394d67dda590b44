"""SQLite byte stores (stdlib ``sqlite3``): the key-value, window and session backends behind
the typed stores (``typed.py``) unless ``StoreSpec.in_memory``.

One file per store per task: ``{task_dir}/{store}.sqlite`` (``:memory:`` when the task has
no directory). WAL journal, ``synchronous=FULL``. A write transaction stays open between
commits: puts cost no fsync, ``commit(changelog_offset)`` writes the changelog offset into
the same file's ``rillet_checkpoint`` table and commits both in one transaction (one WAL
fsync), so the local state and its checkpoint never disagree: after a crash (no commit)
the file reopens at the last commit, with that commit's checkpoint, and the task restores
the changelog from there. ``close`` without ``commit`` discards the uncommitted writes.

Threads: one connection per store, used under the store's lock by the task's thread and by
interactive-query threads alike (``check_same_thread=False``). So a query sees the latest
writes, uncommitted ones included, exactly as with the in-memory store (and Kafka's RocksDB
stores); a second, read-only connection would see only the last commit, up to
``commit.interval.ms`` old. Iterations fetch a page of rows per lock hold (keyset
pagination: each page a fresh query resuming after the last row), so no cursor stays open
across a yield and a slow reader never holds up the task for more than one page.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from .errors import InvalidStateStoreError, StoreFileError

_PAGE = 1024
_MIN, _MAX = -(2**63), 2**63 - 1

_META = """
CREATE TABLE IF NOT EXISTS rillet_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rillet_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 0), changelog_offset INTEGER);
"""


class _ClosedCursor:
    """A closed store's cursor: every use raises InvalidStateStoreError."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise InvalidStateStoreError(self._name)


class _SqliteBase:
    """Life cycle: open, transaction kept open, commit with the checkpoint, close, wipe."""

    kind = ""
    schema = ""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._cur: Any = _ClosedCursor(name)
        self._task_dir: str | None = None
        self.path: str | None = None

    @property
    def persistent(self) -> bool:
        return self.path is not None and self.path != ":memory:"

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def open(self, task_dir: str | None) -> None:
        with self._lock:
            if self._conn is not None:
                raise InvalidStateStoreError(self.name, "already open")
            self._connect(task_dir)

    def _connect(self, task_dir: str | None) -> None:  # under the lock
        if task_dir is None:
            path = ":memory:"
        else:
            os.makedirs(task_dir, exist_ok=True)
            path = os.path.join(task_dir, f"{self.name}.sqlite")
        self._task_dir, self.path = task_dir, path  # known to wipe() even if this fails
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               cached_statements=64)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute("PRAGMA cache_size=-16384")  # 16 MiB of page cache
            conn.executescript(_META + self.schema)
            row = conn.execute("SELECT value FROM rillet_meta WHERE key='kind'").fetchone()
            if row is None:
                conn.execute("INSERT INTO rillet_meta VALUES ('kind', ?)", (self.kind,))
            elif row[0] != self.kind:
                raise StoreFileError(path, f"holds a {row[0]} store, not a {self.kind} "
                                           f"store (wipe it to start afresh)")
            conn.execute("BEGIN")
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StoreFileError(path, str(e)) from e
        except BaseException:
            conn.close()
            raise
        self._conn, self._cur = conn, conn.cursor()

    def checkpoint(self) -> int | None:
        with self._lock:
            row = self._cur.execute(
                "SELECT changelog_offset FROM rillet_checkpoint WHERE id=0").fetchone()
        return None if row is None else row[0]

    def commit(self, changelog_offset: int | None) -> None:
        with self._lock:
            cur = self._cur
            cur.execute("INSERT OR REPLACE INTO rillet_checkpoint VALUES (0, ?)",
                        (changelog_offset,))
            cur.execute("COMMIT")
            cur.execute("BEGIN")

    def _disconnect(self) -> None:  # under the lock; uncommitted writes are rolled back
        conn, self._conn, self._cur = self._conn, None, _ClosedCursor(self.name)
        if conn is not None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def wipe(self) -> None:
        """Delete the file (an open store stays open, empty)."""
        with self._lock:
            was_open = self._conn is not None
            self._disconnect()
            if self.persistent:
                for suffix in ("", "-wal", "-shm"):
                    try:
                        os.remove(self.path + suffix)  # type: ignore[operator]
                    except FileNotFoundError:
                        pass
            if was_open:
                self._connect(self._task_dir)

    def _scalar(self, sql: str, params: tuple = ()) -> Any:
        with self._lock:
            row = self._cur.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def _pages(self, first: str, more: str, params: tuple, width: int) -> Iterator[tuple]:
        """Rows of ``first`` (params + page size), then of ``more`` (params + the last
        row's first ``width`` columns + page size) until a short page."""
        sql, args = first, params
        while True:
            with self._lock:
                rows = self._cur.execute(sql, (*args, _PAGE)).fetchall()
            yield from rows
            if len(rows) < _PAGE:
                return
            sql, args = more, (*params, *rows[-1][:width])


class SqliteKeyValueBytes(_SqliteBase):
    kind = "kv"
    schema = """
    CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
    """
    _PUT = "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            row = self._cur.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: bytes, value: bytes) -> None:
        with self._lock:
            self._cur.execute(self._PUT, (key, value))

    def put_many(self, items: list[tuple[bytes, bytes | None]]) -> None:
        with self._lock:
            self._cur.executemany(self._PUT, [kv for kv in items if kv[1] is not None])
            self._cur.executemany("DELETE FROM kv WHERE k = ?",
                                  [(k,) for k, v in items if v is None])

    def delete(self, key: bytes) -> bytes | None:
        with self._lock:
            row = self._cur.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
            if row is not None:
                self._cur.execute("DELETE FROM kv WHERE k = ?", (key,))
        return None if row is None else row[0]

    def range(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        upper = "" if hi is None else " AND k <= ?"
        tail = upper + " ORDER BY k LIMIT ?"
        params: tuple = () if hi is None else (hi,)
        first = "SELECT k, v FROM kv WHERE k >= ?" + tail
        more = "SELECT k, v FROM kv WHERE k > ?" + tail
        # the bound parameter comes first in both queries: reorder (lo/after, hi, limit)
        sql, bound = first, (b"" if lo is None else lo)
        while True:
            with self._lock:
                rows = self._cur.execute(sql, (bound, *params, _PAGE)).fetchall()
            yield from rows
            if len(rows) < _PAGE:
                return
            sql, bound = more, rows[-1][0]

    def count(self) -> int:
        return self._scalar("SELECT count(*) FROM kv")


class SqliteWindowBytes(_SqliteBase):
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

    def __init__(self, name: str, retain_duplicates: bool) -> None:
        super().__init__(name)
        self.dups = retain_duplicates

    def put(self, key: bytes, start: int, seq: int, value: bytes) -> None:
        with self._lock:
            self._cur.execute(self._PUT, (key, start, seq, value))

    def delete(self, key: bytes, start: int, seq: int = 0) -> None:
        with self._lock:
            self._cur.execute(self._DELETE, (key, start, seq))

    def put_many(self, rows: list[tuple[bytes, int, int, bytes | None]]) -> None:
        with self._lock:
            self._cur.executemany(self._PUT, [r for r in rows if r[3] is not None])
            self._cur.executemany(self._DELETE, [r[:3] for r in rows if r[3] is None])

    def get(self, key: bytes, start: int) -> bytes | None:
        with self._lock:
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
        with self._lock:
            self._cur.execute("DELETE FROM win WHERE start < ?", (min_live_start,))

    def max_seq(self) -> int:
        return self._scalar("SELECT max(seq) FROM win") or 0

    def count(self) -> int:
        return self._scalar("SELECT count(*) FROM win")


class SqliteSessionBytes(_SqliteBase):
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

    def put(self, key: bytes, start: int, end: int, value: bytes) -> None:
        with self._lock:
            self._cur.execute(self._PUT, (key, end, start, value))

    def remove(self, key: bytes, start: int, end: int) -> None:
        with self._lock:
            self._cur.execute(self._DELETE, (key, end, start))

    def put_many(self, rows: list[tuple[bytes, int, int, bytes | None]]) -> None:
        with self._lock:
            self._cur.executemany(self._PUT, [(k, e, s, v) for k, s, e, v in rows
                                              if v is not None])
            self._cur.executemany(self._DELETE, [(k, e, s) for k, s, e, v in rows
                                                 if v is None])

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
