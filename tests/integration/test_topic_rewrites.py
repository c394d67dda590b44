"""A topic's message.timestamp.type=LogAppendTime and compression.type on real broker
processes (logstore/rewrite.py): the leader stamps or recompresses, followers copy its bytes,
native and Kafka clients (confluent-kafka over the KAFKA listener) read the result, and ``rillet dump-log`` shows the
stored codec. One
3-broker cluster for the module; each test its own topic."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cluster_helpers import FAST, wait_until
from rillet.logstore import batch as B

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet.cli.main import cli
from rillet.errors import RilletError
from rillet.launcher import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def c3(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("rewrites"), 3,
                           {**FAST, "listeners": "KAFKA://127.0.0.1:0"})
    try:
        cluster.start(timeout_s=60)
        wait_until(lambda: all(cluster.kafka_address(b) for b in cluster.broker_ids), 60,
                   "every broker's KAFKA listener")
        yield cluster
    finally:
        cluster.stop(timeout_s=10)


def _admin(c) -> Admin:
    return Admin({"bootstrap.servers": c.bootstrap_servers, "request.timeout.ms": 15000})


def _now_ms() -> int:
    return int(time.time() * 1000)


def segment_batches(c, broker: int, topic: str, partition: int = 0) -> list[tuple]:
    """(header, batch bytes) of every batch in the partition's segment files on ``broker``:
    the stored format read straight from disk (each digest checked)."""
    directory = Path(c.broker_dir(broker)) / f"{topic}-{partition}"
    out = []
    for path in sorted(directory.glob("*.log"), key=lambda p: int(p.stem)):
        data = path.read_bytes()
        out += [(h, bytes(mv)) for h, mv in B.iter_batches(data)]
    return out


def _stored(c, broker: int, topic: str, count: int):
    """The broker's batches once they hold ``count`` records (None until then)."""
    try:
        got = segment_batches(c, broker, topic)
    except (OSError, B.CorruptBatchError):  # mid-write: polled again
        return None
    return got if sum(h.record_count for h, _ in got) >= count else None


