"""Replication on real broker processes: followers hold the data, ISR, acks=all with
min.insync.replicas, failover keeps every acknowledged record, a returning broker rejoins the
ISR, preferred-leader election. Short timeouts via broker configs; every wait polls."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cluster_helpers import FAST, partition_meta, produce, produce_once_led, read_all, wait_until
from rillet.transport import protocol as P

from rillet import Admin, NewTopic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


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
        if i == 0:  # the leader named by the metadata may not have applied it yet
            r = produce_once_led(c, leader, "r", 0, values)
        else:
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
    assert produce_once_led(c, old, "mv", 0, values).error_code == 0
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
