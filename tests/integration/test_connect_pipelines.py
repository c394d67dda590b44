"""Connect end to end: real `rillet connect standalone` worker processes, a real cluster,
real files and SQLite databases; workers killed with SIGKILL mid-stream."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from connect_helpers import Appender, WorkerProcess, write_json

from rillet import Consumer, TopicPartition
from tests.support import wait_until

pytestmark = pytest.mark.integration

# Sink tasks are members of consumer groups. A worker killed with SIGKILL cannot leave its
# groups: its partitions move when the broker's session timeout expires, so the tests use a
# short one (the consumers' own lease, session.timeout.ms, is kept equal).
GROUP_SESSION_TIMEOUT_MS = 3000


@pytest.fixture
def cluster(cluster_factory):
    return cluster_factory(configs={
        "group.consumer.session.timeout.ms": str(GROUP_SESSION_TIMEOUT_MS),
        "group.consumer.heartbeat.interval.ms": "300"})


def worker_config(tmp_path: Path, cluster) -> Path:
    return write_json(tmp_path / "worker.json", {
        "bootstrap.servers": cluster.bootstrap_servers, "rest.port": 0,
        "offset.flush.interval.ms": 200,
        "consumer.session.timeout.ms": GROUP_SESSION_TIMEOUT_MS})


def count_rows(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out: list = []
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                out += recs
        return out
    finally:
        c.close()


def kill_twice_mid_stream(worker: WorkerProcess, progress, total: int) -> list[int]:
    """Kill -9 at about a quarter and half of ``total``; restart each time."""
    seen = []
    for fraction in (0.25, 0.5):
        wait_until(lambda f=fraction: progress() >= total * f, 60,
                   f"{fraction:.0%} of the records", interval_s=0.01)
        at = progress()
        worker.kill()
        seen.append(at)
        worker.start()
    return seen


@pytest.mark.timeout(150)
def test_file_to_topic_to_sqlite_survives_two_kill_9(tmp_path, cluster):
    total = 3000
    src = tmp_path / "in.jsonl"
    db = tmp_path / "out.db"
    src.touch()
    source = write_json(tmp_path / "source.json", {
        "name": "lines-in", "connector.class": "file-source", "file": str(src),
        "topic": "lines", "batch.size": 50, "poll.interval.ms": 20,
        "value.converter": "string"})
    sink = write_json(tmp_path / "sink.json", {
        "name": "lines-out", "connector.class": "sqlite-sink", "topics": "lines",
        "database": str(db), "table": "lines", "auto.create": True,
        "value.converter": "json"})  # plain insert: a duplicate would show as a row

    def write_step(start: int, n: int) -> None:
        with open(src, "a") as f:
            f.writelines(json.dumps({"n": i, "text": f"line {i}"}) + "\n"
                         for i in range(start, start + n))

    worker = WorkerProcess(tmp_path, worker_config(tmp_path, cluster), [source, sink])
    appender = Appender(write_step, total)
    try:
        worker.start()
        appender.start()
        kills = kill_twice_mid_stream(worker, lambda: count_rows(db, "lines"), total)
        assert all(k < total for k in kills), f"kills were not mid-stream: {kills}"
        appender.join(60)
        wait_until(lambda: count_rows(db, "lines") >= total, 60,
                   f"all rows ({worker.log_tail()})")
        time.sleep(0.5)  # anything extra (a duplicate) would arrive now
        con = sqlite3.connect(db)
        rows = con.execute("SELECT n, text FROM lines ORDER BY rowid").fetchall()
        con.close()
        assert rows == [(i, f"line {i}") for i in range(total)]
        # the sink task is a member of the group connect-lines-out and commits there too
        part = {"kafka_topic": "lines", "kafka_partition": 0}
        wait_until(lambda: worker.rest("GET", "/connectors/lines-out/offsets") == (
            200, {"offsets": [{"partition": part, "offset": {"kafka_offset": total}}]}),
            20, "the group's committed offset")
        cli = subprocess.run([sys.executable, "-m", "rillet.cli.main", "group", "describe",
                              "connect-lines-out", "-b", cluster.bootstrap_servers],
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0, cli.stderr
        row = next(r.split() for r in cli.stdout.splitlines() if "lines" in r.split()[1:2])
        assert row[:5] == ["connect-lines-out", "lines", "0", str(total), str(total)]
        assert row[5] == "0" and "connector-consumer-lines-out-0" in row  # lag 0, client id
        assert worker.stop() == 0
    finally:
        worker.stop()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_soak_file_to_sqlite_with_many_kills_and_two_tasks(tmp_path, cluster):
    """Two files, two source tasks, a 3-partition topic, two sink tasks, six SIGKILLs."""
    total = 12000
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    db = tmp_path / "out.db"
    for f in files:
        f.touch()
    source = write_json(tmp_path / "source.json", {
        "name": "in", "connector.class": "file-source", "file": ",".join(map(str, files)),
        "tasks.max": 2, "topic": "lines", "batch.size": 100, "poll.interval.ms": 20,
        "value.converter": "string", "topic.creation.default.partitions": 3})
    sink = write_json(tmp_path / "sink.json", {
        "name": "out", "connector.class": "sqlite-sink", "topics": "lines", "tasks.max": 2,
        "database": str(db), "table": "lines", "auto.create": True,
        "value.converter": "json"})

    def write_step(start: int, n: int) -> None:
        for i in range(start, start + n):
            with open(files[i % 2], "a") as f:
                f.write(json.dumps({"n": i}) + "\n")

    worker = WorkerProcess(tmp_path, worker_config(tmp_path, cluster), [source, sink])
    appender = Appender(write_step, total, step=40, pause_s=0.05)
    try:
        worker.start()
        appender.start()
        for k in range(1, 7):
            wait_until(lambda k=k: count_rows(db, "lines") >= total * k / 8, 120,
                       f"{k}/8 of the rows", interval_s=0.01)
            worker.kill()
            worker.start()
        appender.join(120)
        wait_until(lambda: count_rows(db, "lines") >= total, 120, "all rows")
        time.sleep(1)
        con = sqlite3.connect(db)
        got = sorted(n for (n,) in con.execute("SELECT n FROM lines"))
        con.close()
        assert got == list(range(total))
        assert worker.stop() == 0
    finally:
        worker.stop()


@pytest.mark.slow  # ~10 s; the file -> topic -> SQLite kill -9 run stays in the default suite
@pytest.mark.timeout(150)
def test_sqlite_to_topic_to_file_survives_two_kill_9(tmp_path, cluster):
    total = 2000
    db = tmp_path / "in.db"
    out = tmp_path / "out.jsonl"
    con = sqlite3.connect(db, check_same_thread=False)
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)")
    con.commit()
    source = write_json(tmp_path / "source.json", {
        "name": "items-in", "connector.class": "sqlite-source", "database": str(db),
        "table": "items", "mode": "incrementing", "incrementing.column.name": "id",
        "topic.prefix": "db-", "poll.interval.ms": 20, "batch.max.rows": 50})
    sink = write_json(tmp_path / "sink.json", {
        "name": "items-out", "connector.class": "file-sink", "topics": "db-items",
        "file": str(out)})

    def write_step(start: int, n: int) -> None:
        con.executemany("INSERT INTO items (name) VALUES (?)",
                        [(f"item {i}",) for i in range(start, start + n)])
        con.commit()

    def lines() -> int:
        return out.read_bytes().count(b"\n") if out.exists() else 0

    worker = WorkerProcess(tmp_path, worker_config(tmp_path, cluster), [source, sink])
    appender = Appender(write_step, total)
    try:
        worker.start()
        appender.start()
        kills = kill_twice_mid_stream(worker, lines, total)
        assert all(k < total for k in kills), f"kills were not mid-stream: {kills}"
        appender.join(60)
        wait_until(lambda: lines() >= total, 60, f"all lines ({worker.log_tail()})")
        time.sleep(0.5)
        got = [json.loads(x) for x in out.read_text().splitlines()]
        assert got == [{"id": i + 1, "name": f"item {i}"} for i in range(total)]
        assert worker.stop() == 0
    finally:
        worker.stop()
        con.close()


@pytest.mark.timeout(90)
def test_bad_records_go_to_the_dead_letter_topic_and_tolerance_none_fails(tmp_path, cluster):
    src = tmp_path / "in.txt"
    src.write_text('{"id": 1}\nnot json at all\n{"id": 2}\n')
    db = tmp_path / "out.db"
    common = {"connector.class": "sqlite-sink", "topics": "raw", "database": str(db),
              "auto.create": True, "value.converter": "json"}
    configs = [
        write_json(tmp_path / "source.json", {
            "name": "raw-in", "connector.class": "file-source", "file": str(src),
            "topic": "raw", "poll.interval.ms": 20, "value.converter": "string"}),
        write_json(tmp_path / "tolerant.json", {
            **common, "name": "tolerant", "table": "tolerant", "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "raw-dlq"}),
        write_json(tmp_path / "strict.json", {
            **common, "name": "strict", "table": "strict", "errors.tolerance": "none"}),
    ]
    worker = WorkerProcess(tmp_path, worker_config(tmp_path, cluster), configs)
    try:
        worker.start()
        wait_until(lambda: count_rows(db, "tolerant") == 2, 30, "the good rows")
        dlq = read_topic(cluster.bootstrap_servers, "raw-dlq", 1)
        assert len(dlq) == 1 and dlq[0].value == b"not json at all"
        h = {k: v.decode() for k, v in dlq[0].headers}
        assert h["__connect.errors.topic"] == "raw"
        assert h["__connect.errors.partition"] == "0" and h["__connect.errors.offset"] == "1"
        assert h["__connect.errors.connector.name"] == "tolerant"
        assert h["__connect.errors.task.id"] == "0"
        assert h["__connect.errors.stage"] == "VALUE_CONVERTER"
        assert h["__connect.errors.exception.class.name"].endswith("ConversionError")
        assert "not valid JSON" in h["__connect.errors.exception.message"]
        with open(src, "a") as f:  # the pipeline carries on
            f.write('{"id": 3}\n')
        wait_until(lambda: count_rows(db, "tolerant") == 3, 30, "the row after the bad one")

        def strict_failed():
            code, st = worker.rest("GET", "/connectors/strict/status")
            return code == 200 and st["tasks"] and st["tasks"][0]["state"] == "FAILED" and st
        st = wait_until(strict_failed, 30, "the strict task to fail")
        assert "ToleranceExceededError" in st["tasks"][0]["trace"]
        assert "not valid JSON" in st["tasks"][0]["trace"]
        # it stopped at the bad record: nothing after it was written
        con = sqlite3.connect(db)
        try:
            strict_ids = [r[0] for r in con.execute("SELECT id FROM strict")]
        except sqlite3.OperationalError:  # its first batch held the bad record
            strict_ids = []
        con.close()
        assert strict_ids in ([], [1])
        code, st = worker.rest("GET", "/connectors/tolerant/status")
        assert st["tasks"][0]["state"] == "RUNNING"
        # a sink's offsets (REST) are its group's: altering needs it stopped (out of the group)
        part = {"kafka_topic": "raw", "kafka_partition": 0}
        wait_until(lambda: worker.rest("GET", "/connectors/tolerant/offsets") == (
            200, {"offsets": [{"partition": part, "offset": {"kafka_offset": 4}}]}), 20,
            "the committed offsets")
        assert worker.rest("PATCH", "/connectors/tolerant/offsets", {"offsets": []})[0] == 409
        assert worker.rest("PUT", "/connectors/tolerant/stop")[0] in (200, 202, 204)
        code, body = worker.rest("PATCH", "/connectors/tolerant/offsets", {"offsets": [
            {"partition": part, "offset": {"kafka_offset": 3}}]})
        assert code == 200, body
        assert worker.rest("GET", "/connectors/tolerant/offsets")[1]["offsets"][0][
            "offset"] == {"kafka_offset": 3}
        assert worker.rest("PUT", "/connectors/tolerant/resume")[0] in (200, 202, 204)
        # the SQLite sink resumes from its own (altered) offset: row 3 is written again
        wait_until(lambda: count_rows(db, "tolerant") == 4, 30, "the re-consumed row")
        cli = subprocess.run([sys.executable, "-m", "rillet.cli.connect", "list", "--url",
                              worker.url], capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0, cli.stderr
        assert "strict\tsink\tRUNNING\ttasks [0:FAILED]" in cli.stdout
        assert "tolerant\tsink\tRUNNING\ttasks [0:RUNNING]" in cli.stdout
        assert worker.stop() == 0
    finally:
        worker.stop()
