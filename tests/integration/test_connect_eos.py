"""Exactly-once source connectors with transactions (KIP-618): real `rillet connect standalone`
worker processes with ``exactly.once.source.support=enabled`` against a real broker.

Each source transaction holds the records and the source offsets (``connect-offsets``) of one
poll: the raw logs show transactional batches, and every transaction (a producer id and epoch:
the epoch moves on at every EndTxn, KIP-890) has batches in both topics. Workers killed with
SIGKILL mid-stream leave open transactions that the restarted task fences and aborts; a
read_committed consumer sees every line exactly once. A failure inside a transaction aborts
it: nothing of it reaches read_committed readers, and a restart delivers it again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from connect_helpers import Appender, WorkerProcess, write_json
from rillet.logstore.batch import decode_records, iter_batches

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from tests.support import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OFFSETS_TOPIC = "connect-offsets"


def eos_worker_config(tmp_path: Path, cluster, **extra: Any) -> Path:
    return write_json(tmp_path / "worker.json", {
        "bootstrap.servers": cluster.bootstrap_servers, "rest.port": 0, "worker.id": "w1",
        "exactly.once.source.support": "enabled", **extra})


def read_values(bootstrap: str, topic: str, level: str, timeout_s: float = 20) -> list[bytes]:
    """The values of ``topic``-0 a consumer at ``level`` sees, read until its position
    reaches the log end taken first (so past the markers of what was there)."""
    tp = TopicPartition(topic, 0)
    with Consumer({"bootstrap.servers": bootstrap}) as c:  # read_uncommitted: the log end
        end = c.end_offsets([tp])[tp]
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
                   "isolation.level": level, "enable.auto.commit": False}) as c:
        c.assign([tp])
        c.seek_to_beginning(tp)
        out: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while c.position(tp) < end:
            assert time.monotonic() < deadline, f"{level} at {c.position(tp)} of {end}"
            for records in c.poll(timeout_ms=200).values():
                out.extend(r.value for r in records)
        return out


def committed_offsets(bootstrap: str, connector: str) -> dict[str, Any]:
    """The connector's source offsets as a read_committed reader of connect-offsets sees
    them (latest per source partition)."""
    tp = TopicPartition(OFFSETS_TOPIC, 0)
    with Consumer({"bootstrap.servers": bootstrap}) as c:
        end = c.end_offsets([tp])[tp]
    out: dict[str, Any] = {}
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
                   "isolation.level": "read_committed", "enable.auto.commit": False}) as c:
        c.assign([tp])
        c.seek_to_beginning(tp)
        deadline = time.monotonic() + 20
        while c.position(tp) < end:
            assert time.monotonic() < deadline
            for records in c.poll(timeout_ms=200).values():
                for r in records:
                    name, part = json.loads(r.key)
                    if name == connector:
                        out[json.dumps(part, sort_keys=True)] = json.loads(r.value)
    return out


def raw_batches(wire, topic: str) -> list[tuple[Any, list]]:
    """Every batch of ``topic``-0 as stored: (header, records), control batches included."""
    out: list[tuple[Any, list]] = []
    offset = 0
    while True:
        part = wire.fetch(topic, 0, offset)
        assert part.error_code == 0, part
        got = list(iter_batches(part.records))
        got = [(h, decode_records(mv, validate=False)) for h, mv in got
               if h.next_offset > offset]
        if not got:
            return out
        out += got
        offset = got[-1][0].next_offset


def transactions_of(batches: list[tuple[Any, list]]) -> dict[tuple[int, int], list]:
    """Data records per transaction (producer id, epoch), control batches left out."""
    out: dict[tuple[int, int], list] = {}
    for h, recs in batches:
        if not h.is_control:
            out.setdefault((h.producer_id, h.producer_epoch), []).extend(recs)
    return out


def safely(fn, *args: Any, default: Any = None) -> Any:
    """``fn(*args)``, or ``default`` while the topic does not exist yet."""
    try:
        return fn(*args)
    except Exception:
        return default


def wait_for_whole_file_committed(bootstrap: str, src: Path, worker: WorkerProcess) -> None:
    """Until connector ``src``'s committed source offset is the end of the file ``src``."""
    key = json.dumps({"filename": str(src)})
    wait_until(lambda: safely(committed_offsets, bootstrap, "src", default={}).get(
        key, {}).get("position") == src.stat().st_size, 30,
        f"the last offset committed ({worker.log_tail()})")


def last_stable_and_log_end(bootstrap: str, topic: str) -> tuple[int, int]:
    tp = TopicPartition(topic, 0)
    with Consumer({"bootstrap.servers": bootstrap, "isolation.level": "read_committed"}) as c:
        lso = c.end_offsets([tp])[tp]
    with Consumer({"bootstrap.servers": bootstrap}) as c:
        return lso, c.end_offsets([tp])[tp]


