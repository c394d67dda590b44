"""Cross-cluster mirroring between two real clusters (issue #17): `rillet mirror start` is run
as a user would, as its own process, against two LocalClusters. One pair of clusters serves
the module (``pair``; each test uses its own topics); the test that starts B late has its own."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict

import pytest
from rillet.connectors.mirror.remote import _read_all, heartbeat_age_ms, translate_offsets
from rillet.connectors.mirror.runner import COMMIT_RECORDS, POLL_RECORDS

from rillet import Admin, Consumer, Producer
from rillet.records import TopicPartition
from tests.integration.connect_helpers import WorkerProcess
from tests.integration.mirror_helpers import (  # noqa: F401 - *_fixture are fixtures
    _count,
    _create,
    _produce,
    _props,
    mirrors_fixture,
    pair_fixture,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

RECORDS = 3000
PARTITIONS = 3  # as mirror_helpers._create's default
FILLER = 300


def test_keyed_records_mirrored_in_order_and_kill9_loses_nothing(pair, tmp_path, mirrors):
    a, b = pair
    _create(a.bootstrap_servers, "keyed-orders", **{"retention.ms": "86400000"})
    _produce(a.bootstrap_servers, "keyed-orders", RECORDS)
    m = mirrors(_props(tmp_path, a.bootstrap_servers, b.bootstrap_servers,
                      **{"A->B.topics": "keyed-orders"}))
    wait_until(lambda: _count(b.bootstrap_servers, "A.keyed-orders") > RECORDS // 10, 60,
               "the mirror to copy some records")
    m.kill9()
    _produce(a.bootstrap_servers, "keyed-orders", RECORDS, start=RECORDS)
    mirrors(m.props)
    wait_until(lambda: _count(b.bootstrap_servers, "A.keyed-orders") >= 2 * RECORDS, 90,
               "every record on B after the kill -9")

    source = _read_all(a.bootstrap_servers, "keyed-orders")
    copied = _read_all(b.bootstrap_servers, "A.keyed-orders", timeout_s=30)
    by_part: dict[int, list] = defaultdict(list)
    for r in copied:
        by_part[r.partition].append(r)
    for part in range(PARTITIONS):
        want = [(r.key, r.value, r.headers, r.timestamp) for r in source if r.partition == part]
        got = [(r.key, r.value, r.headers, r.timestamp) for r in by_part[part]]
        # at-least-once: a kill may re-copy a tail; first occurrences keep the source order
        seen, first = set(), []
        for rec in got:
            if rec not in seen:
                seen.add(rec)
                first.append(rec)
        assert first == want, f"partition {part} differs"
    duplicates = len(copied) - len(source)
    # at most what one commit covers per kill: COMMIT_RECORDS, plus the poll that reached it
    assert 0 <= duplicates < COMMIT_RECORDS + POLL_RECORDS
    status = subprocess.run([sys.executable, "-m", "rillet.cli.main", "mirror", "status",
                             str(m.props)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    rows = [line.split() for line in status.stdout.splitlines() if line.startswith("keyed-orders ")]
    assert sorted((int(r[1]), int(r[2]), int(r[3])) for r in rows) == [
        (p, sum(1 for r in source if r.partition == p), 0) for p in range(PARTITIONS)]
    assert "heartbeat age: " in status.stdout and "heartbeat age: -" not in status.stdout
    with Admin({"bootstrap.servers": b.bootstrap_servers}) as admin:
        assert len(admin.describe_topics(["A.keyed-orders"])["A.keyed-orders"].partitions) == \
            PARTITIONS
        cfg = admin.describe_configs(["A.keyed-orders"])["A.keyed-orders"]
        assert cfg["retention.ms"].value == "86400000"


def test_group_fails_over_with_translated_offsets(pair, tmp_path, mirrors):
    a, b = pair
    _create(a.bootstrap_servers, "fo-orders", partitions=1)
    _produce(a.bootstrap_servers, "fo-orders", 2000)
    # B's copy starts 300 records later than A's log, so translation is not the identity
    _create(b.bootstrap_servers, "A.fo-orders", partitions=1)
    _produce(b.bootstrap_servers, "A.fo-orders", FILLER, start=10_000)
    with Consumer({"bootstrap.servers": a.bootstrap_servers, "group.id": "billing",
                   "enable.auto.commit": "false"}) as c:
        tp = TopicPartition("fo-orders", 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = 0
        while got < 1000:
            got += sum(len(rs) for rs in c.poll(timeout_ms=500, max_records=1000 - got).values())
        c.commit({tp: 1000})
    mirrors(_props(tmp_path, a.bootstrap_servers, b.bootstrap_servers,
                   **{"A->B.topics": "fo-orders", "sync.group.offsets.enabled": "true"}))
    remote = TopicPartition("A.fo-orders", 0)
    cli = [sys.executable, "-m", "rillet.cli.main", "group", "translate-offsets", "--from", "A",
           "--to", "B", "--group", "billing", "-b", b.bootstrap_servers]

    def translated():
        res = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        if res.returncode != 0 or "A.fo-orders" not in res.stdout:
            return None
        offset = int(res.stdout.strip().splitlines()[-1].split()[-1])
        # checkpoints improve as the mirror passes record 1000 (it never overshoots)
        assert offset <= FILLER + 1000, res.stdout
        return offset if offset > FILLER + 1000 - 100 else None

    offset = wait_until(translated, 60, "a checkpoint of group billing on B past record 900")
    # resumes at or just before record 1000's copy: reprocesses at most offset.lag.max (100)
    reprocessed = FILLER + 1000 - offset
    assert 0 <= reprocessed <= 100
    with Admin({"bootstrap.servers": b.bootstrap_servers}) as admin:
        committed = wait_until(lambda: admin.list_consumer_group_offsets("billing"), 30,
                               "sync.group.offsets to commit billing on B")
    assert remote in committed
    # the failed-over consumer reads exactly the rest of the topic, from its translated offset
    wait_until(lambda: _count(b.bootstrap_servers, "A.fo-orders") >= FILLER + 2000, 60,
               "all mirrored")
    wait_until(lambda: _group_offset(b.bootstrap_servers, "billing", remote) == offset, 30,
               "sync.group.offsets to reach the latest checkpoint")
    rest = _read_all(b.bootstrap_servers, "A.fo-orders")[offset:]
    assert [r.value for r in rest][reprocessed:] == [f"v{i}".encode() for i in range(1000, 2000)]


def _group_offset(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        return admin.list_consumer_group_offsets(group).get(tp)


def test_active_active_does_not_loop(pair, tmp_path, mirrors):
    a, b = pair
    _create(a.bootstrap_servers, "aa-a", partitions=1)
    _create(b.bootstrap_servers, "aa-b", partitions=1)
    _produce(a.bootstrap_servers, "aa-a", 100)
    _produce(b.bootstrap_servers, "aa-b", 100)
    mirrors(_props(tmp_path, a.bootstrap_servers, b.bootstrap_servers,
                   **{"A->B.topics": ".*aa-.*", "B->A.enabled": "true",
                      "B->A.topics": ".*aa-.*"}))
    wait_until(lambda: _count(b.bootstrap_servers, "A.aa-a") == 100, 60, "A->B")
    wait_until(lambda: _count(a.bootstrap_servers, "B.aa-b") == 100, 60, "B->A")
    # several refreshes (1 s) after both remote topics exist: still no topic crossed back
    first = _read_all(b.bootstrap_servers, "heartbeats")
    wait_until(lambda: len(_read_all(b.bootstrap_servers, "heartbeats")) >= len(first) + 3, 60,
               "three more heartbeats")
    with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
        assert not [t for t in admin.list_topics() if t.startswith("B.A.")]
    with Admin({"bootstrap.servers": b.bootstrap_servers}) as admin:
        assert not [t for t in admin.list_topics() if t.startswith("A.B.")]
    assert _count(a.bootstrap_servers, "aa-a") == 100


def test_target_down_at_start_then_started(cluster_factory, tmp_path, mirrors):
    a, b = cluster_factory(), cluster_factory(start=False)
    _create(a.bootstrap_servers, "orders", partitions=1)
    _produce(a.bootstrap_servers, "orders", 500)
    m = mirrors(_props(tmp_path, a.bootstrap_servers, b.bootstrap_servers))
    wait_until(lambda: "retrying" in m.log.read_text(errors="replace"), 60,
               "the mirror to report B unreachable")
    assert m.proc.poll() is None
    b.start(timeout_s=30)
    wait_until(lambda: _count(b.bootstrap_servers, "A.orders") >= 500, 90, "records after B up")
    assert [r.value for r in _read_all(b.bootstrap_servers, "A.orders")] == [
        f"v{i}".encode() for i in range(500)]


def test_new_topics_and_partition_increases_propagate(pair, tmp_path, mirrors):
    a, b = pair
    _create(a.bootstrap_servers, "np-orders", partitions=1)
    mirrors(_props(tmp_path, a.bootstrap_servers, b.bootstrap_servers, **{"A->B.topics": "np-.*"}))
    wait_until(lambda: _count(b.bootstrap_servers, "heartbeats") >= 1, 60, "a heartbeat on B")
    with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
        admin.create_partitions({"np-orders": 2})
    _create(a.bootstrap_servers, "np-orders-new", partitions=2)
    with Producer({"bootstrap.servers": a.bootstrap_servers, "acks": "all"}) as p:
        p.send("np-orders", b"late", partition=1)
        p.send("np-orders-new", b"fresh", partition=1)
        p.flush()

    def partitions(topic: str) -> int:
        with Admin({"bootstrap.servers": b.bootstrap_servers}) as admin:
            if topic not in admin.list_topics():
                return 0
            return len(admin.describe_topics([topic])[topic].partitions)

    wait_until(lambda: partitions("A.np-orders") == 2 and partitions("A.np-orders-new") == 2, 60,
               "the increase and the new topic on B")
    wait_until(lambda: _count(b.bootstrap_servers, "A.np-orders") == 1
               and _count(b.bootstrap_servers, "A.np-orders-new") == 1, 60, "the records on B")
    got = _read_all(b.bootstrap_servers, "A.np-orders-new")
    assert [(r.partition, r.value) for r in got] == [(1, b"fresh")]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_100k_records_three_kills_no_loss(cluster_factory, tmp_path, mirrors):
    n = 100_000
    a, b = cluster_factory(), cluster_factory()
    _create(a.bootstrap_servers, "big-orders")
    _produce(a.bootstrap_servers, "big-orders", n)
    m = mirrors(_props(tmp_path, a.bootstrap_servers, b.bootstrap_servers,
                      **{"A->B.topics": "big-orders"}))
    for k in range(1, 4):
        wait_until(lambda k=k: _count(b.bootstrap_servers, "A.big-orders") >= k * n // 4, 300,
                   f"{k}/4 of the records on B")
        m.kill9()
        m = mirrors(m.props)
    # a count of n is not every record: at-least-once, B may hold duplicates of some while
    # the mirror is still copying others (a loaded run read B as the last ones arrived)
    wait_until(lambda: _count(b.bootstrap_servers, "A.big-orders") >= n, 300, "n records on B")
    expected = {f"v{i}".encode() for i in range(n)}
    copied: list = []

    def all_copied() -> bool:
        copied[:] = _read_all(b.bootstrap_servers, "A.big-orders", timeout_s=120)
        return {r.value for r in copied} >= expected

    wait_until(all_copied, 300, "every record on B", interval_s=1.0)
    assert {r.value for r in copied} == expected
    # at-least-once: at most one commit's records per kill
    assert len(copied) - n < 3 * (COMMIT_RECORDS + POLL_RECORDS)


# -- connector mode (docs/mirror.md, "Connector mode"): the flow as MirrorMaker 2's three
# connectors in a real `rillet connect standalone` worker process on B (with
# exactly.once.source.support=enabled), started with a MirrorHeartbeatConnector file; the
# MirrorSourceConnector and MirrorCheckpointConnector are created through the REST API with
# MM2's connector keys, paused, resumed and restarted through it.

CTOPIC = "conn-orders"
REMOTE = f"A.{CTOPIC}"


def _flow(a, b) -> dict[str, str]:
    return {"source.cluster.alias": "A", "target.cluster.alias": "B",
            "source.cluster.bootstrap.servers": a.bootstrap_servers,
            "target.cluster.bootstrap.servers": b.bootstrap_servers}


@pytest.fixture
def worker(pair, tmp_path):
    a, b = pair
    d = tmp_path
    cfg = d / "worker.properties"
    cfg.write_text(f"bootstrap.servers={b.bootstrap_servers}\nrest.port=0\n"
                   "exactly.once.source.support=enabled\nworker.id=mm2\n")
    hb = d / "heartbeat.properties"
    hb.write_text("".join(f"{k}={v}\n" for k, v in {
        "name": "mm2-heartbeat", "connector.class": "MirrorHeartbeatConnector",
        "emit.heartbeats.interval.seconds": "1", **_flow(a, b)}.items()))
    w = WorkerProcess(d, cfg, [hb])
    w.start(timeout=60)
    try:
        yield w
    finally:
        w.stop()


def _ends(b) -> dict[int, int]:
    with Admin({"bootstrap.servers": b.bootstrap_servers}) as admin:
        if REMOTE not in admin.list_topics():
            return {}
        ends = admin.list_offsets([TopicPartition(REMOTE, p) for p in range(PARTITIONS)])
    return {tp.partition: o for tp, o in ends.items()}


def _copies(b) -> list:
    return _read_all(b.bootstrap_servers, REMOTE, timeout_s=30, isolation="read_committed")


def _task_state(w, name: str) -> str | None:
    code, body = w.rest("GET", f"/connectors/{name}/status")
    return body["tasks"][0]["state"] if code == 200 and body.get("tasks") else None


@pytest.mark.timeout(180)
def test_source_and_checkpoint_connectors_through_the_rest_api(pair, worker):
    a, b = pair
    _create(a.bootstrap_servers, CTOPIC)
    _produce(a.bootstrap_servers, CTOPIC, 300)
    code, body = worker.rest("POST", "/connectors", {"name": "mm2-source", "config": {
        "connector.class": "org.apache.kafka.connect.mirror.MirrorSourceConnector",
        "topics": "conn-orders", "refresh.topics.interval.seconds": "1", **_flow(a, b)}})
    assert code == 201, body
    wait_until(lambda: len(_copies(b)) == 300, 60, "300 copies on B")

    # pause: the task stops; records produced meanwhile do not move (B's log end is steady)
    assert worker.rest("PUT", "/connectors/mm2-source/pause")[0] == 202
    wait_until(lambda: _task_state(worker, "mm2-source") == "PAUSED", 30, "task PAUSED")
    before = _ends(b)
    _produce(a.bootstrap_servers, CTOPIC, 200, start=300)
    for _ in range(5):  # a negative check: the window is the assertion, not a synchronisation
        time.sleep(0.3)
        assert _ends(b) == before, "records were copied while the connector was paused"

    # resume, then a restart of connector and task: every record once, in order, on B
    assert worker.rest("PUT", "/connectors/mm2-source/resume")[0] == 202
    wait_until(lambda: len(_copies(b)) == 500, 60, "500 copies after resume")
    code, _ = worker.rest("POST", "/connectors/mm2-source/restart?includeTasks=true")
    assert code in (200, 202, 204)
    wait_until(lambda: _task_state(worker, "mm2-source") == "RUNNING", 30, "restarted task")
    _produce(a.bootstrap_servers, CTOPIC, 100, start=500)
    wait_until(lambda: len(_copies(b)) == 600, 60, "600 copies after the restart")
    source = _read_all(a.bootstrap_servers, CTOPIC)
    copies = _copies(b)
    by_part: dict[int, list] = defaultdict(list)
    for r in copies:
        by_part[r.partition].append((r.key, r.value, r.headers, r.timestamp))
    for p in range(PARTITIONS):
        want = [(r.key, r.value, r.headers, r.timestamp) for r in source if r.partition == p]
        assert by_part[p] == want, f"partition {p}: lost, duplicated or reordered records"

    # the stored source offsets are MM2's (last copied offset per source partition), and the
    # flow's group on A follows them
    ends = {p: sum(1 for r in source if r.partition == p) for p in range(PARTITIONS)}
    code, body = worker.rest("GET", "/connectors/mm2-source/offsets")
    assert code == 200, body
    assert sorted((o["partition"]["partition"], o["offset"]["offset"]) for o in body["offsets"]
                  if o["partition"].get("cluster") == "A") == [(p, ends[p] - 1) for p in ends]
    with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
        wait_until(lambda: admin.list_consumer_group_offsets("mm2-A->B", [
            TopicPartition(CTOPIC, p) for p in ends]) == {
            TopicPartition(CTOPIC, p): n for p, n in ends.items()}, 30, "group mm2-A->B on A")

    # a group committed on A is translated by the checkpoint connector (through the offset
    # syncs the source connector wrote) and, with sync.group.offsets.enabled, committed on B
    committed = {TopicPartition(CTOPIC, p): 120 for p in range(PARTITIONS)}
    with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
        admin.alter_consumer_group_offsets("billing-conn", committed)
    code, body = worker.rest("POST", "/connectors", {"name": "mm2-checkpoint", "config": {
        "connector.class": "MirrorCheckpointConnector", "groups": "billing-conn",
        "topics": "conn-orders", "emit.checkpoints.interval.seconds": "1",
        "sync.group.offsets.enabled": "true", **_flow(a, b)}})
    assert code == 201, body
    translated = wait_until(lambda: translate_offsets(b.bootstrap_servers, "A", "billing-conn"),
                            60, "a checkpoint of group billing-conn on B")
    assert set(translated) == {TopicPartition(REMOTE, p) for p in range(PARTITIONS)}
    for p in range(PARTITIONS):
        upstream_rest = [r.value for r in source if r.partition == p and r.offset >= 120]
        downstream_rest = [r.value for r in copies if r.partition == p
                           and r.offset >= translated[TopicPartition(REMOTE, p)]]
        # resuming on B from the translated offset skips nothing and rereads at most
        # offset.lag.max (100) records
        assert downstream_rest[len(downstream_rest) - len(upstream_rest):] == upstream_rest
        assert 0 <= len(downstream_rest) - len(upstream_rest) <= 100
    with Admin({"bootstrap.servers": b.bootstrap_servers}) as admin:
        wait_until(lambda: admin.list_consumer_group_offsets("billing-conn") == translated, 30,
                   "the translated offsets committed to group billing-conn on B")

    # the heartbeat connector (started from a file with the worker) beats on B
    age = heartbeat_age_ms(b.bootstrap_servers, "A")
    assert age is not None and 0 <= age < 30000

    # delete: the connector is gone from the worker
    assert worker.rest("DELETE", "/connectors/mm2-checkpoint")[0] == 204
    assert worker.rest("GET", "/connectors/mm2-checkpoint/status")[0] == 404
