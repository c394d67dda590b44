"""SQLite source: copy new (and changed) rows of tables into topics, like Kafka's JDBC source.

Config (``connector.class=sqlite-source``), with the JDBC source's key names:
    ``database`` (a file path; or ``connection.url`` = ``sqlite:///path`` / ``jdbc:sqlite:path``),
    ``table`` (comma list; aliases ``table.whitelist``, ``table.include.list``; none given:
    every table) or ``query`` (a SELECT; its rows are filtered like a table's),
    ``topic.prefix`` (topic = prefix + table; with ``query`` the topic is the prefix),
    ``mode`` bulk | incrementing | timestamp | timestamp+incrementing,
    ``incrementing.column.name``, ``timestamp.column.name`` (comma list -> COALESCE),
    ``poll.interval.ms`` (5000), ``batch.max.rows`` (100), ``timestamp.delay.interval.ms``
    (0; with integer millisecond timestamps, rows newer than now - delay wait).

Queries per mode (as in TimestampIncrementingCriteria)::

    incrementing            WHERE inc > ? ORDER BY inc LIMIT batch.max.rows
    timestamp               WHERE ts > ? ORDER BY ts
    timestamp+incrementing  WHERE (ts = ? AND inc > ?) OR ts > ? ORDER BY ts, inc LIMIT n
    bulk                    the whole table every poll.interval.ms

Offsets are per table: partition ``{"table": name}`` (or ``{"query": q}``), offset
``{"incrementing": n}`` / ``{"timestamp": t}`` / both. Values are dicts of the row's columns;
keys are None (add ``ValueToKey``). The database is opened read-only; a database or table
that does not exist yet is waited for. ``incrementing`` sees inserts only; ``timestamp`` modes
see updates too.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import ExactlyOnceSupport, SourceConnector, SourceRecord, SourceTask
from ..config import ConfigDef, key
from ..errors import ConnectConfigError, RetriableError

MODES = ("bulk", "incrementing", "timestamp", "timestamp+incrementing")


def database_path(config: dict[str, Any]) -> str:
    """``database`` or ``connection.url`` (sqlite:///p, jdbc:sqlite:p) -> a file path."""
    if config.get("database"):
        return str(config["database"])
    url = str(config.get("connection.url") or "")
    for prefix in ("sqlite:///", "jdbc:sqlite:", "sqlite:"):
        if url.startswith(prefix):
            return url[len(prefix):]
    raise ConnectConfigError(["set 'database' (a file path) or 'connection.url' "
                              "(sqlite:///path)"])


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_locked(e: sqlite3.OperationalError) -> bool:
    msg = str(e).lower()
    return "locked" in msg or "busy" in msg


class SqliteSourceConnector(SourceConnector):
    config_def = ConfigDef([
        key("database", default=""), key("connection.url", default=""),
        key("table", "list", []), key("table.whitelist", "list", []),
        key("table.include.list", "list", []), key("query", default=""),
        key("topic.prefix", default=""),
        key("mode", choices=MODES, doc="bulk, incrementing, timestamp or "
                                       "timestamp+incrementing"),
        key("incrementing.column.name", default=""), key("timestamp.column.name", "list", []),
        key("poll.interval.ms", "int", 5000, minimum=1),
        key("batch.max.rows", "int", 100, minimum=1),
        key("timestamp.delay.interval.ms", "int", 0, minimum=0),
    ])

    @classmethod
    def validate_config(cls, c: dict[str, Any]) -> list[str]:
        problems = []
        try:
            database_path(c)
        except ConnectConfigError as e:
            problems += e.problems
        tables = c["table"] + c["table.whitelist"] + c["table.include.list"]
        if tables and c["query"]:
            problems.append("set 'table' or 'query', not both")
        if c["query"] and not c["topic.prefix"]:
            problems.append("with 'query', 'topic.prefix' is the topic and must be set")
        if "incrementing" in c["mode"] and not c["incrementing.column.name"]:
            problems.append(f"mode {c['mode']} needs 'incrementing.column.name'")
        if "timestamp" in c["mode"] and not c["timestamp.column.name"]:
            problems.append(f"mode {c['mode']} needs 'timestamp.column.name'")
        return problems

    def start(self, config: dict[str, Any]) -> None:
        super().start(config)
        problems = self.validate_config(self.config)
        if problems:
            raise ConnectConfigError(problems, source=f"connector {config.get('name')!r}")
        c = self.config
        self.tables = c["table"] + c["table.whitelist"] + c["table.include.list"]

    def exactly_once_support(self, config: Any = None) -> ExactlyOnceSupport:
        """Its source offsets are positions it resumes from exactly (KIP-618)."""
        return ExactlyOnceSupport.SUPPORTED

    def task_class(self) -> type[SourceTask]:
        return SqliteSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, Any]]:
        if self.config["query"]:
            return [dict(self.config)]
        tables = self.tables or discover_tables(database_path(self.config))
        if not tables:
            return [dict(self.config, table=[])]
        n = max(1, min(max_tasks, len(tables)))
        return [{**self.config, "table": tables[i::n], "table.whitelist": [],
                 "table.include.list": []} for i in range(n)]


