"""The worker, connector and task actors, against the in-memory fake cluster."""

from __future__ import annotations

import json
import sqlite3

import pytest
from rillet.connectors.api import SinkConnector, SinkTask, SourceConnector, SourceTask
from rillet.connectors.errors import ConflictError, RetriableError
from rillet.connectors.source_runtime import SOURCE_HEADER, WorkerSourceTask
from rillet.connectors.validation import validate_connector_config

from rillet.records import TopicPartition

from .conftest import wait_until

pytestmark = pytest.mark.timeout(30)


def file_source(path, name="src", **extra):
    return {"name": name, "connector.class": "file-source", "file": str(path), "topic": "lines",
            "poll.interval.ms": "20", "value.converter": "string", **extra}


def values(cluster, topic):
    return [r.value for r in cluster.records(topic)]


def test_file_source_produces_lines_and_stores_offsets(tmp_path, cluster, worker):
    f = tmp_path / "in.txt"
    f.write_text("a\nb\n")
    worker.add_connector(file_source(f))
    wait_until(lambda: values(cluster, "lines") == [b"a", b"b"], what="two lines")
    rec = cluster.records("lines")[1]
    marker = json.loads(dict(rec.headers)[SOURCE_HEADER])
    assert marker[0] == "src" and marker[1] == {"filename": str(f)}
    key = json.dumps(["src", {"filename": str(f)}], separators=(",", ":")).encode()
    stored = wait_until(lambda: key in (s := cluster.latest_by_key("connect-offsets")) and s)
    assert json.loads(stored[key])["position"] == 4
    assert cluster.configs["connect-offsets"]["cleanup.policy"] == "compact"
    st = worker.status("src")
    assert st["connector"]["state"] == "RUNNING" and st["tasks"][0]["state"] == "RUNNING"
    assert st["type"] == "source"


def test_a_restarted_worker_resumes_without_duplicates(tmp_path, cluster, worker_config):
    from rillet.connectors.herder import Worker

    f = tmp_path / "in.txt"
    f.write_text("1\n2\n")
    w1 = Worker(worker_config, cluster.clients())
    try:
        w1.add_connector(file_source(f))
        wait_until(lambda: len(cluster.records("lines")) == 2)
    finally:
        w1.stop()
    with open(f, "a") as fh:
        fh.write("3\n")
    w2 = Worker(worker_config, cluster.clients())
    try:
        w2.add_connector(file_source(f))
        wait_until(lambda: len(cluster.records("lines")) >= 3)
    finally:
        w2.stop()
    assert values(cluster, "lines") == [b"1", b"2", b"3"]
    assert cluster.open_clients == cluster.closed_clients


def test_records_written_but_not_committed_are_not_produced_again(tmp_path, cluster,
                                                                  worker_config):
    """A crash between the data and the offsets write: the restart scan dedupes."""
    f = tmp_path / "in.txt"
    f.write_text("1\n2\n")
    spec = validate_connector_config(file_source(f))
    conn = spec.connector_class()
    conn.start(spec.config)

    def runner():
        r = WorkerSourceTask(spec, 0, {**spec.config, **conn.task_configs(1)[0]},
                             worker_config, cluster.clients(), conn.task_class())
        r.start()
        return r

    r1 = runner()
    r1.iterate()
    with open(f, "a") as fh:
        fh.write("3\n4\n")
    cluster.fail_topics.add("connect-offsets")  # data lands, offsets do not
    with pytest.raises(Exception, match="connect-offsets"):
        r1.iterate()
    r1.stop()
    cluster.fail_topics.clear()
    assert values(cluster, "lines") == [b"1", b"2", b"3", b"4"]
    with open(f, "a") as fh:
        fh.write("5\n")
    r2 = runner()
    assert len(r2.already_written) == 2
    for _ in range(3):
        r2.iterate()
    r2.stop()
    assert values(cluster, "lines") == [b"1", b"2", b"3", b"4", b"5"]


def sqlite_sink(db, name="sink", **extra):
    return {"name": name, "connector.class": "sqlite-sink", "topics": "orders",
            "database": str(db), "auto.create": "true", "pk.mode": "record_value",
            "pk.fields": "id", "insert.mode": "upsert", **extra}


def table(db, sql="SELECT id, item FROM orders ORDER BY id"):
    try:
        con = sqlite3.connect(db)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return []