class CommittedCounter:
    """Counts what a read_committed consumer of ``topic``-0 has seen so far (one consumer,
    polled a little at each call), for progress while the pipeline runs."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.values: list[bytes] = []
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset":
                                  "earliest", "isolation.level": "read_committed",
                                  "enable.auto.commit": False})
        self.tp = TopicPartition(topic, 0)
        self.assigned = False

    def __call__(self) -> int:
        if not self.assigned:
            try:
                self.consumer.assign([self.tp])
            except Exception:  # the topic does not exist yet
                return 0
            self.assigned = True
        try:
            got = self.consumer.poll(timeout_ms=50)
        except Exception:  # the topic is not there yet
            return len(self.values)
        for recs in got.values():
            self.values += [r.value for r in recs]
        return len(self.values)

    def close(self) -> None:
        self.consumer.close()


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_file_source_commits_records_and_offsets_in_one_transaction(tmp_path, cluster,
                                                                    wire_factory):
    src = tmp_path / "in.txt"
    lines = [f"line {i}" for i in range(50)]
    src.write_text("".join(f"{x}\n" for x in lines))
    source = write_json(tmp_path / "source.json", {
        "name": "src", "connector.class": "file-source", "file": str(src), "topic": "lines",
        "batch.size": 20, "poll.interval.ms": 20, "value.converter": "string",
        "exactly.once.support": "required"})
    worker = WorkerProcess(tmp_path, eos_worker_config(tmp_path, cluster), [source])
    bootstrap = cluster.bootstrap_servers
    try:
        worker.start()
        wait_for_whole_file_committed(bootstrap, src, worker)
        assert read_values(bootstrap, "lines", "read_committed") == [x.encode()
                                                                      for x in lines]
        # the raw logs: every data batch is transactional, commit markers follow them, and
        # each transaction wrote both its records and its source offset
        wire = wire_factory(cluster)
        data = raw_batches(wire, "lines")
        offsets = raw_batches(wire, OFFSETS_TOPIC)
        assert all(h.is_transactional for h, _ in data + offsets)
        assert sum(h.is_control for h, _ in data) >= 3  # 50 lines in polls of <= 20
        data_txns, offset_txns = transactions_of(data), transactions_of(offsets)
        assert len({pid for pid, _ in data_txns}) == 1
        assert data_txns.keys() == offset_txns.keys()
        position = 0
        for txn, recs in data_txns.items():
            position += sum(len(r.value) + 1 for r in recs)
            (off,) = offset_txns[txn]
            assert json.loads(off.key) == ["src", {"filename": str(src)}]
            assert json.loads(off.value)["position"] == position
        # the transactional id is {worker id}-{connector}-{task}
        with Admin({"bootstrap.servers": bootstrap}) as admin:
            listed = {t.transactional_id: t for t in admin.list_transactions()}
        assert "w1-src-0" in listed
        assert listed["w1-src-0"].producer_id == next(iter(data_txns))[0]
        assert worker.stop() == 0
    finally:
        worker.stop()


@pytest.mark.timeout(150)
def test_kill_9_mid_stream_read_committed_sees_every_line_once(tmp_path, cluster):
    """Two SIGKILLs, each while the task has records in an open transaction (the log end
    is above the last stable offset); transactions of 300 ms (interval boundaries) so that
    they are open most of the time. The restarted task fences and aborts them."""
    total = 3000
    bootstrap = cluster.bootstrap_servers
    src = tmp_path / "in.txt"
    src.touch()
    source = write_json(tmp_path / "source.json", {
        "name": "src", "connector.class": "file-source", "file": str(src), "topic": "lines",
        "batch.size": 50, "poll.interval.ms": 20, "value.converter": "string",
        "transaction.boundary": "interval", "transaction.boundary.interval.ms": 300})

    def write_step(start: int, n: int) -> None:
        with open(src, "a") as f:
            f.writelines(f"line {i}\n" for i in range(start, start + n))

    def inside_a_transaction() -> bool:
        lso, log_end = last_stable_and_log_end(bootstrap, "lines")
        return lso < log_end

    worker = WorkerProcess(tmp_path, eos_worker_config(tmp_path, cluster), [source])
    appender = Appender(write_step, total)
    progress = CommittedCounter(bootstrap, "lines")
    try:
        worker.start()
        appender.start()
        kills = []
        for fraction in (0.25, 0.5):
            wait_until(lambda f=fraction: progress() >= total * f, 60,
                       f"{fraction:.0%} of the lines", interval_s=0.01)
            wait_until(inside_a_transaction, 20, "records in an open transaction",
                       interval_s=0.005)
            kills.append(progress())
            worker.kill()
            worker.start()
        assert all(k < total for k in kills), f"kills were not mid-stream: {kills}"
        appender.join(60)
        wait_until(lambda: progress() >= total, 60, f"every line ({worker.log_tail()})")
        assert worker.stop() == 0
        got = read_values(bootstrap, "lines", "read_committed")
        assert got == [f"line {i}".encode() for i in range(total)]
        # the kills left records of open transactions behind: aborted, and produced again
        assert len(read_values(bootstrap, "lines", "read_uncommitted")) > total
    finally:
        progress.close()
        worker.stop()


@pytest.mark.timeout(90)
def test_a_failure_inside_a_transaction_aborts_it_and_a_restart_delivers_again(
        tmp_path, cluster, monkeypatch):
    """Records already sent (read_uncommitted sees them), then a transform fails the task
    (errors.tolerance=none): the transaction is aborted, read_committed sees nothing and no
    offset is committed; the task restarted delivers everything, once."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    bootstrap = cluster.bootstrap_servers
    src = tmp_path / "in.txt"
    marker = tmp_path / "fail.marker"
    marker.touch()
    first = [f"line {i}" for i in range(30)]
    src.write_text("".join(f"{x}\n" for x in first))
    source = write_json(tmp_path / "source.json", {
        "name": "src", "connector.class": "file-source", "file": str(src), "topic": "lines",
        "batch.size": 10, "poll.interval.ms": 20, "value.converter": "string",
        # one transaction for everything until the failure: a long interval
        "transaction.boundary": "interval", "transaction.boundary.interval.ms": 60000,
        "transforms": "failer",
        "transforms.failer.type": "tests.integration.connect_eos_helpers:FailWhileMarked",
        "transforms.failer.marker": str(marker), "transforms.failer.match": "boom"})
    worker = WorkerProcess(tmp_path, eos_worker_config(tmp_path, cluster), [source])
    try:
        worker.start()
        # the first 30 lines are on the broker, inside the open transaction
        wait_until(lambda: len(safely(read_values, bootstrap, "lines", "read_uncommitted",
                                      default=[])) >= 30, 30,
                   f"30 records sent ({worker.log_tail()})")
        with open(src, "a") as f:
            f.write("boom\n")

        def task_state() -> str:
            return worker.rest("GET", "/connectors/src/status")[1]["tasks"][0]["state"]

        wait_until(lambda: task_state() == "FAILED", 30, "the task failed")
        assert "injected failure" in worker.rest("GET", "/connectors/src/status")[1][
            "tasks"][0]["trace"]
        # aborted: read_committed gets past the abort marker and sees nothing
        assert read_values(bootstrap, "lines", "read_committed") == []
        assert len(read_values(bootstrap, "lines", "read_uncommitted")) == 30
        assert committed_offsets(bootstrap, "src") == {}
        marker.unlink()
        assert worker.rest("POST", "/connectors/src/tasks/0/restart")[0] in (200, 202, 204)
        # the restarted task polls all 31 lines again into a new transaction
        wait_until(lambda: len(read_values(bootstrap, "lines", "read_uncommitted")) >= 61, 30,
                   f"the lines produced again ({worker.log_tail()})")
        lso, log_end = last_stable_and_log_end(bootstrap, "lines")
        assert lso == 31 < log_end  # the open transaction holds read_committed back
        # pausing commits the open transaction (so it cannot outlive its timeout)
        assert worker.rest("PUT", "/connectors/src/pause")[0] in (200, 202, 204)
        expected = [x.encode() for x in first] + [b"boom"]
        wait_until(lambda: read_values(bootstrap, "lines", "read_committed") == expected, 30,
                   "the new transaction committed")
        assert committed_offsets(bootstrap, "src") == {
            json.dumps({"filename": str(src)}): {"position": src.stat().st_size,
                                                 "inode": src.stat().st_ino}}
        # and so does a graceful stop (Kafka's final offset commit)
        assert worker.rest("PUT", "/connectors/src/resume")[0] in (200, 202, 204)
        with open(src, "a") as f:
            f.write("more 1\nmore 2\n")
        wait_until(lambda: len(read_values(bootstrap, "lines", "read_uncommitted")) >= 63, 30,
                   "two more lines produced")
        assert worker.rest("PUT", "/connectors/src/stop")[0] in (200, 202, 204)
        wait_until(lambda: read_values(bootstrap, "lines", "read_committed") == [
            *expected, b"more 1", b"more 2"], 30, "the last transaction committed at stop")
    finally:
        worker.stop()


