"""SQLite source modes and the exactly-once SQLite sink, driven directly."""

from __future__ import annotations

import sqlite3

import pytest
from rillet.connectors.api import SinkRecord, TopicPartition
from rillet.connectors.builtin.sqlite_sink import SqliteSinkConnector, SqliteSinkTask
from rillet.connectors.builtin.sqlite_source import SqliteSourceConnector, SqliteSourceTask
from rillet.connectors.errors import ConnectConfigError

from .helpers import Reporter, commit, sink_task, source_task


def make_db(path, rows):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, ts INTEGER)")
    db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()


def cfg(path, mode, **extra):
    return {"database": str(path), "table": "items", "mode": mode, "topic.prefix": "db-",
            "incrementing.column.name": "id", "timestamp.column.name": "ts",
            "poll.interval.ms": "1", "batch.max.rows": "2", **extra}


def drain(task, rounds=6):
    import time
    out = []
    for _ in range(rounds):
        out += task.poll()
        time.sleep(0.002)
    return out


def test_incrementing_mode_pages_and_resumes(tmp_path):
    db = tmp_path / "src.db"
    task = source_task(SqliteSourceTask, cfg(db, "incrementing"))
    assert task.poll() == []  # no database yet
    make_db(db, [(1, "a", 10), (2, "b", 20), (3, "c", 30)])
    first = task.poll()
    assert [r.value["name"] for r in first] == ["a", "b"]
    assert first[0].topic == "db-items" and first[1].source_offset == {"incrementing": 2}
    assert first[0].source_partition == {"table": "items"}
    assert [r.value["id"] for r in drain(task)] == [3]
    task.stop()
    make_db(db, [(4, "d", 40)])
    again = source_task(SqliteSourceTask, cfg(db, "incrementing"), commit(first))
    assert [r.value["id"] for r in drain(again)] == [3, 4]
    again.stop()


def test_timestamp_modes_see_updates(tmp_path):
    db = tmp_path / "src.db"
    make_db(db, [(1, "a", 10), (2, "b", 10), (3, "c", 20)])
    for mode in ("timestamp", "timestamp+incrementing"):
        task = source_task(SqliteSourceTask, cfg(db, mode))
        got = drain(task)
        assert [r.value["id"] for r in got] == [1, 2, 3], mode
        make_db(db, [(1, "a2", 30)])
        assert [r.value["name"] for r in drain(task)] == ["a2"], mode
        assert got[-1].source_offset["timestamp"] == 20
        task.stop()
        make_db(db, [(1, "a", 10)])


def test_bulk_and_query(tmp_path):
    db = tmp_path / "src.db"
    make_db(db, [(1, "a", 10), (2, "b", 20)])
    bulk = source_task(SqliteSourceTask, cfg(db, "bulk", **{"poll.interval.ms": "100000"}))
    assert len(bulk.poll()) == 2 and bulk.poll() == []
    bulk.stop()
    q = cfg(db, "incrementing", table="", query="SELECT id, upper(name) AS n FROM items",
            **{"topic.prefix": "q"})
    task = source_task(SqliteSourceTask, q)
    got = drain(task)
    assert [(r.topic, r.value["n"]) for r in got] == [("q", "A"), ("q", "B")]
    assert got[0].source_partition == {"query": q["query"]}
    task.stop()


def test_source_config_errors():
    c = SqliteSourceConnector()
    with pytest.raises(ConnectConfigError, match="incrementing.column.name"):
        c.start(SqliteSourceConnector.config_def.parse({"database": "x", "mode": "incrementing",
                                                        "table": "t"}))
    with pytest.raises(ConnectConfigError, match="mode"):
        SqliteSourceConnector.config_def.parse({"database": "x", "mode": "fast"})


def sink_cfg(path, **extra):
    return {"database": str(path), "auto.create": "true", "auto.evolve": "true", **extra}


def rows(path, sql="SELECT * FROM t ORDER BY 1"):
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_sink_creates_evolves_and_stores_offsets_in_the_same_transaction(tmp_path):
    db = tmp_path / "out.db"
    task = sink_task(SqliteSinkTask, sink_cfg(db))
    tp = TopicPartition("t", 0)
    task.open([tp])
    assert task.context.requested_offsets == {}
    task.put([SinkRecord("t", 0, 5, value={"id": 1, "name": "a"}),
              SinkRecord("t", 0, 6, value={"id": 2, "name": "b", "extra": 1.5})])
    assert rows(db) == [(1, "a", None), (2, "b", 1.5)]
    assert rows(db, "SELECT * FROM __connect_offsets") == [("c", "t", 0, 7)]
    task.stop()
    again = sink_task(SqliteSinkTask, sink_cfg(db))
    again.open([tp, TopicPartition("t", 1)])
    assert again.context.requested_offsets == {tp: 7}
    again.stop()