def test_sink_writes_rows_and_bad_records_go_to_the_dead_letter_topic(tmp_path, cluster,
                                                                      worker):
    db = tmp_path / "out.db"
    cluster.create("orders", 2)
    cluster.append("orders", 0, None, b'{"id": 1, "item": "tea"}', [], None)
    cluster.append("orders", 1, None, b"{broken", [("h", b"1")], None)
    cluster.append("orders", 1, None, b'{"item": "no id"}', [], None)
    cluster.append("orders", 0, None, b'{"id": 2, "item": "jam"}', [], None)
    worker.add_connector(sqlite_sink(db, **{
        "errors.tolerance": "all", "errors.deadletterqueue.topic.name": "orders-dlq"}))
    wait_until(lambda: table(db) == [(1, "tea"), (2, "jam")], what="rows")
    dlq = wait_until(lambda: len(cluster.records("orders-dlq")) == 2 and
                     cluster.records("orders-dlq"))
    h = dict(dlq[0].headers)
    assert dlq[0].value == b"{broken"
    assert h["__connect.errors.topic"] == b"orders"
    assert h["__connect.errors.partition"] == b"1" and h["__connect.errors.offset"] == b"0"
    assert h["__connect.errors.stage"] == b"VALUE_CONVERTER"
    assert h["__connect.errors.connector.name"] == b"sink"
    assert h["__connect.errors.task.id"] == b"0"
    assert b"ConversionError" in h["__connect.errors.exception.class.name"]
    h2 = dict(dlq[1].headers)
    assert h2["__connect.errors.stage"] == b"TASK_PUT" and h2["__connect.errors.offset"] == b"1"
    assert b"no field 'id'" in h2["__connect.errors.exception.message"]
    cluster.append("orders", 1, None, b'{"id": 3, "item": "more"}', [], None)
    wait_until(lambda: len(table(db)) == 3, what="the pipeline carries on")
    assert table(db, "SELECT topic, partition, next_offset FROM __connect_offsets "
                     "ORDER BY partition") == [("orders", 0, 2), ("orders", 1, 3)]


def test_tolerance_none_fails_the_task_with_its_trace(tmp_path, cluster, worker):
    db = tmp_path / "out.db"
    cluster.create("orders", 1)
    cluster.append("orders", 0, None, b'{"id": 1, "item": "tea"}', [], None)
    cluster.append("orders", 0, None, b"not json", [], None)
    worker.add_connector(sqlite_sink(db))
    st = wait_until(lambda: (s := worker.status("sink"))["tasks"][0]["state"] == "FAILED"
                    and s, what="FAILED")
    assert "ToleranceExceededError" in st["tasks"][0]["trace"]
    assert "VALUE_CONVERTER" in st["tasks"][0]["trace"]
    assert table(db) == []  # the failed batch wrote nothing
    cluster.fail_topics.clear()
    worker.restart("sink", include_tasks=True, only_failed=True)
    st = wait_until(lambda: (s := worker.status("sink"))["tasks"][0]["state"] == "FAILED"
                    and s, what="FAILED again (the bad record is still there)")


class FlakySink(SinkConnector):
    calls: list = []

    def task_class(self):
        return FlakyTask


class FlakyTask(SinkTask):
    def put(self, records):
        if records:
            FlakySink.calls.append(len(records))
            if len(FlakySink.calls) < 3:
                raise RetriableError("try again")
            FlakySink.done = [r.value for r in records]


def test_retriable_put_errors_are_retried_with_backoff(cluster, worker):
    cluster.create("t", 1)
    cluster.append("t", 0, None, b'"x"', [], None)
    FlakySink.calls = []
    worker.add_connector({"name": "flaky", "connector.class": f"{__name__}:FlakySink",
                          "topics": "t", "errors.retry.timeout": "5000",
                          "errors.retry.delay.max.ms": "10"})
    wait_until(lambda: getattr(FlakySink, "done", None) == ["x"])
    assert FlakySink.calls == [1, 1, 1]


class CountingSource(SourceConnector):
    def task_class(self):
        return CountingTask

    def task_configs(self, max_tasks):
        return [{"task.index": str(i)} for i in range(max_tasks)]


