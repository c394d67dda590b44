"""The ShareConsumer, Admin and `rillet share-group` against real broker processes:
accept / release (at once, delayed, group back-off) / reject (dead letter) / renew, two
members sharing a partition, describe / reset-offsets / delete."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rillet import Admin, Consumer, NewTopic, Producer, ShareConsumer, TopicPartition
from rillet.errors import IllegalStateError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def _setup(servers: str, topic: str, group: str, partitions: int = 1, n: int = 0,
           **configs) -> None:
    with Admin({"bootstrap.servers": servers}) as admin:
        admin.create_topics([NewTopic(topic, partitions, 1)])
        admin.alter_group_configs(group, set={"share.auto.offset.reset": "earliest",
                                              **{k.replace("_", "."): v
                                                 for k, v in configs.items()}})
    if n:
        with Producer({"bootstrap.servers": servers}) as producer:
            for i in range(n):
                producer.send(topic, value=f"v{i}".encode(), key=f"k{i}".encode(),
                              headers=[("h", b"1")])
            producer.flush(10)


def _poll(consumer: ShareConsumer, n: int, timeout_s: float = 20.0) -> list:
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out.extend(consumer.poll(timeout_ms=200))
    return out


def _read(servers: str, topic: str, n: int, timeout_s: float = 20.0) -> list:
    c = Consumer({"bootstrap.servers": servers, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))])
        out, deadline = [], time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                out.extend(recs)
        return out
    finally:
        c.close()


def test_acknowledge_types_on_a_real_broker(cluster) -> None:
    servers = cluster.bootstrap_servers
    _setup(servers, "jobs", "workers", n=5, retry_backoff_ms=300, retry_backoff_multiplier=2,
           retry_backoff_max_ms=5000)
    c = ShareConsumer(bootstrap_servers=servers, group_id="workers")
    try:
        c.subscribe(["jobs"])
        first = {r.value: r for r in _poll(c, 5)}
        assert sorted(first) == [f"v{i}".encode() for i in range(5)]
        assert all(r.delivery_count == 1 for r in first.values())
        assert dict(first[b"v0"].headers) == {"h": b"1"} and first[b"v0"].key == b"k0"
        c.acknowledge(first[b"v0"], "accept")
        c.acknowledge(first[b"v1"], "release", delay_ms=0)
        c.acknowledge(first[b"v2"], "release", delay_ms=1500)
        c.acknowledge(first[b"v3"], "release")  # the group's back-off: 300 ms (+0-20%)
        c.acknowledge(first[b"v4"], "reject", reason="poison pill")
        released_at = time.monotonic()
        assert c.commit_sync() == {TopicPartition("jobs", 0): None}
        seen: dict[bytes, float] = {}
        deadline = time.monotonic() + 15
        while len(seen) < 3 and time.monotonic() < deadline:
            for r in c.poll(timeout_ms=100):
                seen.setdefault(r.value, time.monotonic() - released_at)
                assert r.delivery_count == 2
                c.acknowledge(r, "accept")
        assert set(seen) == {b"v1", b"v2", b"v3"}  # v0 accepted and v4 rejected: never again
        assert seen[b"v2"] >= 1.5 and seen[b"v3"] >= 0.3  # never early
        assert seen[b"v1"] < seen[b"v3"] < seen[b"v2"]
        assert c.poll(timeout_ms=500) == []
    finally:
        c.close()
    dlq = _read(servers, "jobs.dlq", 1)
    assert [r.value for r in dlq] == [b"v4"]
    h = dict(dlq[0].headers)
    assert h["h"] == b"1" and dlq[0].key == b"k4"
    assert h["rillet.dlq.reason"] == b"poison pill" and h["rillet.dlq.group"] == b"workers"
    assert h["rillet.dlq.topic"] == b"jobs" and h["rillet.dlq.offset"] == b"4"


def test_a_share_group_reads_a_topic_created_again_under_the_same_name(cluster) -> None:
    """The share-group state of a deleted topic is deleted with it: a topic created again
    under the name was read from the old start offset (past its records: poll() raised
    OffsetOutOfRangeError for good; with more records than before, it skipped them)."""
    servers = cluster.bootstrap_servers
    _setup(servers, "again", "readers", n=5)
    with ShareConsumer(bootstrap_servers=servers, group_id="readers") as c:
        c.subscribe(["again"])
        assert sorted(r.value for r in _poll(c, 5)) == [f"v{i}".encode() for i in range(5)]
        c.commit_sync()
    with Admin({"bootstrap.servers": servers}) as admin:
        admin.delete_topics(["again"])
        deadline = time.monotonic() + 30
        while True:
            try:
                admin.create_topics([NewTopic("again", 1, 1)])
                break
            except Exception as e:  # noqa: BLE001 - the deletion not applied yet
                assert "already exists" in str(e) and time.monotonic() < deadline, e
                time.sleep(0.05)
    with Producer({"bootstrap.servers": servers}) as producer:
        for i in range(3):
            producer.send("again", value=f"new{i}".encode())
        producer.flush(10)
    with ShareConsumer(bootstrap_servers=servers, group_id="readers") as c:
        c.subscribe(["again"])
        got = sorted(r.value for r in _poll(c, 3))
    assert got == [b"new0", b"new1", b"new2"]


def test_implicit_acceptance_and_two_members_share_a_partition(cluster) -> None:
    servers = cluster.bootstrap_servers
    _setup(servers, "tasks", "pool", partitions=1, n=400)
    # record_limit: the 400 records are one stored batch, which batch_optimized (the
    # default) would hand to one member whole
    a = ShareConsumer(bootstrap_servers=servers, group_id="pool", max_poll_records=20,
                      share_acquire_mode="record_limit")
    b = ShareConsumer(bootstrap_servers=servers, group_id="pool", max_poll_records=20,
                      share_acquire_mode="record_limit")
    got: dict[str, list] = {"a": [], "b": []}
    try:
        a.subscribe(["tasks"])
        b.subscribe(["tasks"])
        deadline = time.monotonic() + 30
        while len(got["a"]) + len(got["b"]) < 400 and time.monotonic() < deadline:
            for name, c in (("a", a), ("b", b)):
                got[name].extend(r.offset for r in c.poll(timeout_ms=50))
        assert a.assignment() == b.assignment() == {TopicPartition("tasks", 0)}
        # implicit mode: each poll accepted the previous one; nothing comes twice
        assert sorted(got["a"] + got["b"]) == list(range(400))
        assert got["a"] and got["b"]  # both members got a share of the one partition
        a.commit_sync()
        b.commit_sync()
        with Admin({"bootstrap.servers": servers}) as admin:
            d = admin.describe_share_group("pool")
        assert d.state in ("Stable", "Empty") and len(d.members) == 2
        s = d.partitions[TopicPartition("tasks", 0)]
        assert s.start_offset == 400 and s.lag == 0 and s.acquired == 0
    finally:
        a.close()
        b.close()


def test_a_batch_acquired_whole_is_handed_out_over_polls_and_released_on_close(cluster):
    """batch_optimized (the default): the first fetch acquires the stored batch of 100
    whole; polls hand out at most max.poll.records; close accepts what was handed out and
    releases the rest at once, so another member gets it (a second delivery)."""
    servers = cluster.bootstrap_servers
    _setup(servers, "whole", "whole-g")
    with Producer({"bootstrap.servers": servers, "linger.ms": 60_000}) as producer:
        for i in range(100):
            producer.send("whole", value=b"%d" % i)
        producer.flush(10)  # one batch: linger never fires first
    a = ShareConsumer(bootstrap_servers=servers, group_id="whole-g", max_poll_records=30)
    b = ShareConsumer(bootstrap_servers=servers, group_id="whole-g", max_poll_records=30)
    try:
        a.subscribe(["whole"])
        first = _poll(a, 1)
        second = a.poll(timeout_ms=0)  # from the buffer: no fetch needed
        assert len(first) == len(second) == 30
        a.close()  # accepts these 60, releases the 40 fetched but never handed out
        b.subscribe(["whole"])
        rest = []
        deadline = time.monotonic() + 20
        while len(rest) < 40 and time.monotonic() < deadline:
            got = b.poll(timeout_ms=200)
            assert len(got) <= 30
            rest.extend(got)
        assert sorted(r.offset for r in first + second + rest) == list(range(100))
        assert {r.delivery_count for r in rest} == {2}
    finally:
        a.close()
        b.close()


def test_explicit_mode_refuses_a_poll_with_records_owed(cluster) -> None:
    servers = cluster.bootstrap_servers
    _setup(servers, "strict", "strict-g", n=3)
    c = ShareConsumer(bootstrap_servers=servers, group_id="strict-g",
                      share_acknowledgement_mode="explicit")
    try:
        c.subscribe(["strict"])
        records = _poll(c, 3)
        c.acknowledge(records[0], "accept")
        with pytest.raises(IllegalStateError, match="not acknowledged"):
            c.poll(timeout_ms=0)
        for r in records[1:]:
            c.acknowledge(r, "renew")  # still working: the lock restarts
        c.commit_sync()
        assert c.poll(timeout_ms=300) == []  # renewed records do not block, nor come again
        for r in records[1:]:
            c.acknowledge(r, "accept")
        assert c.commit_sync() == {TopicPartition("strict", 0): None}
    finally:
        c.close()


def test_share_group_cli_describe_reset_delete(cluster) -> None:
    servers = cluster.bootstrap_servers
    _setup(servers, "cli-q", "cli-g", n=10)
    env = {**os.environ, "RILLET_BROKERS": servers}

    def rillet(*args, check=True):
        out = subprocess.run([*RILLET, "share-group", *args], env=env, capture_output=True,
                             text=True, timeout=60)
        if check:
            assert out.returncode == 0, out.stderr
        return out

    c = ShareConsumer(bootstrap_servers=servers, group_id="cli-g",
                      share_acknowledgement_mode="explicit")
    try:
        c.subscribe(["cli-q"])
        records = sorted(_poll(c, 10), key=lambda r: r.offset)
        for r in records[:4]:
            c.acknowledge(r, "accept")
        for r in records[4:6]:
            c.acknowledge(r, "release", delay_ms=60_000)
        c.commit_sync()
        assert "cli-g" in rillet("list").stdout
        out = rillet("describe", "cli-g").stdout
        assert "1 member(s)" in out and "cli-q" in out
        row = next(x.split() for x in out.splitlines() if x.split()[:2] == ["cli-g", "cli-q"])
        # GROUP TOPIC PARTITION START END HW LAG AVAILABLE DELAYED ACQUIRED ARCHIVED DLQ HIST
        assert row[3] == "4" and row[6] == "6" and row[8] == "2" and row[9] == "4"
        refused = rillet("reset-offsets", "cli-g", "--topic", "cli-q", "--to-latest",
                         "--execute", check=False)
        assert refused.returncode == 1 and "active member" in refused.stderr
    finally:
        c.close()
    out = rillet("reset-offsets", "cli-g", "--topic", "cli-q", "--to-latest", "--execute")
    assert "10" in out.stdout
    with Admin({"bootstrap.servers": servers}) as admin:
        s = admin.describe_share_group("cli-g", ["cli-q"]).partitions[TopicPartition("cli-q", 0)]
        assert s.start_offset == 10 and s.lag == 0
    configs = rillet("configs", "cli-g", "--set", "share.delivery.count.limit=3").stdout
    assert "share.delivery.count.limit=3" in configs
    shown = rillet("configs", "cli-g").stdout.splitlines()
    assert ["share.delivery.count.limit", "3", "group"] in [x.split() for x in shown]
    bad = rillet("configs", "cli-g", "--set", "share.delivery.count.limt=3", check=False)
    assert bad.returncode == 1 and "did you mean" in bad.stderr
    assert "Deleted share group 'cli-g'" in rillet("delete", "cli-g").stdout
    assert "cli-g" not in rillet("list").stdout
    for args in (("describe", "cli-g"), ("delete", "cli-g")):  # unknown now: clear errors
        gone = rillet(*args, check=False)
        assert gone.returncode == 1 and ("does not exist" in gone.stderr
                                         or "GROUP_ID_NOT_FOUND" in gone.stderr), gone.stderr