def test_a_task_still_writing_a_moved_partition_cannot_write_a_record_twice(tmp_path):
    db = tmp_path / "out.db"
    old, new = sink_task(SqliteSinkTask, sink_cfg(db)), sink_task(SqliteSinkTask, sink_cfg(db))
    tp = TopicPartition("t", 0)
    old.open([tp])
    new.open([tp])  # the group moved the partition while the old owner was stuck
    assert new.context.requested_offsets == {}
    new.put([SinkRecord("t", 0, i, value={"n": i}) for i in range(3)])
    old.put([SinkRecord("t", 0, i, value={"n": i}) for i in range(4)])  # the zombie
    assert rows(db, "SELECT n FROM t ORDER BY rowid") == [(0,), (1,), (2,), (3,)]
    assert rows(db, "SELECT * FROM __connect_offsets") == [("c", "t", 0, 4)]
    old.stop()
    new.stop()


def test_upsert_and_tombstone_delete_by_record_key(tmp_path):
    db = tmp_path / "out.db"
    task = sink_task(SqliteSinkTask, sink_cfg(db, **{
        "insert.mode": "upsert", "pk.mode": "record_key", "delete.enabled": "true"}))
    task.put([SinkRecord("t", 0, 0, key={"id": 1}, value={"name": "a"}),
              SinkRecord("t", 0, 1, key={"id": 2}, value={"name": "b"}),
              SinkRecord("t", 0, 2, key={"id": 1}, value={"name": "a2"}),
              SinkRecord("t", 0, 3, key={"id": 2}, value=None)])
    assert rows(db) == [("a2", 1)]
    task.stop()


def test_a_bad_record_goes_to_the_reporter_and_the_rest_commits(tmp_path):
    db = tmp_path / "out.db"
    rep = Reporter()
    task = sink_task(SqliteSinkTask, sink_cfg(db, **{"pk.mode": "record_value",
                                                     "pk.fields": "id"}), rep)
    task.put([SinkRecord("t", 0, 0, value={"id": 1}), SinkRecord("t", 0, 1, value="oops"),
              SinkRecord("t", 0, 2, value={"id": 1}), SinkRecord("t", 0, 3, value={"id": 3})])
    assert rows(db) == [(1,), (3,)]
    assert [r.offset for r, _ in rep.reported] == [1, 2]
    assert rows(db, "SELECT next_offset FROM __connect_offsets") == [(4,)]
    task.stop()


def test_without_a_reporter_a_bad_batch_writes_nothing(tmp_path):
    db = tmp_path / "out.db"
    task = sink_task(SqliteSinkTask, sink_cfg(db))
    with pytest.raises(Exception, match="map values"):
        task.put([SinkRecord("t", 0, 0, value={"id": 1}), SinkRecord("t", 0, 1, value=7)])
    assert rows(db, "SELECT count(*) FROM __connect_offsets") == [(0,)]
    assert rows(db, "SELECT name FROM sqlite_master WHERE name='t'") == []
    task.stop()


def test_alter_offsets_rewrites_the_sink_table(tmp_path):
    db = tmp_path / "out.db"
    conn = SqliteSinkConnector()
    conf = {**SqliteSinkConnector.config_def.parse({"database": str(db)}), "name": "c"}
    conn.alter_offsets(conf, {TopicPartition("t", 0): 42})
    assert rows(db, "SELECT * FROM __connect_offsets") == [("c", "t", 0, 42)]
    conn.alter_offsets(conf, {TopicPartition("t", 0): None})
    assert rows(db, "SELECT * FROM __connect_offsets") == []


def test_combinations_are_checked_when_the_config_is_validated():
    from rillet.connectors.validation import validate_connector_config

    with pytest.raises(ConnectConfigError) as e:
        validate_connector_config({"name": "s", "connector.class": "sqlite-source",
                                   "database": "x.db", "mode": "timestamp+incrementing",
                                   "table": "t", "query": "select 1"})
    p = "\n".join(e.value.problems)
    assert "not both" in p and "incrementing.column.name" in p and "timestamp.column.name" in p
    with pytest.raises(ConnectConfigError, match="upsert needs a pk.mode"):
        validate_connector_config({"name": "k", "connector.class": "sqlite-sink",
                                   "topics": "t", "connection.url": "sqlite:///x.db",
                                   "insert.mode": "upsert"})
    with pytest.raises(ConnectConfigError, match="connection.url"):
        validate_connector_config({"name": "k", "connector.class": "sqlite-sink",
                                   "topics": "t"})
