"""SQLite sink: write records as rows, exactly once, like Kafka's JDBC sink.

Config (``connector.class=sqlite-sink``), with the JDBC sink's key names:
    ``database`` (or ``connection.url``), ``topics``, ``table`` (default: the topic name; may
    use ``${topic}``; alias ``table.name.format``), ``insert.mode`` insert | upsert,
    ``pk.mode`` none | record_key | record_value | kafka, ``pk.fields``, ``delete.enabled``
    (a tombstone deletes the row by key; needs pk.mode=record_key), ``auto.create``,
    ``auto.evolve`` (ALTER TABLE ADD COLUMN for new fields; never drops or retypes).

Values must be maps (JSON objects); a record key that is a map gives the key columns, a
primitive key gives one column named by ``pk.fields`` (default ``__connect_key``). Column
types come from the first value seen: int INTEGER, float REAL, str TEXT, bytes BLOB, bool
INTEGER, lists and maps TEXT (as JSON).

Exactly once: every ``put`` is one SQLite transaction that writes the rows *and* the next
offset of each topic-partition into the table ``__connect_offsets``; on start the task asks
the worker to resume from those offsets. A record that fails (a constraint, a non-map value)
is reported to the dead-letter topic (errors.tolerance=all) while the rest of the batch
commits, or fails the task (none) with nothing of the batch written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..api import SinkConnector, SinkRecord, SinkTask, TopicPartition
from ..config import ConfigDef, key
from ..errors import ConnectConfigError, ConnectError, RetriableError
from .sqlite_source import database_path, is_locked, quote

OFFSETS_TABLE = "__connect_offsets"


class SinkRecordError(ConnectError):
    """This record cannot be written (not a map, missing key field, constraint, ...)."""


class SqliteSinkConnector(SinkConnector):
    config_def = ConfigDef([
        key("database", default=""), key("connection.url", default=""),
        key("table", default=""), key("table.name.format", default="${topic}"),
        key("insert.mode", default="insert", choices=("insert", "upsert")),
        key("pk.mode", default="none", choices=("none", "record_key", "record_value", "kafka")),
        key("pk.fields", "list", []),
        key("delete.enabled", "bool", False),
        key("auto.create", "bool", False), key("auto.evolve", "bool", False),
        key("batch.size", "int", 3000, minimum=1),
    ])

    @classmethod
    def validate_config(cls, c: dict[str, Any]) -> list[str]:
        problems = []
        try:
            database_path(c)
        except ConnectConfigError as e:
            problems += e.problems
        if c["insert.mode"] == "upsert" and c["pk.mode"] == "none":
            problems.append("insert.mode=upsert needs a pk.mode (record_key, record_value)")
        if c["delete.enabled"] and c["pk.mode"] != "record_key":
            problems.append("delete.enabled=true needs pk.mode=record_key")
        if c["pk.mode"] == "record_value" and not c["pk.fields"]:
            problems.append("pk.mode=record_value needs pk.fields")
        return problems

    def start(self, config: dict[str, Any]) -> None:
        super().start(config)
        problems = self.validate_config(self.config)
        if problems:
            raise ConnectConfigError(problems, source=f"connector {config.get('name')!r}")

    def task_class(self) -> type[SinkTask]:
        return SqliteSinkTask

    def task_configs(self, max_tasks: int) -> list[dict[str, Any]]:
        return [dict(self.config) for _ in range(max_tasks)]

    def alter_offsets(self, config: dict[str, Any],
                      offsets: Mapping[TopicPartition, int | None]) -> bool:
        db = _open(database_path(config))
        try:
            with db:
                for tp, off in offsets.items():
                    if off is None:
                        db.execute(f"DELETE FROM {OFFSETS_TABLE} WHERE connector=? AND "
                                   "topic=? AND partition=?", (config["name"], tp[0], tp[1]))
                    else:
                        _store_offset(db, config["name"], tp[0], tp[1], int(off))
        finally:
            db.close()
        return True


def _open(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (connector TEXT NOT NULL, "
               "topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, "
               "PRIMARY KEY (connector, topic, partition))")
    return db


def _store_offset(db: sqlite3.Connection, connector: str, topic: str, partition: int,
                  offset: int) -> None:
    db.execute(f"INSERT INTO {OFFSETS_TABLE} VALUES (?, ?, ?, ?) ON CONFLICT(connector, topic, "
               "partition) DO UPDATE SET next_offset=excluded.next_offset",
               (connector, topic, partition, offset))


def sql_type(value: Any) -> str:
    if isinstance(value, bool | int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    if isinstance(value, bytes | bytearray):
        return "BLOB"
    return "TEXT"


def sql_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


class SqliteSinkTask(SinkTask):
    def start(self, config: dict[str, Any]) -> None:
        self.c = SqliteSinkConnector.config_def.parse(config, allow_unknown=True)
        self.name = self.context.connector_name
        self.db = _open(database_path(self.c))
        self.columns: dict[str, list[str]] = {}  # table -> known columns

    def open(self, partitions: Sequence[TopicPartition]) -> None:
        rows = self.db.execute(f"SELECT topic, partition, next_offset FROM {OFFSETS_TABLE} "
                               "WHERE connector=?", (self.name,)).fetchall()
        wanted = {(tp[0], tp[1]) for tp in partitions}
        self.context.offset({(t, p): o for t, p, o in rows if (t, p) in wanted})

    def put(self, records: list[SinkRecord]) -> None:
        if not records:
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
            records = self._unwritten(records)
            try:
                for r in records:
                    self._write(r)
            except (SinkRecordError, sqlite3.IntegrityError, sqlite3.InterfaceError,
                    sqlite3.ProgrammingError):
                # find the bad records one by one; the reporter raises when not tolerated
                self.db.execute("ROLLBACK")
                self.columns.clear()
                self.db.execute("BEGIN IMMEDIATE")
                records = self._unwritten(records)
                for r in records:
                    self.db.execute("SAVEPOINT rec")
                    try:
                        self._write(r)
                        self.db.execute("RELEASE rec")
                    except (SinkRecordError, sqlite3.IntegrityError, sqlite3.InterfaceError,
                            sqlite3.ProgrammingError) as e:
                        self.db.execute("ROLLBACK TO rec")
                        self.db.execute("RELEASE rec")
                        self.columns.clear()
                        self._report(r, e)
            nxt: dict[tuple[str, int], int] = {}
            for r in records:
                nxt[(r.topic, r.partition)] = max(nxt.get((r.topic, r.partition), 0),
                                                  r.offset + 1)
            for (t, p), o in nxt.items():
                _store_offset(self.db, self.name, t, p, o)
            self.db.execute("COMMIT")
        except BaseException as e:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.columns.clear()
            if isinstance(e, sqlite3.OperationalError) and is_locked(e):
                raise RetriableError(f"database busy: {e}") from e
            raise

    def pre_commit(self, offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        return dict(offsets)  # already committed with the rows

    def _unwritten(self, records: list[SinkRecord]) -> list[SinkRecord]:
        """The records not yet written, by the stored offsets read inside the write
        transaction: a task that kept writing a partition after the group had moved it
        (a session that expired while it was stuck) cannot write a record twice."""
        tps = {(r.topic, r.partition) for r in records}
        stored = {}
        for t, p in tps:
            row = self.db.execute(f"SELECT next_offset FROM {OFFSETS_TABLE} WHERE connector=? "
                                  "AND topic=? AND partition=?", (self.name, t, p)).fetchone()
            if row is not None:
                stored[(t, p)] = row[0]
        return [r for r in records if r.offset >= stored.get((r.topic, r.partition), 0)]

    def stop(self) -> None:
        self.db.close()

    # --- internals -------------------------------------------------------------------------

    def _report(self, record: SinkRecord, error: BaseException) -> None:
        reporter = self.context.errant_record_reporter
        if reporter is None:
            raise error
        reporter.report(record, error)

    def _table(self, topic: str) -> str:
        name = self.c["table"] or self.c["table.name.format"]
        return name.replace("${topic}", topic)

    def _key_fields(self, r: SinkRecord) -> dict[str, Any]:
        mode = self.c["pk.mode"]
        if mode == "record_key":
            if r.key is None:
                raise SinkRecordError("pk.mode=record_key but the record has no key")
            if isinstance(r.key, dict):
                fields = self.c["pk.fields"] or list(r.key)
                missing = [f for f in fields if f not in r.key]
                if missing:
                    raise SinkRecordError(f"the key has no field {missing[0]!r}")
                return {f: r.key[f] for f in fields}
            return {(self.c["pk.fields"] or ["__connect_key"])[0]: r.key}
        if mode == "record_value":
            value = r.value if isinstance(r.value, dict) else {}
            missing = [f for f in self.c["pk.fields"] if f not in value]
            if missing:
                raise SinkRecordError(f"the value has no field {missing[0]!r}")
            return {f: value[f] for f in self.c["pk.fields"]}
        if mode == "kafka":
            return {"__connect_topic": r.topic, "__connect_partition": r.partition,
                    "__connect_offset": r.offset}
        return {}

    def _write(self, r: SinkRecord) -> None:
        table = self._table(r.topic)
        keyf = self._key_fields(r)
        if r.value is None:
            if self.c["delete.enabled"] and self._existing_columns(table):
                where = " AND ".join(f"{quote(k)} = ?" for k in keyf)
                self.db.execute(f"DELETE FROM {quote(table)} WHERE {where}",
                                [sql_value(v) for v in keyf.values()])
            return
        if not isinstance(r.value, dict):
            raise SinkRecordError(f"the SQLite sink needs map values, got "
                                  f"{type(r.value).__name__}")
        row = {**r.value, **keyf}
        self._ensure_table(table, row, list(keyf))
        cols = list(row)
        names = ", ".join(quote(c) for c in cols)
        marks = ", ".join("?" for _ in cols)
        sql = f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})"
        if self.c["insert.mode"] == "upsert":
            conflict = ", ".join(quote(k) for k in keyf)
            rest = [c for c in cols if c not in keyf]
            sql += (f" ON CONFLICT({conflict}) DO UPDATE SET "
                    + ", ".join(f"{quote(c)}=excluded.{quote(c)}" for c in rest)
                    if rest else f" ON CONFLICT({conflict}) DO NOTHING")
        self.db.execute(sql, [sql_value(row[c]) for c in cols])

    def _existing_columns(self, table: str) -> list[str]:
        if table not in self.columns:
            info = self.db.execute(f"PRAGMA table_info({quote(table)})").fetchall()
            if not info:
                return []
            self.columns[table] = [i[1] for i in info]
        return self.columns[table]

    def _ensure_table(self, table: str, row: dict[str, Any], pk: list[str]) -> None:
        existing = self._existing_columns(table)
        if not existing:
            if not self.c["auto.create"]:
                raise SinkRecordError(f"table {table!r} does not exist (set auto.create=true)")
            cols = [f"{quote(c)} {sql_type(v)}" + (" NOT NULL" if c in pk else "")
                    for c, v in row.items()]
            if pk:
                cols.append(f"PRIMARY KEY ({', '.join(quote(k) for k in pk)})")
            self.db.execute(f"CREATE TABLE {quote(table)} ({', '.join(cols)})")
            self.columns[table] = list(row)
            return
        missing = [c for c in row if c not in existing]
        if missing:
            if not self.c["auto.evolve"]:
                raise SinkRecordError(f"table {table!r} has no column {missing[0]!r} "
                                      "(set auto.evolve=true)")
            for c in missing:
                self.db.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(c)} "
                                f"{sql_type(row[c])}")
                existing.append(c)
