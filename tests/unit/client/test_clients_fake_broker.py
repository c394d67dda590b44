"""Producer, Consumer and Admin over the real wire protocol against an in-memory broker."""

from __future__ import annotations

import threading

import pytest
from rillet.transport.protocol import ErrorCode

from rillet import Admin, Consumer, NewTopic, Producer, RecordMetadata, TopicPartition
from rillet._partitioner import partition_for_key
from rillet.errors import (
    ConfigError,
    DeliveryTimeoutError,
    IllegalStateError,
    NoBrokersAvailableError,
    ProducerClosedError,
    SerializationError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

pytestmark = pytest.mark.timeout(30)


def test_produce_then_consume_everything_in_order(broker) -> None:
    broker.create("t", 3)
    with Producer({"bootstrap.servers": broker.address}, linger_ms=1) as p:
        futs = [p.send("t", f"v{i}".encode(), key=f"k{i % 10}".encode(),
                       headers=[("i", str(i).encode())]) for i in range(3000)]
        p.flush(10)
    metas = [f.get(0) for f in futs]
    for i, md in enumerate(metas):
        assert md.partition == partition_for_key(f"k{i % 10}".encode(), 3)
    # offsets are dense and increasing per partition, in send order
    for part in range(3):
        offs = [md.offset for md in metas if md.partition == part]
        assert offs == list(range(len(offs)))
    c = Consumer({"bootstrap.servers": broker.address, "auto.offset.reset": "earliest",
                  "consumer.timeout.ms": 300})
    c.assign([TopicPartition("t", i) for i in range(3)])
    got = list(c)
    c.close()
    assert len(got) == 3000
    by_value = {r.value: r for r in got}
    for i, md in enumerate(metas):
        r = by_value[f"v{i}".encode()]
        assert (r.partition, r.offset, r.key) == (md.partition, md.offset, f"k{i % 10}".encode())
        assert r.headers == (("i", str(i).encode()),) and r.timestamp == md.timestamp


def test_delivery_callbacks_and_metadata(broker) -> None:
    broker.create("t", 1)
    seen = []
    done = threading.Event()
    with Producer(bootstrap_servers=broker.address) as p:
        p.send("t", b"a", on_delivery=lambda err, md: seen.append((err, md)))
        fut = p.send("t", b"b", timestamp_ms=1234, partition=0)
        fut.add_done_callback(lambda f: done.set())
        assert fut.get(5) == RecordMetadata("t", 0, 1, 1234)
    assert done.is_set()
    assert seen[0][0] is None and seen[0][1].offset == 0


def test_null_key_and_value_round_trip(broker) -> None:
    broker.create("t", 1)
    with Producer(bootstrap_servers=broker.address) as p:
        p.send("t", None, key=b"tomb")
        p.send("t", b"", key=None)
    with Consumer(bootstrap_servers=broker.address, auto_offset_reset="earliest") as c:
        c.assign([TopicPartition("t", 0)])
        recs = []
        while len(recs) < 2:
            for rs in c.poll(2000).values():
                recs.extend(rs)
    assert [(r.key, r.value) for r in recs] == [(b"tomb", None), (None, b"")]


def test_retriable_errors_are_retried(broker) -> None:
    broker.create("t", 1)
    broker.fail_next["Produce"] = [ErrorCode.NOT_LEADER_OR_FOLLOWER,
                                   ErrorCode.NOT_ENOUGH_REPLICAS]
    with Producer(bootstrap_servers=broker.address, retry_backoff_ms=5) as p:
        md = p.send("t", b"x").get(5)
    assert md.offset == 0
    assert broker.requests.count("Produce") == 3
    assert "Metadata" in broker.requests[broker.requests.index("Produce"):]


def test_non_retriable_error_fails_the_record(broker) -> None:
    broker.create("t", 1)
    broker.fail_next["Produce"] = [ErrorCode.MESSAGE_TOO_LARGE]
    with Producer(bootstrap_servers=broker.address) as p:
        fut = p.send("t", b"x")
        with pytest.raises(Exception, match="larger than the broker accepts|MESSAGE_TOO"):
            fut.get(5)


def test_delivery_timeout(broker) -> None:
    broker.create("t", 1)
    broker.fail_next["Produce"] = [ErrorCode.NOT_ENOUGH_REPLICAS] * 1000
    with Producer(bootstrap_servers=broker.address, delivery_timeout_ms=300,
                  retry_backoff_ms=20, request_timeout_ms=200) as p:
        with pytest.raises(DeliveryTimeoutError, match="expired after 300 ms"):
            p.send("t", b"x").get(5)


def test_unknown_topic_and_bad_partition_are_clear(broker) -> None:
    broker.create("t", 2)
    with Producer(bootstrap_servers=broker.address, max_block_ms=300) as p:
        with pytest.raises(UnknownTopicOrPartitionError, match="topic 'nope' does not exist"):
            p.send("nope", b"x")
        with pytest.raises(UnknownTopicOrPartitionError, match="partition 5 of topic 't'"):
            p.send("t", b"x", partition=5)
        with pytest.raises(SerializationError, match="must be bytes"):
            p.send("t", "text", partition=0)
        with pytest.raises(SerializationError, match="key must be bytes"):
            p.send("t", b"x", key=12)
    with pytest.raises(ProducerClosedError):
        p.send("t", b"x")


def test_serializers(broker) -> None:
    broker.create("t", 1)
    with Producer(bootstrap_servers=broker.address, value_serializer=str.encode,
                  key_serializer=str.encode) as p:
        p.send("t", "héllo", key="k")
    with Consumer(bootstrap_servers=broker.address, auto_offset_reset="earliest",
                  value_deserializer=bytes.decode, key_deserializer=bytes.decode,
                  consumer_timeout_ms=2000) as c:
        c.assign([TopicPartition("t", 0)])
        r = next(iter(c))
    assert (r.key, r.value) == ("k", "héllo")


def test_consumer_positions_and_seeks(broker) -> None:
    broker.create("t", 1)
    tp = TopicPartition("t", 0)
    with Producer(bootstrap_servers=broker.address) as p:
        for i in range(100):
            p.send("t", str(i).encode())
    with Consumer(bootstrap_servers=broker.address, consumer_timeout_ms=300) as c:
        c.assign([tp])
        assert c.position(tp) == 100  # auto.offset.reset=latest
        assert c.beginning_offsets([tp]) == {tp: 0} and c.end_offsets([tp]) == {tp: 100}
        assert list(c) == []
        c.seek(tp, 40)
        got = c.poll(2000, max_records=5)[tp]
        assert [r.offset for r in got] == [40, 41, 42, 43, 44] and c.position(tp) == 45
        c.seek_to_beginning(tp)
        assert next(iter(c)).offset == 0
        c.seek_to_end()
        assert c.position(tp) == 100
        c.seek(tp, 95)
        assert [r.value for r in c] == [b"95", b"96", b"97", b"98", b"99"]
        with pytest.raises(IllegalStateError, match="not assigned"):
            c.position(TopicPartition("t", 7))


def test_out_of_range_resets(broker) -> None:
    broker.create("t", 1)
    tp = TopicPartition("t", 0)
    with Producer(bootstrap_servers=broker.address) as p:
        for i in range(10):
            p.send("t", str(i).encode())
    with Consumer(bootstrap_servers=broker.address, auto_offset_reset="earliest",
                  consumer_timeout_ms=500) as c:
        c.assign([tp])
        c.seek(tp, 1000)
        assert [r.offset for r in c] == list(range(10))


def test_admin_topics_and_configs(broker) -> None:
    with Admin(bootstrap_servers=broker.address) as admin:
        assert admin.create_topics([NewTopic("a", 2), NewTopic("b", 1,
                                   configs={"retention.ms": "1000"})]) == {"a": None, "b": None}
        res = admin.create_topics([NewTopic("a", 2)], raise_errors=False)
        assert isinstance(res["a"], TopicAlreadyExistsError)
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic("a", 2)])
        assert admin.list_topics() == ["a", "b"]
        desc = admin.describe_topics(["a"])["a"]
        assert [pi.partition for pi in desc.partitions] == [0, 1]
        assert desc.partitions[0].leader == 1 and desc.replication_factor == 1
        admin.create_partitions({"a": 4})
        assert len(admin.describe_topics(["a"])["a"].partitions) == 4
        assert admin.describe_configs(["b"])["b"]["retention.ms"].value == "1000"
        admin.alter_configs({"a": {"retention.ms": "5"}})
        entry = admin.describe_configs(["a"])["a"]["retention.ms"]
        assert entry.value == "5" and not entry.is_default
        cluster = admin.describe_cluster()
        assert cluster.controller_id == 1 and cluster.brokers[0].address == broker.address
        admin.delete_topics(["b"])
        assert admin.list_topics() == ["a"]
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.describe_topics(["b"])