class CountingTask(SourceTask):
    def start(self, config):
        self.i = int(config["task.index"])
        stored = self.context.offset_storage_reader.offset({"task": self.i}) or {"n": 0}
        self.n = stored["n"]

    def poll(self):
        if self.n >= 3:
            return []
        self.n += 1
        from rillet.connectors.api import SourceRecord
        return [SourceRecord({"task": self.i}, {"n": self.n}, "counts",
                             value={"task": self.i, "n": self.n})]

    def idle_wait_ms(self):
        return 20


def test_tasks_max_splits_work_and_custom_connectors_load_by_module_path(cluster, worker):
    worker.add_connector({"name": "count", "connector.class": f"{__name__}:CountingSource",
                          "tasks.max": "3", "transforms": "k",
                          "transforms.k.type": "ValueToKey", "transforms.k.fields": "task"})
    wait_until(lambda: len(cluster.records("counts")) == 9)
    got = sorted((json.loads(r.key)["task"], json.loads(r.value)["n"])
                 for r in cluster.records("counts"))
    assert got == [(t, n) for t in range(3) for n in (1, 2, 3)]
    assert [t["id"] for t in worker.status("count")["tasks"]] == [0, 1, 2]


def test_pause_resume_stop_offsets_and_delete(tmp_path, cluster, worker):
    f = tmp_path / "in.txt"
    f.write_text("a\n")
    worker.add_connector(file_source(f))
    wait_until(lambda: len(cluster.records("lines")) == 1)
    with pytest.raises(ConflictError):
        worker.add_connector(file_source(f))
    with pytest.raises(ConflictError, match="stop it first"):
        worker.alter_offsets("src", [])
    worker.pause("src")
    assert worker.status("src")["tasks"][0]["state"] == "PAUSED"
    with open(f, "a") as fh:
        fh.write("b\n")
    assert len(cluster.records("lines")) == 1
    worker.resume("src")
    wait_until(lambda: len(cluster.records("lines")) == 2)
    assert worker.stop_connector("src") == "STOPPED"
    offsets = worker.get_offsets("src")["offsets"]
    assert offsets == [{"partition": {"filename": str(f)},
                        "offset": {"position": 4, "inode": f.stat().st_ino}}]
    worker.alter_offsets("src", [{"partition": {"filename": str(f)},
                                  "offset": {"position": 0}}])
    worker.resume("src")  # reads the file again from the start
    wait_until(lambda: values(cluster, "lines") == [b"a", b"b", b"a", b"b"])
    worker.delete("src")
    assert worker.connectors() == []


def test_invalid_connector_configs_are_rejected_up_front(worker):
    from rillet.connectors.errors import ConnectConfigError
    with pytest.raises(ConnectConfigError, match="did you mean 'topic'"):
        worker.add_connector({"name": "x", "connector.class": "file-source", "file": "f",
                              "topik": "t"})


def test_source_records_that_fail_a_transform_go_to_the_dead_letter_topic(tmp_path, cluster,
                                                                          worker):
    f = tmp_path / "in.txt"
    f.write_text('{"id": 1}\n[1, 2]\n{"id": 3}\n')
    worker.add_connector(file_source(f, **{
        "value.converter": "json", "transforms": "parse,key",
        "transforms.parse.type": f"{__name__}:ParseJson",
        "transforms.key.type": "ValueToKey", "transforms.key.fields": "id",
        "errors.tolerance": "all", "errors.deadletterqueue.topic.name": "src-dlq"}))
    wait_until(lambda: len(cluster.records("lines")) == 2)
    assert [json.loads(r.key) for r in cluster.records("lines")] == [{"id": 1}, {"id": 3}]
    dlq = wait_until(lambda: cluster.records("src-dlq"))
    h = dict(dlq[0].headers)
    assert dlq[0].value == b"[1, 2]"
    assert h["__connect.errors.stage"] == b"TRANSFORMATION"
    assert json.loads(h["__connect.errors.source.partition"]) == {"filename": str(f)}
    assert json.loads(h["__connect.errors.source.offset"])["position"] == 17
    key = json.dumps(["src", {"filename": str(f)}], separators=(",", ":")).encode()
    wait_until(lambda: json.loads(cluster.latest_by_key("connect-offsets").get(key, b"{}"))
               .get("position") == 27, what="the offset moves past the bad record")


