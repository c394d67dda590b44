"""The Kafka data path (Produce, Fetch, ListOffsets, InitProducerId) on a real broker's KAFKA
listener, driven by clients no one here wrote (confluent-kafka/librdkafka, kafka-python,
kcat) and mixed with rillet's native clients both ways: keys, values, headers, timestamps,
null keys and null values kept. One broker for the module; each test its own topic."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import timedelta

import pytest
from kafka_raw import frame, receive_with_cid
from kafka_raw import receive as _receive
from kio.index import load_request_schema
from kio.static.primitive import i32Timedelta

from rillet import Consumer, Producer
from rillet.admin import Admin, NewTopic
from tests.support import require_tool

pytestmark = [pytest.mark.integration]


def _topic(cluster, name: str, partitions: int = 1) -> str:
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers})
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    return name


def _ck_consume(bootstrap: str, assignments, count: int, timeout_s: float = 60, **config):
    """confluent-kafka: assign (with offsets) and read ``count`` messages."""
    import confluent_kafka as ck

    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "kd-unused",
                            "enable.auto.commit": False, "log_level": 0,
                            **{k.replace("_", "."): v for k, v in config.items()}})
    try:
        consumer.assign([ck.TopicPartition(t, p, o) for t, p, o in assignments])
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            out.append(m)
        return out
    finally:
        consumer.close()


def _native_consume(cluster, topic: str, partitions, count: int, timeout_s: float = 60):
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.assign([(topic, p) for p in partitions])
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            for records in consumer.poll(500).values():
                out += records
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


# --------------------------------------------------------------- real clients, mixed


def test_confluent_idempotent_producer_to_native_and_kafka_consumers(kafka) -> None:
    import confluent_kafka as ck

    cluster, bootstrap = kafka
    topic = _topic(cluster, "kd-idem", 2)
    producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all",
                            "enable.idempotence": True, "linger.ms": 5})
    sent, failed = [], []

    def delivered(err, msg):
        (failed if err else sent).append(err or (msg.partition(), msg.offset()))

    for i in range(200):
        key = None if i % 10 == 0 else b"k%d" % i
        value = None if i % 10 == 5 else b"v%d" % i
        headers = [("h", b"x%d" % i), ("n", None)] if i % 3 == 0 else None
        producer.produce(topic, value=value, key=key, partition=i % 2, headers=headers,
                         timestamp=1_700_000_000_000 + i, on_delivery=delivered)
    assert producer.flush(60) == 0
    assert failed == []
    assert sorted(sent) == sorted((p, o) for p in (0, 1) for o in range(100))

    native = _native_consume(cluster, topic, (0, 1), 200)
    assert len(native) == 200
    for r in native:
        i = r.timestamp - 1_700_000_000_000
        assert (r.partition, r.offset) == (i % 2, i // 2)
        assert r.key == (None if i % 10 == 0 else b"k%d" % i)
        assert r.value == (None if i % 10 == 5 else b"v%d" % i)
        assert r.headers == ((("h", b"x%d" % i), ("n", None)) if i % 3 == 0 else ())

    # a Kafka consumer seeks into the middle: assign at offset 40 of partition 0
    got = _ck_consume(bootstrap, [(topic, 0, 40)], 60)
    assert [m.offset() for m in got] == list(range(40, 100))
    assert [m.timestamp()[1] - 1_700_000_000_000 for m in got] == list(range(80, 200, 2))
    # partition 0 holds the even i: got[k] is i = 80 + 2k
    assert got[10].key() is None and got[10].value() == b"v100"
    assert got[2].headers() == [("h", b"x84"), ("n", None)] and got[1].headers() is None


def test_native_producer_to_kafka_consumers(kafka) -> None:
    from kafka import KafkaConsumer, TopicPartition

    cluster, bootstrap = kafka
    topic = _topic(cluster, "kd-native")
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    try:
        for i in range(50):
            producer.send(topic, key=None if i == 7 else b"k%d" % i,
                          value=None if i == 8 else b"v%d" % i,
                          headers=[("trace", b"%d" % i), ("empty", b""), ("null", None)],
                          partition=0, timestamp_ms=1_600_000_000_000 + i)
        producer.flush()
    finally:
        producer.close()

    got = _ck_consume(bootstrap, [(topic, 0, 0)], 50)
    assert [m.offset() for m in got] == list(range(50))
    for i, m in enumerate(got):
        assert m.key() == (None if i == 7 else b"k%d" % i)
        assert m.value() == (None if i == 8 else b"v%d" % i)
        assert m.headers() == [("trace", b"%d" % i), ("empty", b""), ("null", None)]
        assert m.timestamp()[1] == 1_600_000_000_000 + i

    # kafka-python negotiates its own versions; assign + seek
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             request_timeout_ms=30000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 45)
        records = []
        deadline = time.monotonic() + 60
        while len(records) < 5 and time.monotonic() < deadline:
            for batch in consumer.poll(500).values():
                records += batch
        assert [(r.offset, r.key, r.value) for r in records] == [
            (i, b"k%d" % i, b"v%d" % i) for i in range(45, 50)]
        assert records[0].headers == [("trace", b"45"), ("empty", b""), ("null", None)]
    finally:
        consumer.close()


def test_kafka_python_producer_acks_all_then_list_offsets(kafka) -> None:
    import confluent_kafka as ck
    from kafka import KafkaProducer

    cluster, bootstrap = kafka
    topic = _topic(cluster, "kd-kpy")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=0,
                                 timestamp_ms=1_500_000_000_000 + 1000 * i) for i in range(30)]
        producer.flush(30)
        assert [f.get(30).offset for f in futures] == list(range(30))
    finally:
        producer.close()
    native = _native_consume(cluster, topic, (0,), 30)
    assert [(r.key, r.value) for r in native] == [(b"k%d" % i, b"v%d" % i) for i in range(30)]

    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "kd-unused",
                            "log_level": 0})
    try:
        tp = ck.TopicPartition(topic, 0)
        assert consumer.get_watermark_offsets(tp, timeout=30) == (0, 30)
        found = consumer.offsets_for_times(
            [ck.TopicPartition(topic, 0, 1_500_000_000_000 + 12_500)], timeout=30)
        assert found[0].offset == 13  # the first record at or after that time
        late = consumer.offsets_for_times(
            [ck.TopicPartition(topic, 0, 1_600_000_000_000)], timeout=30)
        assert late[0].offset == -1  # none that late (librdkafka: OFFSET_END)
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_from_confluent(kafka, codec) -> None:
    import confluent_kafka as ck

    cluster, bootstrap = kafka
    topic = _topic(cluster, f"kd-{codec}")
    producer = ck.Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                            "linger.ms": 20, "acks": "all"})
    values = [b"%05d " % i + b"compressible " * 20 for i in range(300)]
    for i, v in enumerate(values):
        producer.produce(topic, value=v, key=b"k%d" % i, partition=0)
    assert producer.flush(60) == 0
    assert [m.value() for m in _ck_consume(bootstrap, [(topic, 0, 0)], 300)] == values
    assert [r.value for r in _native_consume(cluster, topic, (0,), 300)] == values


def test_kcat_round_trip_of_10000_keyed_lines(kafka, tmp_path) -> None:
    kcat = require_tool("kcat")
    cluster, bootstrap = kafka
    topic = _topic(cluster, "kd-kcat", 2)
    lines = [f"key{i % 97}:value {i}" for i in range(10_000)]
    subprocess.run([kcat, "-b", bootstrap, "-P", "-t", topic, "-K:", "-p", "0",
                    "-X", "linger.ms=10"], input="\n".join(lines) + "\n", text=True,
                   check=True, timeout=120)
    out = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic, "-p", "0", "-o",
                          "beginning", "-e", "-q", "-K:", "-f", "%k:%s\n"],
                         capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.splitlines() == lines
    listing = subprocess.run([kcat, "-b", bootstrap, "-L", "-t", topic], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    assert "2 partitions" in listing


# ------------------------------------------------------------------- the raw protocol


def _raw(addr: str, api_key: int, version: int, body, sock=None, cid: int = 1):
    """Send one kio request; the decoded response (kio)."""
    host, _, port = addr.rpartition(":")
    own = sock is None
    sock = sock or socket.create_connection((host, int(port)), timeout=60)
    try:
        _send(sock, api_key, version, body, cid)
        return _receive(sock, api_key, version)
    finally:
        if own:
            sock.close()


def _send(sock, api_key, version, body, cid=1) -> None:
    sock.sendall(frame(api_key, version, body, cid, "kd-test"))


def _produce_body(topic: str, parts: dict[int, bytes], acks: int = -1):
    mod = __import__(load_request_schema(0, 9).__module__, fromlist=["x"])
    return mod.ProduceRequest(
        transactional_id=None, acks=acks, timeout=i32Timedelta.parse(timedelta(seconds=30)),
        topic_data=(mod.TopicProduceData(name=topic, partition_data=tuple(
            mod.PartitionProduceData(index=p, records=r) for p, r in parts.items())),))


def _kafka_batch(values, pid=-1, epoch=-1, seq=-1) -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                  producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                                  batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, 1_700_000_000_000, None, v, [])
    return bytes(b.build())


def _partitions(response) -> dict[tuple[str, int], object]:
    return {(t.name, p.index): p for t in response.responses for p in t.partition_responses}


def test_produce_errors_per_partition_and_idempotent_duplicates(kafka) -> None:
    from kio.schema.errors import ErrorCode

    cluster, bootstrap = kafka
    topic = _topic(cluster, "kd-raw", 2)
    ipid = __import__(load_request_schema(22, 4).__module__, fromlist=["x"])
    ids = _raw(bootstrap, 22, 4, ipid.InitProducerIdRequest(
        transactional_id=None, transaction_timeout=i32Timedelta.parse(timedelta(seconds=60)),
        producer_id=-1, producer_epoch=-1))
    assert ids.error_code == ErrorCode.none and ids.producer_id >= 0
    pid, epoch = ids.producer_id, ids.producer_epoch

    corrupt = bytearray(_kafka_batch([b"x"]))
    corrupt[-1] ^= 0xFF  # the CRC no longer matches
    good = _kafka_batch([b"a", b"b"], pid, epoch, 0)
    answer = _partitions(_raw(bootstrap, 0, 9, _produce_body(topic, {0: good, 1: bytes(corrupt)})))
    assert answer[(topic, 0)].error_code == ErrorCode.none
    assert answer[(topic, 0)].base_offset == 0
    assert answer[(topic, 1)].error_code == ErrorCode.corrupt_message  # the other appended
    # the same batch again (a producer's retry): answered with its offset, stored once
    again = _partitions(_raw(bootstrap, 0, 9, _produce_body(topic, {0: good})))
    assert again[(topic, 0)].error_code == ErrorCode.none
    assert again[(topic, 0)].base_offset == 0
    gap = _partitions(_raw(bootstrap, 0, 9, _produce_body(
        topic, {0: _kafka_batch([b"c"], pid, epoch, 5)})))
    assert gap[(topic, 0)].error_code == ErrorCode.out_of_order_sequence_number
    nxt = _partitions(_raw(bootstrap, 0, 9, _produce_body(
        topic, {0: _kafka_batch([b"c"], pid, epoch, 2)})))
    assert nxt[(topic, 0)].base_offset == 2
    assert [r.value for r in _native_consume(cluster, topic, (0,), 3)] == [b"a", b"b", b"c"]

    unknown = _partitions(_raw(bootstrap, 0, 9, _produce_body("kd-nope", {0: good})))
    assert unknown[("kd-nope", 0)].error_code == ErrorCode.unknown_topic_or_partition
    wrong = _partitions(_raw(bootstrap, 0, 9, _produce_body(topic, {7: good})))
    assert wrong[(topic, 7)].error_code == ErrorCode.unknown_topic_or_partition


def test_fetch_long_poll_answers_when_records_arrive(kafka) -> None:
    cluster, bootstrap = kafka
    topic = _topic(cluster, "kd-poll")
    mod = __import__(load_request_schema(1, 12).__module__, fromlist=["x"])
    body = mod.FetchRequest(
        max_wait=i32Timedelta.parse(timedelta(seconds=30)), min_bytes=1, max_bytes=1 << 20,
        isolation_level=1, session_id=0, session_epoch=-1, forgotten_topics_data=(),
        topics=(mod.FetchTopic(topic=topic, partitions=(mod.FetchPartition(
            partition=0, fetch_offset=0, partition_max_bytes=1 << 20),)),))
    host, _, port = bootstrap.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        _send(sock, 1, 12, body)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # parked: nothing to read yet
            sock.recv(1, socket.MSG_PEEK)
        sock.settimeout(60)
        started = time.monotonic()
        _raw(bootstrap, 0, 9, _produce_body(topic, {0: _kafka_batch([b"late"])}))
        response = _receive(sock, 1, 12)
        assert time.monotonic() - started < 20  # the records ended the wait, not max_wait
    part = response.responses[0].partitions[0]
    assert response.session_id == 0  # no fetch session: full fetches, as Kafka allows
    assert part.high_watermark == 1 and part.last_stable_offset == 1
    assert part.aborted_transactions == ()  # read_committed: the (empty) list, not null
    from kafka.record.memory_records import MemoryRecords

    batch = MemoryRecords(bytes(part.records)).next_batch()
    assert batch.validate_crc() and [r.value for r in batch] == [b"late"]


def test_acks_0_gets_no_answer_and_message_too_large_is_per_partition(kafka) -> None:
    from kio.schema.errors import ErrorCode

    cluster, bootstrap = kafka
    topic = "kd-acks0"
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers})
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "2000"})])
    finally:
        admin.close()
    host, _, port = bootstrap.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        _send(sock, 0, 9, _produce_body(topic, {0: _kafka_batch([b"fire"])}, acks=0), cid=1)
        big = _kafka_batch([bytes(5000)])
        _send(sock, 0, 9, _produce_body(topic, {0: big}, acks=1), cid=2)
        # the acks=0 request has no answer: the next answer on the connection is cid 2's
        cid, response = receive_with_cid(sock, 0, 9)
    assert cid == 2
    part = _partitions(response)[(topic, 0)]
    assert part.error_code == ErrorCode.message_too_large
    assert [r.value for r in _native_consume(cluster, topic, (0,), 1)] == [b"fire"]


def test_read_committed_kafka_consumer_skips_an_aborted_native_transaction(kafka) -> None:
    cluster, bootstrap = kafka
    topic = _topic(cluster, "kd-txn")
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers,
                         "transactional.id": "kd-txn-1"})
    try:
        producer.init_transactions()
        for outcome in ("commit", "abort", "commit"):
            producer.begin_transaction()
            for i in range(3):
                producer.send(topic, f"{outcome}-{i}".encode(), partition=0)
            producer.flush()  # in the log before the marker (abort drops unsent records)
            if outcome == "commit":
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()
    committed = [b"commit-0", b"commit-1", b"commit-2"] * 2
    got = _ck_consume(bootstrap, [(topic, 0, 0)], 6, isolation_level="read_committed")
    assert [m.value() for m in got] == committed
    everything = _ck_consume(bootstrap, [(topic, 0, 0)], 9, timeout_s=30,
                             isolation_level="read_uncommitted")
    assert sorted(m.value() for m in everything) == sorted(
        committed + [b"abort-0", b"abort-1", b"abort-2"])


def test_fetch_by_topic_id_and_no_fetch_sessions(kafka) -> None:
    import uuid

    from kio.schema.errors import ErrorCode

    cluster, bootstrap = kafka
    topic = _topic(cluster, "kd-ids")
    _raw(bootstrap, 0, 9, _produce_body(topic, {0: _kafka_batch([b"by-id"])}))
    meta = __import__(load_request_schema(3, 12).__module__, fromlist=["x"])
    described = _raw(bootstrap, 3, 12, meta.MetadataRequest(
        topics=(meta.MetadataRequestTopic(topic_id=None, name=topic),),
        allow_auto_topic_creation=False, include_topic_authorized_operations=False))
    topic_id = described.topics[0].topic_id
    assert isinstance(topic_id, uuid.UUID)
    mod = __import__(load_request_schema(1, 16).__module__, fromlist=["x"])

    def body(ids, session_id=0, session_epoch=-1):
        return mod.FetchRequest(
            max_wait=i32Timedelta.parse(timedelta(0)), min_bytes=1, max_bytes=1 << 20,
            isolation_level=0, session_id=session_id, session_epoch=session_epoch,
            forgotten_topics_data=(), topics=tuple(mod.FetchTopic(topic_id=i, partitions=(
                mod.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20),))
                for i in ids))

    stray = uuid.uuid4()
    response = _raw(bootstrap, 1, 16, body([topic_id, stray]))
    by_id = {t.topic_id: t.partitions[0] for t in response.responses}
    assert by_id[stray].error_code == ErrorCode.unknown_topic_id
    from kafka.record.memory_records import MemoryRecords

    assert [r.value for r in MemoryRecords(bytes(by_id[topic_id].records)).next_batch()] == [
        b"by-id"]
    refused = _raw(bootstrap, 1, 16, body([topic_id], session_id=123, session_epoch=4))
    assert refused.error_code == ErrorCode.fetch_session_id_not_found