@pytest.mark.timeout(90)
def test_sqlite_source_commits_rows_and_offsets_together(tmp_path, cluster, wire_factory):
    db = tmp_path / "shop.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    con.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(1, 26)])
    con.commit()
    con.close()
    source = write_json(tmp_path / "source.json", {
        "name": "db", "connector.class": "sqlite-source", "database": str(db),
        "table": "items", "mode": "incrementing", "incrementing.column.name": "id",
        "topic.prefix": "db-", "batch.max.rows": 10, "poll.interval.ms": 100,
        "exactly.once.support": "required"})
    worker = WorkerProcess(tmp_path, eos_worker_config(tmp_path, cluster), [source])
    bootstrap = cluster.bootstrap_servers
    try:
        worker.start()
        wait_until(lambda: safely(committed_offsets, bootstrap, "db", default={}).get(
            json.dumps({"table": "items"}), {}).get("incrementing") == 25, 30,
            f"the last offset committed ({worker.log_tail()})")
        rows = [json.loads(v) for v in read_values(bootstrap, "db-items", "read_committed")]
        assert [r["id"] for r in rows] == list(range(1, 26))
        wire = wire_factory(cluster)
        data = transactions_of(raw_batches(wire, "db-items"))
        offsets = transactions_of(raw_batches(wire, OFFSETS_TOPIC))
        assert len(data) >= 3 and data.keys() == offsets.keys()  # polls of <= 10 rows
        for txn, recs in data.items():
            (off,) = offsets[txn]
            assert json.loads(off.value)["incrementing"] == json.loads(recs[-1].value)["id"]
        assert worker.stop() == 0
    finally:
        worker.stop()