def _consume(c, topic: str, count: int) -> list:
    consumer = Consumer({"bootstrap.servers": c.bootstrap_servers,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.assign([(topic, 0)])
        out: list = []
        deadline = time.monotonic() + 60
        while len(out) < count and time.monotonic() < deadline:
            for records in consumer.poll(500).values():
                out += records
        assert len(out) == count, out
        return out
    finally:
        consumer.close()


def _ck_consume(c, topic: str, count: int) -> list:
    import confluent_kafka as ck

    consumer = ck.Consumer({"bootstrap.servers": c.kafka_bootstrap_servers,
                            "group.id": "rewrites-unused", "enable.auto.commit": False,
                            "log_level": 0})
    try:
        consumer.assign([ck.TopicPartition(topic, 0, 0)])
        out: list = []
        deadline = time.monotonic() + 60
        while len(out) < count and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                out.append(m)
        assert len(out) == count
        return out
    finally:
        consumer.close()


def _leader(c, topic: str) -> int:
    with _admin(c) as admin:
        return admin.describe_topics([topic])[topic].partitions[0].leader


def test_log_append_time_is_the_leaders_clock_on_every_replica_and_after_a_leader_change(
        c3) -> None:
    import confluent_kafka as ck

    c, topic = c3, "lat"
    with _admin(c) as admin:
        admin.create_topics([NewTopic(topic, 1, 3, configs={
            "message.timestamp.type": "LogAppendTime", "min.insync.replicas": "3"})])
    created = 1_000_000_000_000  # the producer's timestamps: 2001, far from the broker's clock
    producer = Producer({"bootstrap.servers": c.bootstrap_servers, "acks": "all",
                         "enable.idempotence": True})
    try:
        before = _now_ms()
        futures = [producer.send(topic, b"v%d" % i, key=b"k", timestamp_ms=created + i)
                   for i in range(5)]
        producer.flush(30)
        after = _now_ms()
        metadata = [f.result(30) for f in futures]
        assert [m.offset for m in metadata] == list(range(5))
    finally:
        producer.close()

    # every replica holds the leader's bytes: the stamp is copied, never made again
    stored = {b: wait_until(lambda b=b: _stored(c, b, topic, 5), 30, f"broker {b}'s copy")
              for b in c.broker_ids}
    [(header, data)] = stored[c.broker_ids[0]]
    assert header.is_log_append_time and before <= header.max_timestamp <= after
    assert header.first_timestamp == created  # the producer's create times, kept unread
    assert all(s == [(header, data)] for s in stored.values())
    stamp = header.max_timestamp
    assert [m.timestamp for m in metadata] == [stamp] * 5  # the produce answer's stamp

    records = _consume(c, topic, 5)
    assert [(r.timestamp, r.timestamp_type) for r in records] == [(stamp, 1)] * 5
    with Consumer({"bootstrap.servers": c.bootstrap_servers}) as consumer:
        tp = TopicPartition(topic, 0)
        assert consumer.offsets_for_times({tp: created}) == {tp: 0}
        assert consumer.offsets_for_times({tp: stamp}) == {tp: 0}
        assert consumer.offsets_for_times({tp: stamp + 1}) == {tp: None}

    # a leader change (the preferred replica moved to another broker): the old stamps stay,
    # new batches get the new leader's clock
    old = _leader(c, topic)
    new = next(b for b in c.broker_ids if b != old)
    with _admin(c) as admin:
        admin.alter_partition_reassignments(
            {(topic, 0): [new, *(b for b in c.broker_ids if b != new)]})
        wait_until(lambda: admin.elect_leaders([(topic, 0)], raise_errors=False) is not None
                   and _leader(c, topic) == new, 30, f"broker {new} to lead")
    kafka = ck.Producer({"bootstrap.servers": c.kafka_bootstrap_servers, "acks": "all",
                         "log_level": 0})
    delivered = []
    before2 = _now_ms()
    kafka.produce(topic, b"from-kafka", timestamp=created,
                  on_delivery=lambda err, msg: delivered.append((err, msg.timestamp())))
    assert kafka.flush(30) == 0
    after2 = _now_ms()
    [(err, (ts_type, ts))] = delivered
    assert err is None and ts_type == ck.TIMESTAMP_LOG_APPEND_TIME and before2 <= ts <= after2

    got = _ck_consume(c, topic, 6)
    assert [m.timestamp() for m in got] == [(ck.TIMESTAMP_LOG_APPEND_TIME, stamp)] * 5 + [
        (ck.TIMESTAMP_LOG_APPEND_TIME, ts)]
    records = _consume(c, topic, 6)
    assert [r.timestamp for r in records] == [stamp] * 5 + [ts]
    for b in c.broker_ids:
        copy = wait_until(lambda b=b: _stored(c, b, topic, 6), 30, f"broker {b}'s copy")
        assert copy[0] == (header, data) and copy[1][0].max_timestamp == ts


def test_topic_zstd_recompresses_native_and_kafka_batches_both_clients_read(c3) -> None:
    import confluent_kafka as ck

    c, topic = c3, "zstd-topic"
    with _admin(c) as admin:
        admin.create_topics([NewTopic(topic, 1, 1, configs={"compression.type": "zstd"})])
    values = [b"native-%d" % i * 10 for i in range(10)]
    with Producer({"bootstrap.servers": c.bootstrap_servers, "linger.ms": 5}) as producer:
        for v in values:
            producer.send(topic, v, key=b"n")
        producer.flush(30)
    kafka = ck.Producer({"bootstrap.servers": c.kafka_bootstrap_servers,
                         "compression.codec": "snappy", "linger.ms": 5, "log_level": 0})
    kvalues = [b"kafka-%d" % i * 10 for i in range(10)]
    for v in kvalues:
        kafka.produce(topic, v, key=b"k")
    assert kafka.flush(30) == 0

    leader = _leader(c, topic)
    stored = wait_until(lambda: _stored(c, leader, topic, 20), 30, "the stored batches")
    assert {h.codec for h, _ in stored} == {B.Codec.ZSTD}
    # the operator's view: rillet dump-log (kafka-dump-log.sh) of the leader's segment
    segments = sorted((Path(c.broker_dir(leader)) / f"{topic}-0").glob("*.log"))
    out = CliRunner().invoke(cli, ["dump-log", *map(str, segments)])
    assert out.exit_code == 0, out.output
    batches = [line for line in out.output.splitlines() if line.startswith("baseOffset")]
    assert len(batches) == len(stored)
    assert all("compresscodec: zstd" in line and "isvalid: true" in line for line in batches)
    assert [v for _, d in stored for v in B.decode_columns(d).values] == values + kvalues
    assert [r.value for r in _consume(c, topic, 20)] == values + kvalues
    assert [m.value() for m in _ck_consume(c, topic, 20)] == values + kvalues


def test_a_bad_value_is_refused_with_a_did_you_mean_and_a_good_one_applies_at_once(c3) -> None:
    c = c3
    with _admin(c) as admin:
        with pytest.raises(RilletError, match="did you mean 'zstd'"):
            admin.create_topics([NewTopic("bad-codec", 1, 1,
                                          configs={"compression.type": "zstdd"})])
        admin.create_topics([NewTopic("altered", 1, 1)])
        with pytest.raises(RilletError, match="did you mean 'LogAppendTime'"):
            admin.alter_configs({"altered": {"message.timestamp.type": "logappendtime"}})
        assert "bad-codec" not in admin.list_topics()
        admin.alter_configs({"altered": {"message.timestamp.type": "LogAppendTime",
                                         "compression.type": "gzip"}})
    # the partition's leader applies the altered configs (its log reopened): polled, as a
    # produce may reach it just before
    with Producer({"bootstrap.servers": c.bootstrap_servers}) as producer:
        def stamped():
            producer.send("altered", b"x", timestamp_ms=1).result(30)
            got = _stored(c, _leader(c, "altered"), "altered", 1)
            return got and got[-1][0].is_log_append_time and got[-1][0].codec is B.Codec.GZIP
        wait_until(stamped, 30, "an altered topic's batches stamped and gzipped", 0.2)
