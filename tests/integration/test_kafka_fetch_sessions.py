"""Incremental fetch sessions (KIP-227) on a real broker's KAFKA listener: raw kio requests
(full, incremental, a bad epoch, a closed session) and kafka-python's consumer (which opens
sessions; librdkafka never does: it always sends epoch -1) over many partitions, with its
session evicted under it. One broker for the module, two session slots."""

from __future__ import annotations

import io
import socket
import struct
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32Timedelta

from rillet.admin import Admin, NewTopic
from rillet.launcher import LocalCluster

pytestmark = [pytest.mark.integration]
FETCH_V = 12  # topics by name (v13+ by id: the same session code, covered by the unit tests)


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    """(cluster, the broker's KAFKA bootstrap address)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("kafka-fetch-sessions"), 1,
                           {"listeners": "KAFKA://127.0.0.1:0",
                            "max.incremental.fetch.session.cache.slots": "2"})
    try:
        cluster.start(timeout_s=60)
        path = Path(cluster.broker_dir(1)) / "kafka-listener"
        deadline = time.monotonic() + 60
        while not path.exists():
            assert time.monotonic() < deadline, "the broker wrote no kafka-listener file"
            time.sleep(0.05)
        yield cluster, path.read_text().strip()
    finally:
        cluster.stop(timeout_s=10)


def _topic(cluster, name: str, partitions: int) -> str:
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers})
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    return name


class _Raw:
    """One connection sending kio requests."""

    def __init__(self, addr: str) -> None:
        host, _, port = addr.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.cid = 0
        self.session_id = 0

    def call(self, api_key: int, version: int, body):
        self.cid += 1
        cls = load_request_schema(api_key, version)
        buf = io.BytesIO()
        entity_writer(cls.__header_schema__)(buf, cls.__header_schema__(
            request_api_key=api_key, request_api_version=version, correlation_id=self.cid,
            client_id="fs-test"))
        entity_writer(cls)(buf, body)
        data = buf.getvalue()
        self.sock.sendall(struct.pack(">i", len(data)) + data)
        (size,) = struct.unpack(">i", self._exact(4))
        frame = self._exact(size)
        rcls = load_response_schema(api_key, version)
        _header, at = entity_reader(rcls.__header_schema__)(frame, 0)
        return entity_reader(rcls)(frame, at)[0]

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    def fetch(self, session_id: int, epoch: int, parts: dict[tuple[str, int], int],
              forgotten: dict[str, list[int]] | None = None):
        mod = __import__(load_request_schema(1, FETCH_V).__module__, fromlist=["x"])
        by_topic: dict[str, list] = {}
        for (t, p), offset in parts.items():
            by_topic.setdefault(t, []).append(mod.FetchPartition(
                partition=p, fetch_offset=offset, partition_max_bytes=1 << 20))
        return self.call(1, FETCH_V, mod.FetchRequest(
            max_wait=i32Timedelta.parse(timedelta(0)), min_bytes=1, max_bytes=1 << 22,
            isolation_level=0, session_id=session_id, session_epoch=epoch,
            topics=tuple(mod.FetchTopic(topic=t, partitions=tuple(ps))
                         for t, ps in by_topic.items()),
            forgotten_topics_data=tuple(mod.ForgottenTopic(topic=t, partitions=tuple(ps))
                                        for t, ps in (forgotten or {}).items())))

    def close(self) -> None:
        self.sock.close()


def _answered(response) -> dict[tuple[str, int], object]:
    return {(t.topic, p.partition_index): p for t in response.responses for p in t.partitions}


def _values(records) -> list[bytes]:
    from kafka.record.memory_records import MemoryRecords

    out, batches = [], MemoryRecords(bytes(records))
    while (batch := batches.next_batch()) is not None:
        out += [r.value for r in batch]
    return out


def _produce(bootstrap: str, topic: str, per_partition: dict[int, list[bytes]]) -> None:
    import confluent_kafka as ck

    producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                            "log_level": 0})
    failed = []
    for p, values in per_partition.items():
        for v in values:
            producer.produce(topic, v, partition=p,
                             on_delivery=lambda err, _m: err and failed.append(err))
    assert producer.flush(60) == 0 and failed == []


def test_full_then_incremental_fetches_and_session_errors(kafka) -> None:
    cluster, bootstrap = kafka
    topic = _topic(cluster, "fs-raw", 3)
    raw = _Raw(bootstrap)
    try:
        parts = {(topic, p): 0 for p in range(3)}
        full = raw.fetch(0, 0, parts)  # epoch 0: a full fetch that opens a session
        assert full.error_code == ErrorCode.none and full.session_id != 0
        assert set(_answered(full)) == set(parts)  # a full answer lists every partition
        sid = full.session_id
        quiet = raw.fetch(sid, 1, {})  # nothing changed: nothing answered
        assert quiet.error_code == ErrorCode.none and quiet.session_id == sid
        assert _answered(quiet) == {}
        _produce(bootstrap, topic, {1: [b"a", b"b"]})
        news = raw.fetch(sid, 2, {})  # the session's partitions at their offsets: p1 has data
        assert set(_answered(news)) == {(topic, 1)}
        assert _values(_answered(news)[(topic, 1)].records) == [b"a", b"b"]
        # the client moves p1 on and forgets p2; p1 then has nothing new
        assert _answered(raw.fetch(sid, 3, {(topic, 1): 2}, forgotten={topic: [2]})) == {}
        bad = raw.fetch(sid, 9, {})
        assert bad.error_code == ErrorCode.invalid_fetch_session_epoch and bad.responses == ()
        assert raw.fetch(sid + 1, 4, {}).error_code == ErrorCode.fetch_session_id_not_found
        # the refused requests changed nothing: epoch 4 goes on, p2 stays forgotten
        _produce(bootstrap, topic, {1: [b"c"], 2: [b"z"]})
        after = raw.fetch(sid, 4, {})
        assert set(_answered(after)) == {(topic, 1)}
        assert _values(_answered(after)[(topic, 1)].records) == [b"c"]
        closed = raw.fetch(sid, -1, parts)  # epoch -1 closes it: a sessionless full fetch
        assert closed.session_id == 0 and set(_answered(closed)) == set(parts)
        assert raw.fetch(sid, 5, {}).error_code == ErrorCode.fetch_session_id_not_found
    finally:
        raw.close()
    other = _Raw(bootstrap)  # the broker serves on
    try:
        assert set(_answered(other.fetch(0, -1, parts))) == set(parts)
    finally:
        other.close()


@pytest.mark.timeout(180)
def test_kafka_python_consumer_over_many_partitions_survives_eviction(kafka) -> None:
    from kafka import KafkaConsumer, TopicPartition

    cluster, bootstrap = kafka
    n = 24
    topic = _topic(cluster, "fs-many", n)
    filler = _topic(cluster, "fs-filler", n + 6)
    _produce(bootstrap, topic, {p: [b"%d-%d" % (p, i) for i in range(5)] for p in range(n)})
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None, fetch_max_wait_ms=100)
    got: dict[int, list[bytes]] = {p: [] for p in range(n)}

    def read_until(total: int) -> None:
        deadline = time.monotonic() + 60
        while sum(map(len, got.values())) < total:
            assert time.monotonic() < deadline, {p: len(v) for p, v in got.items()}
            for tp, records in consumer.poll(timeout_ms=200).items():
                got[tp.partition] += [r.value for r in records]

    def session():
        handlers = consumer._fetcher._session_handlers  # noqa: SLF001 - kafka-python's state
        return next(iter(handlers.values())).next_metadata

    raws = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(n)])
        consumer.seek_to_beginning()
        read_until(5 * n)
        deadline = time.monotonic() + 30
        while session().epoch < 2:  # incremental fetches on the broker's session
            assert time.monotonic() < deadline, session()
            consumer.poll(timeout_ms=100)
        assert session().session_id != 0
        # two bigger sessions fill both slots: the consumer's (the smallest) is evicted
        for _ in range(2):
            raws.append(raw := _Raw(bootstrap))
            opened = raw.fetch(0, 0, {(filler, p): 0 for p in range(n + 6)})
            assert opened.session_id != 0
            raw.session_id = opened.session_id
        _produce(bootstrap, topic, {p: [b"%d-%d" % (p, i) for i in range(5, 10)]
                                    for p in range(n)})
        read_until(10 * n)
        # FETCH_SESSION_ID_NOT_FOUND, then full fetches without a session (no slot is free)
        assert session().session_id == 0
        _produce(bootstrap, topic, {p: [b"%d-10" % p] for p in range(n)})
        read_until(11 * n)
    finally:
        consumer.close()
        for raw in raws:  # epoch -1 closes the session: its slot is free again
            raw.fetch(raw.session_id, -1, {})
            raw.close()
    assert got == {p: [b"%d-%d" % (p, i) for i in range(11)] for p in range(n)}


def test_sessions_by_topic_id_from_v13(kafka) -> None:
    """Fetch v13+ names topics by id, in the session's partitions and in forgotten topics."""
    cluster, bootstrap = kafka
    topic = _topic(cluster, "fs-ids", 2)
    raw = _Raw(bootstrap)
    try:
        meta = __import__(load_request_schema(3, 12).__module__, fromlist=["x"])
        described = raw.call(3, 12, meta.MetadataRequest(
            topics=(meta.MetadataRequestTopic(topic_id=None, name=topic),),
            allow_auto_topic_creation=False, include_topic_authorized_operations=False))
        topic_id = described.topics[0].topic_id
        mod = __import__(load_request_schema(1, 16).__module__, fromlist=["x"])

        def fetch(sid, epoch, parts, forgotten=(), tid=topic_id):
            return raw.call(1, 16, mod.FetchRequest(
                max_wait=i32Timedelta.parse(timedelta(0)), min_bytes=1, max_bytes=1 << 22,
                isolation_level=0, session_id=sid, session_epoch=epoch,
                topics=(mod.FetchTopic(topic_id=tid, partitions=tuple(
                    mod.FetchPartition(partition=p, fetch_offset=o, partition_max_bytes=1 << 20)
                    for p, o in parts.items())),) if parts else (),
                forgotten_topics_data=(mod.ForgottenTopic(topic_id=topic_id,
                                                          partitions=tuple(forgotten)),)
                if forgotten else ()))

        def answered(response):
            return {(t.topic_id, p.partition_index): p for t in response.responses
                    for p in t.partitions}

        full = fetch(0, 0, {0: 0, 1: 0})
        assert full.session_id != 0 and set(answered(full)) == {(topic_id, 0), (topic_id, 1)}
        _produce(bootstrap, topic, {0: [b"x"], 1: [b"y"]})
        news = answered(fetch(full.session_id, 1, {}, forgotten=[1]))
        assert set(news) == {(topic_id, 0)} and _values(news[(topic_id, 0)].records) == [b"x"]
        # an id the broker does not know, added in an incremental fetch: answered with its error
        stray = uuid.uuid4()
        odd = answered(fetch(full.session_id, 2, {0: 0}, tid=stray))
        assert odd[(stray, 0)].error_code == ErrorCode.unknown_topic_id
        # p0 is still at offset 0 in the session (its record again, by id); p1 is forgotten
        assert set(odd) == {(stray, 0), (topic_id, 0)}
    finally:
        raw.close()