@pytest.mark.timeout(90)
def test_offsets_of_an_aborted_transaction_are_never_used(tmp_path, cluster):
    """An offset record written in a transaction that was aborted (a task that died between
    writing its offsets and committing) is invisible to the worker's read_committed offset
    reader: the task starts from the last committed offset (here none: the file's start)."""
    bootstrap = cluster.bootstrap_servers
    src = tmp_path / "in.txt"
    lines = [f"line {i}" for i in range(10)]
    src.write_text("".join(f"{x}\n" for x in lines))
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(OFFSETS_TOPIC, 1, 1, {"cleanup.policy": "compact"})])
    with Producer({"bootstrap.servers": bootstrap, "transactional.id": "zombie"}) as p:
        p.init_transactions()
        p.begin_transaction()
        halfway = sum(len(x) + 1 for x in lines[:5])
        p.send(OFFSETS_TOPIC, json.dumps({"position": halfway,
                                          "inode": src.stat().st_ino}).encode(),
               key=json.dumps(["src", {"filename": str(src)}]).encode()).get(10)
        p.abort_transaction()
    source = write_json(tmp_path / "source.json", {
        "name": "src", "connector.class": "file-source", "file": str(src), "topic": "lines",
        "poll.interval.ms": 20, "value.converter": "string"})
    worker = WorkerProcess(tmp_path, eos_worker_config(tmp_path, cluster), [source])
    try:
        worker.start()
        wait_for_whole_file_committed(bootstrap, src, worker)
        assert read_values(bootstrap, "lines", "read_committed") == [x.encode()
                                                                      for x in lines]
    finally:
        worker.stop()


@pytest.mark.timeout(90)
def test_a_fenced_task_stops(tmp_path, cluster):
    """A newer producer with the task's transactional id (a new instance of the task
    elsewhere) fences it: its next commit fails with ProducerFencedError and the task is
    FAILED, writing nothing more."""
    bootstrap = cluster.bootstrap_servers
    src = tmp_path / "in.txt"
    src.write_text("one\n")
    source = write_json(tmp_path / "source.json", {
        "name": "src", "connector.class": "file-source", "file": str(src), "topic": "lines",
        "poll.interval.ms": 20, "value.converter": "string"})
    worker = WorkerProcess(tmp_path, eos_worker_config(tmp_path, cluster), [source])
    try:
        worker.start()
        wait_until(lambda: safely(read_values, bootstrap, "lines", "read_committed",
                                  default=[]) == [b"one"], 30, "the first line")
        with Producer({"bootstrap.servers": bootstrap, "transactional.id": "w1-src-0"}) as p:
            p.init_transactions()
        with open(src, "a") as f:
            f.write("two\n")

        def task() -> dict:
            return worker.rest("GET", "/connectors/src/status")[1]["tasks"][0]

        wait_until(lambda: task()["state"] == "FAILED", 30, "the fenced task failed")
        assert "ProducerFencedError" in task()["trace"]
        assert read_values(bootstrap, "lines", "read_committed") == [b"one"]
    finally:
        worker.stop()
