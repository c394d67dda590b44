"""A three-broker cluster: clients bootstrapped from one broker reach partitions led by the
others; a restart of the whole cluster from its data dir keeps every topic, config and
record."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from tests.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def consume(bootstrap: str, topic: str, partitions: int, expected: int) -> dict[int, list]:
    out: dict[int, list] = defaultdict(list)
    config = {"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest"}
    with Consumer(config) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + 30
        n = 0
        while n < expected:
            assert time.monotonic() < deadline, f"only {n} of {expected} records arrived"
            for tp, records in consumer.poll(500, max_records=10_000).items():
                out[tp.partition].extend((r.offset, r.key, r.value) for r in records)
                n += len(records)
    return dict(out)


def test_one_bootstrap_broker_reaches_every_leader_and_a_full_restart_keeps_everything(
    cluster_factory, cluster3_configs
):
    # tiny snapshot threshold: the restart also replays metadata snapshots
    c = cluster_factory(3, {**cluster3_configs, "metadata.snapshot.threshold.entries": "3"})
    b1, b2, b3 = (c.address(b) for b in c.broker_ids)
    with Admin({"bootstrap.servers": b1}) as admin:
        admin.create_topics(
            [NewTopic("kept", num_partitions=3, replication_factor=1,
                      configs={"retention.ms": "123456789"})]
        )
        leaders = {p.leader for p in admin.describe_topics(["kept"])["kept"].partitions}
    assert leaders == {1, 2, 3}  # one partition led by each broker
    n = 300
    with Producer({"bootstrap.servers": b1, "acks": -1}) as producer:
        for i in range(n):
            producer.send("kept", b"v%d" % i, key=b"k%d" % (i % 17))
        producer.flush(30)
    before = consume(b2, "kept", 3, n)
    assert sum(len(v) for v in before.values()) == n and len(before) == 3

    c.stop()
    c.start(timeout_s=30)

    with Admin({"bootstrap.servers": b3}) as admin:
        assert "kept" in admin.list_topics()
        assert admin.describe_configs(["kept"])["kept"]["retention.ms"].value == "123456789"
        # ready brokers are registered and unfenced; a partition's leader may be elected a
        # moment later
        parts = wait_until(
            lambda: (ps := admin.describe_topics(["kept"])["kept"].partitions)
            and all(p.leader >= 0 for p in ps) and ps,
            15, "every partition of 'kept' led after the restart")
    assert {p.leader for p in parts} == {1, 2, 3}
    assert consume(b3, "kept", 3, n) == before
    snapshots = [c.broker_dir(b) / "__cluster_metadata" / "snapshot.cbor" for b in c.broker_ids]
    assert any(path.exists() for path in snapshots)
