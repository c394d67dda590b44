"""Replication on real broker processes: followers hold the data, ISR, acks=all with
min.insync.replicas, failover keeps every acknowledged record, a returning broker rejoins the
ISR, preferred-leader election. Short timeouts via broker configs; every wait polls."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from rillet.logstore.batch import BatchBuilder, records
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

from rillet import Admin, NewTopic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FAST = {
    "controller.quorum.election.timeout.ms": "300",
    "broker.heartbeat.interval.ms": "200",
    "broker.session.timeout.ms": "1500",
    "replica.lag.time.max.ms": "1500",
    "replica.fetch.wait.max.ms": "200",
}


def wait_until(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.05)


def call(cluster, broker_id: int, request, timeout_ms: int = 3000):
    with ClientEndpoint() as endpoint:
        try:
            return endpoint.request(cluster.address(broker_id), request, timeout_ms).result(
                timeout_ms / 1000 + 2
            )
        except Exception:  # noqa: BLE001 - down or busy: the caller polls again
            return None


def partition_meta(cluster, topic: str, partition: int, via: list[int] | None = None):
    for b in via or cluster.broker_ids:
        if cluster.pid(b) is None:
            continue
        m = call(cluster, b, P.MetadataRequest(topics=(topic,)))
        if m is not None and m.topics and m.topics[0].partitions:
            return {p.partition: p for p in m.topics[0].partitions}[partition]
    return None


def batch(values) -> bytes:
    b = BatchBuilder()
    ts = int(time.time() * 1000)
    for v in values:
        b.append(ts, None, v)
    return b.build()


def produce(cluster, broker_id: int, topic: str, partition: int, values, acks: int = -1):
    req = P.ProduceRequest(
        acks=acks,
        timeout_ms=5000,
        topics=(
            P.ProduceTopic(
                name=topic,
                partitions=(P.ProducePartition(partition=partition, records=batch(values)),),
            ),
        ),
    )
    r = call(cluster, broker_id, req, 8000)
    return None if r is None else r.topics[0].partitions[0]


def fetch_raw(cluster, broker_id: int, topic: str, partition: int, offset: int) -> bytes:
    """The raw batches one Fetch (no wait) returns from ``offset``; b"" at the end."""
    req = P.FetchRequest(
        max_wait_ms=0,
        topics=(
            P.FetchTopic(
                name=topic,
                partitions=(P.FetchPartition(partition=partition, fetch_offset=offset),),
            ),
        ),
    )
    r = call(cluster, broker_id, req)
    assert r is not None
    part = r.topics[0].partitions[0]
    assert part.error_code == 0, part
    return part.records


def read_all(cluster, broker_id: int, topic: str, partition: int) -> list[bytes]:
    out, offset = [], 0
    while True:
        data = fetch_raw(cluster, broker_id, topic, partition, offset)
        if not data:
            return out
        got = [r for r in records(data) if r.offset >= offset]
        out.extend(r.value for r in got)
        offset = got[-1].offset + 1


@pytest.fixture
def c3(cluster_factory):
    return cluster_factory(3, FAST)


def test_followers_replicate_and_a_new_leader_has_every_acknowledged_record(c3):
    c = c3
    with Admin({"bootstrap.servers": c.bootstrap_servers, "request.timeout.ms": 15000}) as a:
        a.create_topics([NewTopic("r", 1, 3, configs={"min.insync.replicas": "2"})])
    meta = wait_until(lambda: partition_meta(c, "r", 0), 10, "metadata")
    leader = meta.leader
    assert sorted(meta.isr) == [1, 2, 3]
    acked = []
    for i in range(20):
        values = [f"v{i}-{j}".encode() for j in range(5)]
        r = produce(c, leader, "r", 0, values)
        assert r is not None and r.error_code == 0, r
        acked += values
    assert read_all(c, leader, "r", 0) == acked
    c.kill(leader)
    others = [b for b in c.broker_ids if b != leader]

    def new_leader():
        m = partition_meta(c, "r", 0, others)
        return m if m is not None and m.leader in others else None

    m = wait_until(new_leader, 15, "a new leader")
    assert m.leader_epoch > meta.leader_epoch

    def has_all():
        try:
            return read_all(c, m.leader, "r", 0) == acked
        except AssertionError:
            return False

    wait_until(has_all, 10, "the new leader to serve every acknowledged record")
    # writes continue with 2 in-sync replicas (min.insync.replicas=2)
    r = wait_until(lambda: produce(c, m.leader, "r", 0, [b"after"]), 10, "a produce answer")
    assert r.error_code == 0, r
    # the old leader returns, truncates/catches up and rejoins the ISR
    c.start_broker(leader)
    c.wait_ready(30, broker_ids=[leader])

    def rejoined():
        p = partition_meta(c, "r", 0, others)
        return p if p is not None and leader in p.isr else None

    wait_until(rejoined, 20, "the returning broker to rejoin the ISR")
    # preferred leader election on demand moves leadership back to replicas[0]
    with Admin({"bootstrap.servers": c.bootstrap_servers, "request.timeout.ms": 15000}) as a:
        a.elect_leaders([("r", 0)])
    p = wait_until(
        lambda: (lambda q: q if q and q.leader == q.replicas[0] else None)(
            partition_meta(c, "r", 0)
        ),
        10,
        "the preferred leader",
    )

    def served():
        try:
            return read_all(c, p.leader, "r", 0) == acked + [b"after"]
        except AssertionError:  # the leader may apply the election a moment later
            return False

    wait_until(served, 10, "the preferred leader to serve every record")


def test_acks_all_refused_without_enough_in_sync_replicas_and_resumes(cluster_factory):
    # one controller voter (broker 1), so stopping both followers keeps a controller
    c = cluster_factory(3, FAST, start=False)
    c.voters = [1]
    c.start(timeout_s=30)
    with Admin({"bootstrap.servers": c.bootstrap_servers, "request.timeout.ms": 15000}) as a:
        a.create_topics([NewTopic("m", 3, 3, configs={"min.insync.replicas": "2"})])
    parts = [wait_until(lambda i=i: partition_meta(c, "m", i), 10, "metadata") for i in range(3)]
    meta = next((p for p in parts if p.leader == 1), None)
    assert meta is not None, "placement spreads leaders over the brokers"
    leader, n = 1, meta.partition
    assert produce(c, leader, "m", n, [b"one"]).error_code == 0
    followers = [b for b in c.broker_ids if b != leader]
    for b in followers:
        c.stop_broker(b)

    def shrunk():
        p = partition_meta(c, "m", n, [leader])
        return p if p is not None and list(p.isr) == [leader] else None

    wait_until(shrunk, 15, "the ISR to shrink to the leader")
    r = produce(c, leader, "m", n, [b"refused"])
    assert r.error_code == P.ErrorCode.NOT_ENOUGH_REPLICAS
    assert read_all(c, leader, "m", n) == [b"one"]  # nothing acknowledged, nothing visible
    for b in followers:
        c.start_broker(b)
    c.wait_ready(30, broker_ids=followers)

    def accepted():
        r = produce(c, leader, "m", n, [b"two"])
        return r if r is not None and r.error_code == 0 else None

    wait_until(accepted, 20, "writes to resume")
    assert read_all(c, leader, "m", n) == [b"one", b"two"]


def rillet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rillet.cli.main", *args], capture_output=True, timeout=60
    )


@pytest.mark.timeout(240)
def test_reassignment_copies_the_data_before_removing_the_old_replica_cli(c3):
    c = c3
    with Admin({"bootstrap.servers": c.bootstrap_servers, "request.timeout.ms": 15000}) as a:
        a.create_topics([NewTopic("mv", 1, 1)])
    old = wait_until(lambda: partition_meta(c, "mv", 0), 10, "metadata").leader
    values = [f"m{i}".encode() for i in range(50)]
    assert produce(c, old, "mv", 0, values).error_code == 0
    target = [b for b in c.broker_ids if b != old]
    proc = rillet(  # the top-level name of `rillet topic reassign` (kafka-reassign-partitions)
        "reassign-partitions",
        "mv",
        "0",
        "--replicas",
        ",".join(map(str, target)),
        "--bootstrap-server",
        c.bootstrap_servers,
    )
    assert proc.returncode == 0, proc.stderr.decode()

    def moved():
        m = partition_meta(c, "mv", 0)
        return m if m is not None and list(m.replicas) == target and m.leader in target else None

    m = wait_until(moved, 60, "the reassignment to complete")

    def served():  # the new leader may apply the change a moment after the broker we asked
        try:
            return read_all(c, m.leader, "mv", 0) == values
        except AssertionError:
            return False

    wait_until(served, 30, "the new leader to serve every record")
    wait_until(lambda: not (c.broker_dir(old) / "mv-0").exists(), 30, "the old replica removed")
    # elect-leaders through the CLI: nothing to do (the first target replica leads)
    proc = rillet("topic", "elect-leaders", "mv", "--bootstrap-server", c.bootstrap_servers)
    assert proc.returncode == 0, proc.stderr.decode()