class ParseJson:
    """A custom transform (module:Class): the str line -> its JSON value."""

    def configure(self, config):
        pass

    def apply(self, record):
        import dataclasses
        return dataclasses.replace(record, value=json.loads(record.value))


class FailOnce(SinkConnector):
    def task_class(self):
        return FailOnceTask


class FailOnceTask(SinkTask):
    seen: list = []
    fail = True

    def put(self, records):
        if records and FailOnceTask.fail:
            raise ValueError("disk on fire")
        FailOnceTask.seen += [r.value for r in records]


def test_a_failed_put_is_not_committed_so_a_restart_retries_it(cluster, worker):
    cluster.create("t", 1)
    for v in (b'"a"', b'"b"'):
        cluster.append("t", 0, None, v, [], None)
    FailOnceTask.seen, FailOnceTask.fail = [], True
    worker.add_connector({"name": "once", "connector.class": f"{__name__}:FailOnce",
                          "topics": "t"})
    wait_until(lambda: worker.status("once")["tasks"][0]["state"] == "FAILED")
    assert "disk on fire" in worker.status("once")["tasks"][0]["trace"]
    worker.stop_connector("once")  # stopping commits: it must not commit the failed batch
    FailOnceTask.fail = False
    worker.resume("once")
    wait_until(lambda: FailOnceTask.seen == ["a", "b"])


def test_sink_tasks_share_a_consumer_group_and_follow_a_topic_regex(tmp_path, cluster,
                                                                   worker):
    for name in ("logs-a", "logs-b", "other"):
        cluster.create(name, 2)
        for p in range(2):
            cluster.append(name, p, None, f'"{name}-{p}"'.encode(), [], None)
    out = tmp_path / "out"
    FailOnceTask.seen, FailOnceTask.fail = [], False
    worker.add_connector({"name": "rx", "connector.class": f"{__name__}:FailOnce",
                          "topics.regex": "logs-.*", "tasks.max": "2"})
    wait_until(lambda: sorted(FailOnceTask.seen) == ["logs-a-0", "logs-a-1", "logs-b-0",
                                                     "logs-b-1"])
    assert len(worker.status("rx")["tasks"]) == 2
    members = cluster.group_members["connect-rx"]
    assert len(members) == 2
    # the group split them (the task that joined first gave half away)
    wait_until(lambda: all(len(m.positions) == 2 for m in members))
    assert not set(members[0].positions) & set(members[1].positions)
    # offsets are committed to the group (rillet group describe shows the lag)
    wait_until(lambda: cluster.group_offsets.get("connect-rx") == {
        TopicPartition(t, p): 1 for t in ("logs-a", "logs-b") for p in range(2)})
    cluster.create("logs-c", 1)  # a new matching topic joins the subscription
    cluster.append("logs-c", 0, None, b'"logs-c-0"', [], None)
    wait_until(lambda: "logs-c-0" in FailOnceTask.seen, timeout_s=10)
    assert not out.exists()
    assert len(FailOnceTask.seen) == 5  # nothing was put twice while partitions moved


class Recording(SinkConnector):
    def task_class(self):
        return RecordingTask


class RecordingTask(SinkTask):
    events: list = []

    def open(self, partitions):
        RecordingTask.events.append(("open", self.context.task_id, sorted(partitions)))

    def close(self, partitions):
        RecordingTask.events.append(("close", self.context.task_id, sorted(partitions)))

    def put(self, records):
        RecordingTask.events += [("put", self.context.task_id, r.value) for r in records]


