"""The Python client against real broker processes over real sockets."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet._partitioner import partition_for_key
from rillet.errors import (
    ConfigError,
    NoBrokersAvailableError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
# Tests that neither stop nor restart the broker share one (``shared_cluster``), each with
# topics of its own; the others get a broker of their own (``cluster``).


def _consume_all(bootstrap: str, topic: str, partitions: int, expected: int,
                 timeout_s: float = 30) -> dict[int, list]:
    out: dict[int, list] = defaultdict(list)
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest"}) as c:
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        n = 0
        while n < expected:
            assert time.monotonic() < deadline, f"only {n} of {expected} records arrived"
            for tp, records in c.poll(500, max_records=10_000).items():
                out[tp.partition].extend(records)
                n += len(records)
        assert c.poll(200) == {}  # nothing beyond what was produced
    return out


def test_100k_records_round_trip_with_order_offsets_and_key_placement(shared_cluster) -> None:
    bootstrap = shared_cluster.bootstrap_servers
    with Admin(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic("events", num_partitions=3)])
    n = 100_000
    with Producer({"bootstrap.servers": bootstrap, "acks": 1}) as producer:
        futures = [producer.send("events", b"value-%d" % i, key=b"key-%d" % (i % 1000))
                   for i in range(n)]
        producer.flush(60)
    metas = [f.get(0) for f in futures]
    by_partition = _consume_all(bootstrap, "events", 3, n)
    assert sum(len(v) for v in by_partition.values()) == n
    for i, md in enumerate(metas):
        key = b"key-%d" % (i % 1000)
        assert md.partition == partition_for_key(key, 3)  # the Java client's partition
        rec = by_partition[md.partition][md.offset]
        assert (rec.offset, rec.key, rec.value) == (md.offset, key, b"value-%d" % i)
    for records in by_partition.values():
        assert [r.offset for r in records] == list(range(len(records)))
        # within a partition, records are in send order
        sent = [int(r.value.split(b"-")[1]) for r in records]
        assert sent == sorted(sent)


@pytest.mark.parametrize("crash", [False, True], ids=["graceful-restart", "kill-9"])
def test_acknowledged_records_survive_restart(cluster, crash: bool) -> None:
    bootstrap = cluster.bootstrap_servers
    with Admin(bootstrap_servers=bootstrap) as admin:
        # group-commit: a produce is acknowledged after its fsync
        admin.create_topics([NewTopic("durable", 2, configs={"flush.mode": "group-commit"})])
    with Producer(bootstrap_servers=bootstrap, linger_ms=2) as producer:
        futures = [producer.send("durable", b"%d" % i, key=b"%d" % (i % 7)) for i in range(5000)]
        producer.flush(30)
        acked = [f.get(0) for f in futures]
    if crash:
        cluster.kill(1)
    else:
        cluster.stop_broker(1)
    cluster.start()
    by_partition = _consume_all(cluster.bootstrap_servers, "durable", 2, len(acked))
    for i, md in enumerate(acked):
        assert by_partition[md.partition][md.offset].value == b"%d" % i
    # the producer carries on where the log stopped
    with Producer(bootstrap_servers=cluster.bootstrap_servers) as producer:
        md = producer.send("durable", b"next", partition=0).get(10)
    assert md.offset == len(by_partition[0])


def test_producer_rides_out_a_broker_restart(cluster) -> None:
    bootstrap = cluster.bootstrap_servers
    with Admin(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic("steady", 1)])
    with Producer(bootstrap_servers=bootstrap, retry_backoff_ms=50,
                  request_timeout_ms=2000) as producer:
        first = producer.send("steady", b"before").get(10)
        cluster.stop_broker(1)
        pending = producer.send("steady", b"during")  # queued while the broker is down
        cluster.start()
        during = pending.get(30)
    # At least once: a request sent while the broker was down may also be delivered when the
    # connection comes back, besides its retry (no idempotent producer yet).
    assert during.offset > first.offset
    records = _consume_all(cluster.bootstrap_servers, "steady", 1, during.offset + 1)[0]
    assert records[first.offset].value == b"before" and records[during.offset].value == b"during"
    assert {r.value for r in records} == {b"before", b"during"}


def test_retention_is_observable_through_the_client(shared_cluster) -> None:
    bootstrap = shared_cluster.bootstrap_servers
    tp = TopicPartition("short", 0)
    with Admin(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic("short", 1, configs={"segment.bytes": "1024",
                                                          "retention.ms": "1000"})])
    old = int(time.time() * 1000) - 60_000
    with Producer(bootstrap_servers=bootstrap, linger_ms=0) as producer:
        for i in range(10):
            producer.send("short", bytes(300) + bytes([i]), timestamp_ms=old).get(10)
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                  consumer_timeout_ms=2000) as consumer:
        deadline = time.monotonic() + 20
        while consumer.beginning_offsets([tp])[tp] == 0:
            assert time.monotonic() < deadline, "retention never deleted a segment"
            time.sleep(0.1)
        start = consumer.beginning_offsets([tp])[tp]
        consumer.assign([tp])
        consumer.seek(tp, 0)  # out of range now: auto.offset.reset=earliest moves to the start
        records = list(consumer)
        # from the log start as it was when the reset happened: retention may have deleted
        # more segments since ``start`` was read, never fewer
        assert records and start <= records[0].offset
        assert [r.offset for r in records] == list(range(records[0].offset, 10))


def test_compaction_is_observable_through_the_client(shared_cluster) -> None:
    bootstrap = shared_cluster.bootstrap_servers
    with Admin(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic("latest", 1, configs={
            "cleanup.policy": "compact", "segment.bytes": "1024", "segment.ms": "100"})])
    with Producer(bootstrap_servers=bootstrap, linger_ms=0) as producer:
        for i in range(30):
            producer.send("latest", b"v%d" % i + bytes(100), key=b"k%d" % (i % 3)).get(10)
    deadline = time.monotonic() + 20
    while True:
        with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=500) as consumer:
            consumer.assign([TopicPartition("latest", 0)])
            got = list(consumer)
        if len(got) < 30:
            break
        assert time.monotonic() < deadline, "compaction never removed a record"
        time.sleep(0.2)
    latest = {r.key: r.value for r in got}
    assert latest[b"k0"].startswith(b"v27") and latest[b"k2"].startswith(b"v29")
    offsets = [r.offset for r in got]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_admin_against_a_real_broker(shared_cluster) -> None:
    with Admin(bootstrap_servers=shared_cluster.bootstrap_servers) as admin:
        admin.create_topics([NewTopic("a", 2, configs={"retention.ms": "60000"})])
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic("a", 2)])
        assert "a" in admin.list_topics()
        d = admin.describe_topics(["a"])["a"]
        assert [(p.partition, p.leader, p.replicas, p.isr) for p in d.partitions] == [
            (0, 1, (1,), (1,)), (1, 1, (1,), (1,))]
        admin.create_partitions({"a": 3})
        assert len(admin.describe_topics(["a"])["a"].partitions) == 3
        configs = admin.describe_configs(["a"])["a"]
        assert configs["retention.ms"].value == "60000" and not configs["retention.ms"].is_default
        assert configs["cleanup.policy"].is_default
        admin.alter_configs({"a": {"retention.ms": None, "cleanup.policy": "compact"}})
        configs = admin.describe_configs(["a"])["a"]
        assert configs["retention.ms"].is_default and configs["cleanup.policy"].value == "compact"
        assert admin.describe_cluster().brokers[0].address == shared_cluster.bootstrap_servers
        admin.delete_topics(["a"])
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.describe_topics(["a"])


def test_clear_errors(cluster) -> None:
    bootstrap = cluster.bootstrap_servers
    with Producer(bootstrap_servers=bootstrap, max_block_ms=2000) as producer:
        with pytest.raises(UnknownTopicOrPartitionError, match="topic 'missing' does not exist"):
            producer.send("missing", b"x")
    with pytest.raises(ConfigError, match="did you mean 'acks'"):
        Producer({"bootstrap.servers": bootstrap, "ack": 1})
    cluster.stop()
    with Admin(bootstrap_servers=bootstrap, request_timeout_ms=500) as admin:
        with pytest.raises(NoBrokersAvailableError, match="connection refused"):
            admin.list_topics()