def test_broker_down_is_a_clear_error() -> None:
    with Admin(bootstrap_servers="127.0.0.1:1", request_timeout_ms=300) as admin:
        with pytest.raises(NoBrokersAvailableError, match="connection refused by 127.0.0.1:1"):
            admin.list_topics()


def test_bad_config_is_rejected_before_connecting() -> None:
    with pytest.raises(ConfigError, match="did you mean 'linger.ms'"):
        Producer({"bootstrap.servers": "127.0.0.1:1", "linger": 5})


@pytest.mark.parametrize("codec", ["gzip", "zstd", "lz4"])
def test_compressed_batches_round_trip(broker, codec: str) -> None:
    broker.create("z", 1)
    with Producer(bootstrap_servers=broker.address, compression_type=codec) as p:
        for i in range(500):
            p.send("z", b"compressible %d " % i * 5, key=b"k", headers=[("n", b"%d" % i)])
    with Consumer(bootstrap_servers=broker.address, auto_offset_reset="earliest",
                  consumer_timeout_ms=500) as c:
        c.assign([TopicPartition("z", 0)])
        got = list(c)
    assert [r.value for r in got] == [b"compressible %d " % i * 5 for i in range(500)]
    assert [r.headers for r in got] == [(("n", b"%d" % i),) for i in range(500)]