def test_a_stopped_task_hands_its_partitions_over_through_open_and_close(cluster, worker):
    cluster.create("t", 2)
    RecordingTask.events = []
    worker.add_connector({"name": "rec", "connector.class": f"{__name__}:Recording",
                          "topics": "t", "tasks.max": "2",
                          "consumer.override.group.id": "my-sinks"})
    ev = RecordingTask.events

    def opened(task_id):
        return {tp for e in ev if e[0] == "open" and e[1] == task_id for tp in e[2]}

    wait_until(lambda: opened(0) and opened(1))
    assert opened(0) | opened(1) == {TopicPartition("t", 0), TopicPartition("t", 1)}
    cluster.append("t", 0, None, b'"x"', [], None)
    cluster.append("t", 1, None, b'"y"', [], None)
    wait_until(lambda: sorted(e[2] for e in ev if e[0] == "put") == ["x", "y"])
    wait_until(lambda: cluster.group_offsets.get("my-sinks") == {
        TopicPartition("t", 0): 1, TopicPartition("t", 1): 1})
    moved = next(iter(opened(1)))
    # task 1 goes away (closes its consumer): its partition is closed there, opened on task 0
    # at the committed offset, so nothing is put twice
    runner = cluster.group_members["my-sinks"][1]
    with cluster.lock:
        cluster.group_members["my-sinks"].remove(runner)
    runner.unsubscribe()
    assert ("close", 1, [moved]) in ev
    wait_until(lambda: moved in opened(0))
    cluster.append("t", moved.partition, None, b'"z"', [], None)
    wait_until(lambda: ("put", 0, "z") in ev)
    assert sorted(e[2] for e in ev if e[0] == "put") == ["x", "y", "z"]


def test_an_unreachable_cluster_restarts_tasks_instead_of_failing_them(tmp_path, cluster,
                                                                      worker):
    f = tmp_path / "in.txt"
    f.write_text("1\n")
    cluster.down = True
    worker.add_connector(file_source(f))
    st = wait_until(lambda: (s := worker.status("src"))["tasks"][0]["state"] == "RESTARTING"
                    and s)
    assert "BrokerUnavailableError" in st["tasks"][0]["trace"]
    cluster.down = False
    wait_until(lambda: values(cluster, "lines") == [b"1"], what="recovery")
    assert worker.status("src")["tasks"][0]["state"] == "RUNNING"
    cluster.down = True  # now mid-stream: a produce fails, the task restarts, nothing is lost
    with open(f, "a") as fh:
        fh.write("2\n3\n")
    wait_until(lambda: worker.status("src")["tasks"][0]["state"] == "RESTARTING")
    cluster.down = False
    wait_until(lambda: values(cluster, "lines") == [b"1", b"2", b"3"], timeout_s=15)


def test_a_crash_during_the_very_first_write_is_deduplicated_too(tmp_path, cluster,
                                                                 worker_config):
    f = tmp_path / "in.txt"
    f.write_text("1\n2\n")
    cluster.create("lines", 1)
    cluster.append("lines", 0, None, b"someone else's", [], None)
    spec = validate_connector_config(file_source(f))
    conn = spec.connector_class()
    conn.start(spec.config)

    def runner():
        r = WorkerSourceTask(spec, 0, {**spec.config, **conn.task_configs(1)[0]},
                             worker_config, cluster.clients(), conn.task_class())
        r.start()
        return r

    r1 = runner()
    real_commit = r1._commit
    r1._commit = lambda latest: real_commit(latest) if not latest else 1 / 0  # crash
    with pytest.raises(ZeroDivisionError):
        r1.iterate()
    r1.stop()
    r2 = runner()
    assert r2.scan_from == {("lines", 0): 1} and len(r2.already_written) == 2
    r2.iterate()
    r2.stop()
    assert values(cluster, "lines") == [b"someone else's", b"1", b"2"]


def test_a_record_the_producer_rejects_is_tolerated_like_any_other(tmp_path, cluster, worker):
    f = tmp_path / "in.txt"
    f.write_text("ok\n" + "x" * 100 + "\nok2\n")
    cluster.max_value_bytes = 50
    worker.add_connector(file_source(f, **{"errors.tolerance": "all",
                                           "errors.deadletterqueue.topic.name": "dlq"}))
    wait_until(lambda: values(cluster, "lines") == [b"ok", b"ok2"])
    h = dict(cluster.records("dlq")[0].headers)
    assert h["__connect.errors.stage"] == b"KAFKA_PRODUCE"
    assert b"MessageTooLargeError" in h["__connect.errors.exception.class.name"]


