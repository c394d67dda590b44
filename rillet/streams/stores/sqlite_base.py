"""The life cycle and write-back cache shared by the SQLite stores (sqlite.py describes
them: one WAL file per store per task, a transaction kept open between commits, the
checkpoint committed with the data, one connection under a lock, keyset pagination)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from .errors import InvalidStateStoreError, StoreFileError
from .memory import _Closed

_PAGE = 1024
_MIN, _MAX = -(2**63), 2**63 - 1
DEFAULT_CACHE_ENTRIES = 50_000  # about 5-10 MB of small keys and values per store
_MISS = object()

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
    """Life cycle (open, a transaction kept open, commit with the checkpoint, close, wipe)
    and the write-back cache. A row is addressed by its primary key ``pk`` (a kind's
    ``_put_row(pk, value)`` / ``_pk_row(pk)`` give the SQL parameters)."""

    kind = ""
    schema = ""
    _PUT = _DELETE = _GET = ""

    def __init__(self, name: str, cache_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.name = name
        self.cached = cache_entries > 0
        self._max = cache_entries
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._cur: Any = _ClosedCursor(name)
        self._cache: dict[Any, bytes | None] = _Closed(name)  # type: ignore[assignment]
        self._dirty: set[Any] = set()  # pks whose cached value SQLite lacks
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
            # NORMAL, not FULL: in WAL mode a commit is still atomic and survives a crash
            # of the process; a power loss may take back the last commits, data and
            # checkpoint together, and the restore then reads the changelog from the older
            # checkpoint. FULL paid an fsync per commit: every 100 ms per store under
            # exactly_once (~6 ms each, a tenth of the word count's commit)
            conn.execute("PRAGMA synchronous=NORMAL")
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
        self._cache = {}  # pk -> value (None: absent)
        self._dirty.clear()
        self._connected()

    def _connected(self) -> None:  # under the lock
        pass

    # -- the cache ---------------------------------------------------------------------
    # a pk is a tuple of the key columns (window and session stores); the key-value store,
    # whose pk is the key itself, overrides these
    @staticmethod
    def _put_row(pk: Any, value: bytes) -> tuple:
        return (*pk, value)

    @staticmethod
    def _pk_row(pk: Any) -> tuple:
        return pk

    def _set(self, pk: Any, value: bytes | None) -> None:  # under the lock
        if self.cached:
            cache = self._cache
            cache[pk] = value
            self._dirty.add(pk)
            if len(cache) > self._max:
                self._flush()
                cache.clear()
        elif value is None:
            self._cur.execute(self._DELETE, self._pk_row(pk))
        else:
            self._cur.execute(self._PUT, self._put_row(pk, value))

    def _get(self, pk: Any) -> bytes | None:  # under the lock
        cache = self._cache
        value = cache.get(pk, _MISS)
        if value is not _MISS:
            return value  # type: ignore[return-value]
        row = self._cur.execute(self._GET, self._pk_row(pk)).fetchone()
        value = None if row is None else row[0]
        if self.cached:
            if len(cache) >= self._max:
                self._flush()
                cache.clear()
            cache[pk] = value
        return value

    def _flush(self) -> None:  # under the lock: the cache's writes into the transaction
        dirty = self._dirty
        if not dirty:
            return
        cache = self._cache
        rows = [(pk, cache[pk]) for pk in dirty]
        self._write(rows)
        dirty.clear()

    def _write(self, rows: list[tuple[Any, bytes | None]]) -> None:  # under the lock
        cur = self._cur
        cur.executemany(self._PUT, [self._put_row(pk, v) for pk, v in rows if v is not None])
        cur.executemany(self._DELETE, [self._pk_row(pk) for pk, v in rows if v is None])

    def put_many(self, rows: list[tuple[Any, bytes | None]]) -> None:
        """Restore: ``(pk, value or None: delete)`` rows straight into the transaction."""
        with self._lock:
            self._flush()
            self._cache.clear()
            self._write(rows)
            self._restored(rows)

    def write_many(self, rows: list[tuple[Any, bytes | None]]) -> None:
        """``(pk, value or None: delete)`` rows through the cache, as that many puts and
        deletes under one hold of the lock (a record cache's flush)."""
        with self._lock:
            for pk, value in rows:
                self._set(pk, value)

    def _restored(self, rows: list[tuple[Any, bytes | None]]) -> None:  # under the lock
        pass

    # -- life cycle --------------------------------------------------------------------
    def checkpoint(self) -> int | None:
        with self._lock:
            row = self._cur.execute(
                "SELECT changelog_offset FROM rillet_checkpoint WHERE id=0").fetchone()
        return None if row is None else row[0]

    def commit(self, changelog_offset: int | None) -> None:
        with self._lock:
            self._flush()
            cur = self._cur
            cur.execute("INSERT OR REPLACE INTO rillet_checkpoint VALUES (0, ?)",
                        (changelog_offset,))
            cur.execute("COMMIT")
            cur.execute("BEGIN")

    def _disconnect(self) -> None:  # under the lock; uncommitted writes are rolled back
        conn, self._conn, self._cur = self._conn, None, _ClosedCursor(self.name)
        self._cache = _Closed(self.name)  # type: ignore[assignment]
        self._dirty.clear()
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

    # -- SQL reads (after a flush) -----------------------------------------------------
    def _scalar(self, sql: str, params: tuple = ()) -> Any:
        with self._lock:
            self._flush()
            row = self._cur.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def _pages(self, first: str, more: str, params: tuple, width: int) -> Iterator[tuple]:
        """Rows of ``first`` (params + page size), then of ``more`` (params + the last
        row's first ``width`` columns + page size) until a short page."""
        sql, args = first, params
        while True:
            with self._lock:
                self._flush()
                rows = self._cur.execute(sql, (*args, _PAGE)).fetchall()
            yield from rows
            if len(rows) < _PAGE:
                return
            sql, args = more, (*params, *rows[-1][:width])