def test_sticky_partitioning_spreads_null_keys_over_partitions(broker) -> None:
    broker.create("s", 4)
    with Producer(bootstrap_servers=broker.address, batch_size=2000, linger_ms=0) as p:
        futs = [p.send("s", b"x" * 100) for _ in range(2000)]
    parts = [f.get(1).partition for f in futs]
    assert set(parts) == {0, 1, 2, 3}
    # sticky: records go in runs to one partition, not round-robin
    switches = sum(1 for a, b in zip(parts, parts[1:], strict=False) if a != b)
    assert switches < len(parts) / 5


def test_too_large_concatenation_is_split_into_single_batches(broker) -> None:
    broker.create("t", 1)
    broker.fail_next["Produce"] = [ErrorCode.MESSAGE_TOO_LARGE]
    with Producer(bootstrap_servers=broker.address, batch_size=1000, linger_ms=10_000) as p:
        futs = [p.send("t", b"%03d" % i + b"x" * 97) for i in range(40)]
        p.flush(10)  # drains every batch at once: one request with several batches
    metas = [f.get(0) for f in futs]
    assert [md.offset for md in metas] == list(range(40))
    assert broker.requests.count("Produce") > 2
    with Consumer(bootstrap_servers=broker.address, auto_offset_reset="earliest",
                  consumer_timeout_ms=500) as c:
        c.assign([TopicPartition("t", 0)])
        assert [r.value[:3] for r in c] == [b"%03d" % i for i in range(40)]


def test_retries_keep_partition_order_with_one_request_in_flight(broker) -> None:
    broker.create("t", 1)
    broker.fail_next["Produce"] = [ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.REQUEST_TIMED_OUT,
                                   ErrorCode.NOT_ENOUGH_REPLICAS]
    with Producer(bootstrap_servers=broker.address, batch_size=500, linger_ms=0,
                  retry_backoff_ms=5, max_in_flight_requests_per_connection=1) as p:
        futs = [p.send("t", b"%04d" % i) for i in range(300)]
        p.flush(10)
    offsets = [f.get(0).offset for f in futs]
    assert offsets == list(range(300))  # no retried batch overtaken by a later one