def test_sink_offsets_are_the_groups_committed_offsets(cluster, worker):
    cluster.create("t", 1)
    for v in (b'"a"', b'"b"', b'"c"'):
        cluster.append("t", 0, None, v, [], None)
    RecordingTask.events = []
    ev = RecordingTask.events
    worker.add_connector({"name": "rec", "connector.class": f"{__name__}:Recording",
                          "topics": "t"})
    wait_until(lambda: cluster.group_offsets.get("connect-rec") == {TopicPartition("t", 0): 3})
    with pytest.raises(ConflictError, match="stop it first"):
        worker.alter_offsets("rec", [])
    assert worker.stop_connector("rec") == "STOPPED"
    assert not cluster.group_members["connect-rec"]  # the stopped task left the group
    part = {"kafka_topic": "t", "kafka_partition": 0}
    assert worker.get_offsets("rec") == {"offsets": [
        {"partition": part, "offset": {"kafka_offset": 3}}]}
    worker.alter_offsets("rec", [{"partition": part, "offset": {"kafka_offset": 1}}])
    assert cluster.group_offsets["connect-rec"] == {TopicPartition("t", 0): 1}
    worker.resume("rec")  # consumes again from offset 1
    wait_until(lambda: [e[2] for e in ev if e[0] == "put"] == ["a", "b", "c", "b", "c"])
    assert worker.stop_connector("rec") == "STOPPED"
    worker.reset_offsets("rec")
    assert worker.get_offsets("rec") == {"offsets": []}


def test_a_paused_sinks_offsets_cannot_be_altered(cluster, worker):
    cluster.create("t", 1)
    RecordingTask.events = []
    worker.add_connector({"name": "rec", "connector.class": f"{__name__}:Recording",
                          "topics": "t"})
    wait_until(lambda: cluster.group_members.get("connect-rec"))
    worker.pause("rec")
    part = {"kafka_topic": "t", "kafka_partition": 0}
    with pytest.raises(ConflictError, match="stop it first"):
        worker.alter_offsets("rec", [{"partition": part, "offset": {"kafka_offset": 0}}])


class FailOnPoison(SinkConnector):
    def task_class(self):
        return FailOnPoisonTask


class FailOnPoisonTask(SinkTask):
    seen: list = []

    def put(self, records):
        for r in records:
            if r.value == "poison":
                raise ValueError("poisoned")
        FailOnPoisonTask.seen += [(self.context.task_id, r.value) for r in records]


def test_a_failed_sink_task_leaves_the_group_and_its_partitions_move(cluster, worker):
    cluster.create("t", 2)
    FailOnPoisonTask.seen = []
    worker.add_connector({"name": "pp", "connector.class": f"{__name__}:FailOnPoison",
                          "topics": "t", "tasks.max": "2"})
    members = wait_until(lambda: len(m := cluster.group_members.get("connect-pp", [])) == 2
                         and all(x.positions for x in m) and list(m))
    bad = next(iter(members[1].positions))
    cluster.append("t", bad.partition, None, b'"ok"', [], None)
    wait_until(lambda: FailOnPoisonTask.seen == [(1, "ok")])
    cluster.append("t", bad.partition, None, b'"poison"', [], None)
    wait_until(lambda: worker.status("pp")["tasks"][1]["state"] == "FAILED")
    # task 0 takes the partition over at the committed offset, meets the poison record
    # too, fails and leaves as well
    wait_until(lambda: worker.status("pp")["tasks"][0]["state"] == "FAILED"
               and cluster.group_members["connect-pp"] == [])
    assert FailOnPoisonTask.seen == [(1, "ok")]
    assert cluster.group_offsets["connect-pp"][bad] == 1


def test_sink_consumer_config_names_the_group_and_keeps_static_ids_per_task(cluster):
    from rillet.connectors.config import parse_worker_config
    from rillet.connectors.sink_runtime import WorkerSinkTask

    w = parse_worker_config({"bootstrap.servers": "h:1", "consumer.max.poll.records": 7})
    spec = validate_connector_config({
        "name": "s", "connector.class": f"{__name__}:Recording", "topics": "t",
        "consumer.override.group.instance.id": "w1-s", "consumer.override.group.id": "x",
        "consumer.override.enable.auto.commit": True}, w)
    cfgs = [WorkerSinkTask(spec, i, 2, {}, w, cluster.clients(), RecordingTask)
            .consumer_config() for i in range(2)]
    assert [c["group.instance.id"] for c in cfgs] == ["w1-s-0", "w1-s-1"]
    assert all(c["group.id"] == "x" and c["enable.auto.commit"] is False
               and c["max.poll.records"] == 7 for c in cfgs)
    assert cfgs[1]["client.id"] == "connector-consumer-s-1"