def discover_tables(path: str) -> list[str]:
    if not Path(path).exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT "
                          "LIKE 'sqlite_%' AND name NOT LIKE '\\_\\_%' ESCAPE '\\' "
                          "ORDER BY name").fetchall()
    return [r[0] for r in rows]


@dataclass
class _Source:
    partition: dict[str, Any]
    topic: str
    selectable: str  # a table name quoted, or "(query)"
    incrementing: int | None = None
    timestamp: Any = None
    next_poll_ms: int = 0


class SqliteSourceTask(SourceTask):
    def start(self, config: dict[str, Any]) -> None:
        c = SqliteSourceConnector.config_def.parse(config, allow_unknown=True)
        self.c = c
        self.path = database_path(c)
        self.mode = c["mode"]
        self.inc = quote(c["incrementing.column.name"]) if c["incrementing.column.name"] else ""
        ts_cols = [quote(t) for t in c["timestamp.column.name"]]
        self.ts = (ts_cols[0] if len(ts_cols) == 1
                   else f"COALESCE({', '.join(ts_cols)})" if ts_cols else "")
        self.db: sqlite3.Connection | None = None
        if c["query"]:
            self.sources = [_Source({"query": c["query"]}, c["topic.prefix"],
                                    f"({c['query']})")]
        else:
            tables = c["table"] + c["table.whitelist"] + c["table.include.list"]
            self.sources = [_Source({"table": t}, c["topic.prefix"] + t, quote(t))
                            for t in tables]
        reader = self.context.offset_storage_reader
        for s in self.sources:
            stored = reader.offset(s.partition) or {}
            s.incrementing = stored.get("incrementing")
            s.timestamp = stored.get("timestamp")

    def idle_wait_ms(self) -> int:
        now = _now_ms()
        soonest = min((s.next_poll_ms for s in self.sources), default=now + 1000)
        return max(10, min(1000, soonest - now))

    def poll(self) -> list[SourceRecord]:
        if not self.sources or not self._connect():
            return []
        out: list[SourceRecord] = []
        now = _now_ms()
        for s in self.sources:
            if s.next_poll_ms > now:
                continue
            rows = self._query(s, now)
            full = self.mode != "bulk" and len(rows) >= self.c["batch.max.rows"]
            s.next_poll_ms = now if full else now + self.c["poll.interval.ms"]
            out += rows
        return out

    def stop(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    # --- internals -------------------------------------------------------------------------

    def _connect(self) -> bool:
        if self.db is None:
            if not Path(self.path).exists():
                return False
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                      check_same_thread=False)
            self.db.row_factory = sqlite3.Row
        return True

    def _sql(self, s: _Source, now: int) -> tuple[str, list[Any]]:
        sql, args = f"SELECT * FROM {s.selectable} AS _t", []
        where = []
        inc, ts = self.inc, self.ts
        delay = self.c["timestamp.delay.interval.ms"]
        if self.mode == "incrementing":
            if s.incrementing is not None:
                where.append(f"{inc} > ?")
                args.append(s.incrementing)
            order = f" ORDER BY {inc} ASC LIMIT {self.c['batch.max.rows']}"
        elif self.mode == "timestamp":
            where.append(f"{ts} IS NOT NULL")
            if s.timestamp is not None:
                where.append(f"{ts} > ?")
                args.append(s.timestamp)
            order = f" ORDER BY {ts} ASC"
        elif self.mode == "timestamp+incrementing":
            where.append(f"{ts} IS NOT NULL")
            if s.timestamp is not None:
                where.append(f"(({ts} = ? AND {inc} > ?) OR {ts} > ?)")
                args += [s.timestamp, -1 if s.incrementing is None else s.incrementing,
                         s.timestamp]
            order = f" ORDER BY {ts} ASC, {inc} ASC LIMIT {self.c['batch.max.rows']}"
        else:
            order = ""
        if delay and "timestamp" in self.mode:
            where.append(f"{ts} < ?")
            args.append(now - delay)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql + order, args

    def _query(self, s: _Source, now: int) -> list[SourceRecord]:
        assert self.db is not None
        sql, args = self._sql(s, now)
        try:
            rows = self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return []
            if is_locked(e):
                raise RetriableError(f"database busy: {e}") from e
            raise
        out = []
        for row in rows:
            value = dict(row)
            offset: dict[str, Any] = {}
            if "incrementing" in self.mode:
                s.incrementing = value[self.c["incrementing.column.name"]]
                offset["incrementing"] = s.incrementing
            if "timestamp" in self.mode:
                s.timestamp = _coalesce(value, self.c["timestamp.column.name"])
                offset["timestamp"] = s.timestamp
            out.append(SourceRecord(s.partition, offset, s.topic, value=value))
        return out


def _coalesce(row: dict[str, Any], columns: list[str]) -> Any:
    for c in columns:
        if row.get(c) is not None:
            return row[c]
    return None


def _now_ms() -> int:
    return int(time.time() * 1000)
