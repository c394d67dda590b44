"""Share groups (KIP-932) and KIP-848 group descriptions on a real broker's KAFKA listener,
driven by confluent-kafka (librdkafka's share consumer and admin client) and mixed with
rillet's native ShareConsumer in one group: records produced natively, per-record accept /
release / reject with delivery counts, the dead-letter topic, records locked to one member
at a time and released at once when a Kafka member closes, ConsumerGroupDescribe (and
ListGroups of share groups); bad share requests get Kafka's error codes and the broker
serves on. One broker for the module (tests/integration/conftest.py ``kafka``); each test
its own topic and group."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from test_kafka_data import _raw

from rillet import Admin, Consumer, Producer, ShareConsumer, TopicPartition
from tests.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KAFKA_CONFIGS = {"offsets.topic.num.partitions": "1", "group.initial.rebalance.delay.ms": "0"}
KAFKA_TOPICS = (("ks-jobs", 1), ("ks-pool", 1), ("ks-848", 2))
QUIET = {"log_level": 3}


def _group(cluster, group: str, **configs) -> None:
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        admin.alter_group_configs(group, set={"share.auto.offset.reset": "earliest",
                                              **{k.replace("_", "."): str(v)
                                                 for k, v in configs.items()}})


def _produce(cluster, topic: str, n: int, batch: int | None = None) -> None:
    """``n`` records, in stored batches of ``batch`` (a flush each)."""
    with Producer({"bootstrap.servers": cluster.bootstrap_servers}) as producer:
        for i in range(n):
            producer.send(topic, value=f"v{i}".encode(), key=f"k{i}".encode(),
                          headers=[("h", b"1")])
            if batch and (i + 1) % batch == 0:
                producer.flush(10)
        producer.flush(10)


def _share_consumer(bootstrap: str, group: str, topic: str, **config):
    from confluent_kafka import ShareConsumer as KafkaShareConsumer

    consumer = KafkaShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, **QUIET,
                                   **{k.replace("_", "."): v for k, v in config.items()}})
    consumer.subscribe([topic])
    return consumer


def _poll(consumer, n: int, timeout_s: float = 30.0) -> list:
    """At least ``n`` messages (fewer at the deadline), none with an error."""
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        for m in consumer.poll(0.5):
            assert m.error() is None, m.error()
            out.append(m)
    return out


def test_kafka_share_consumer_accepts_releases_and_rejects_native_records(kafka) -> None:
    from confluent_kafka import AcknowledgeType

    cluster, bootstrap = kafka
    _group(cluster, "ks-workers", retry_backoff_ms=100)
    _produce(cluster, "ks-jobs", 5)
    c = _share_consumer(bootstrap, "ks-workers", "ks-jobs", share_acknowledgement_mode="explicit")
    try:
        first = {m.value(): m for m in _poll(c, 5)}
        assert sorted(first) == [f"v{i}".encode() for i in range(5)]
        m0 = first[b"v0"]
        assert (m0.key(), m0.headers(), m0.offset()) == (b"k0", [("h", b"1")], 0)
        assert all(m.delivery_count() == 1 for m in first.values())
        for value, m in first.items():
            kind = {b"v1": AcknowledgeType.RELEASE, b"v2": AcknowledgeType.REJECT}.get(
                value, AcknowledgeType.ACCEPT)
            c.acknowledge(m, kind)
        results = c.commit_sync(30)
        assert [e for e in results.values() if e is not None] == [], results
        again = _poll(c, 1)  # only the released record comes back, delivered twice now
        assert [(m.value(), m.offset(), m.delivery_count()) for m in again] == [(b"v1", 1, 2)]
        c.acknowledge(again[0], AcknowledgeType.ACCEPT)
        c.commit_sync(30)
        assert len(c.poll(1.0)) == 0  # accepted and rejected records never come again
    finally:
        c.close()
    # the rejected record is in the group's dead-letter topic, key, value and headers kept
    reader = Consumer({"bootstrap.servers": cluster.bootstrap_servers,
                       "auto.offset.reset": "earliest"})
    try:
        reader.assign([TopicPartition("ks-jobs.dlq", 0)])
        dead: list = []
        deadline = time.monotonic() + 30
        while not dead and time.monotonic() < deadline:
            for records in reader.poll(timeout_ms=200).values():
                dead.extend(records)
    finally:
        reader.close()
    assert [(r.key, r.value) for r in dead] == [(b"k2", b"v2")]
    headers = dict(dead[0].headers)
    assert headers["h"] == b"1" and headers["rillet.dlq.group"] == b"ks-workers"
    assert headers["rillet.dlq.topic"] == b"ks-jobs" and headers["rillet.dlq.offset"] == b"2"
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        state = admin.describe_share_group("ks-workers").partitions[TopicPartition("ks-jobs", 0)]
    assert (state.start_offset, state.lag, state.acquired) == (5, 0, 0)


def test_two_kafka_share_consumers_and_a_native_one_share_a_partition(kafka) -> None:
    """A record acquired by one member is delivered to no other while its lock holds; a
    Kafka member that closes holding records releases them at once (its share session
    closes), long before their 120 s locks end; every record is accepted exactly once."""
    cluster, bootstrap = kafka
    _group(cluster, "ks-mixed", share_record_lock_duration_ms=120_000)
    n = 60
    k1, k2 = (_share_consumer(bootstrap, "ks-mixed", "ks-pool",
                              share_acknowledgement_mode="explicit", max_poll_records=10)
              for _ in range(2))
    native = ShareConsumer(bootstrap_servers=cluster.bootstrap_servers, group_id="ks-mixed",
                           max_poll_records=10, share_acknowledgement_mode="explicit")
    try:
        native.subscribe(["ks-pool"])
        with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
            k1.poll(0.5)  # join the group
            k2.poll(0.5)
            wait_until(lambda: len(admin.describe_share_group("ks-mixed").members) == 3,
                       timeout_s=30, what="three members in the share group")
        # batches of 10: ShareFetch v1 acquires whole stored batches (batch_optimized, as
        # Kafka), so one batch of 60 would all go to the first member that fetches
        _produce(cluster, "ks-pool", n, batch=10)
        held1, held2 = _poll(k1, 1), _poll(k2, 1)  # acquired, not acknowledged yet
        held_native: list = []
        deadline = time.monotonic() + 30
        while not held_native and time.monotonic() < deadline:
            held_native = native.poll(timeout_ms=500)
        offsets = [[m.offset() for m in held1], [m.offset() for m in held2],
                   [r.offset for r in held_native]]
        assert all(offsets), offsets  # each member holds records of the one partition
        flat = [o for got in offsets for o in got]
        assert len(flat) == len(set(flat)), offsets  # none held by two members at once
        for m in held1:
            k1.acknowledge(m)
        for r in held_native:
            native.acknowledge(r, "accept")
        k2.close()  # holding its records, unacknowledged
        accepted = offsets[0] + offsets[2]
        again: dict[int, int] = {}  # k2's records, delivered again: offset -> delivery count
        deadline = time.monotonic() + 60  # well within the locks' 120 s
        while len(accepted) < n and time.monotonic() < deadline:
            for m in k1.poll(0.2):
                accepted.append(m.offset())
                again.setdefault(m.offset(), m.delivery_count())
                k1.acknowledge(m)
            for r in native.poll(timeout_ms=200):
                accepted.append(r.offset)
                again.setdefault(r.offset, r.delivery_count)
                native.acknowledge(r, "accept")
        assert sorted(accepted) == list(range(n))  # all of them, each once
        assert {o: again.get(o) for o in offsets[1]} == {o: 2 for o in offsets[1]}
        k1.commit_sync(30)
        native.commit_sync()
    finally:
        k1.close()
        k2.close()
        native.close()


def test_describe_consumer_groups_of_a_kip848_group(kafka) -> None:
    """ConsumerGroupDescribe describes the KIP-848 group; a classic group and an unknown id
    get GROUP_ID_NOT_FOUND from it, so librdkafka describes them with DescribeGroups."""
    from confluent_kafka import Consumer as KafkaConsumer
    from confluent_kafka import ConsumerGroupState, ConsumerGroupType
    from confluent_kafka.admin import AdminClient

    _cluster, bootstrap = kafka
    new = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": "ks-848",
                         "group.protocol": "consumer", **QUIET})
    classic = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": "ks-classic", **QUIET})
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    try:
        new.subscribe(["ks-848"])
        classic.subscribe(["ks-848"])
        deadline = time.monotonic() + 30
        while len(new.assignment()) < 2 or len(classic.assignment()) < 2:
            assert time.monotonic() < deadline, "a member got no assignment"
            new.poll(0.1)
            classic.poll(0.1)
        futures = admin.describe_consumer_groups(["ks-848", "ks-classic", "ks-none"])
        d, c, gone = (futures[g].result(timeout=30) for g in ("ks-848", "ks-classic", "ks-none"))
        assert d.type == ConsumerGroupType.CONSUMER and d.state == ConsumerGroupState.STABLE
        assert not d.is_simple_consumer_group and len(d.members) == 1
        assert {(tp.topic, tp.partition) for tp in d.members[0].assignment.topic_partitions} \
            == {("ks-848", 0), ("ks-848", 1)}
        assert c.type == ConsumerGroupType.CLASSIC and c.state == ConsumerGroupState.STABLE
        assert len(c.members) == 1
        # described by DescribeGroups: librdkafka calls every group it describes so CLASSIC
        assert gone.type == ConsumerGroupType.CLASSIC and gone.state == ConsumerGroupState.DEAD
    finally:
        new.close()
        classic.close()


def _share_body(api_key: int, **fields):
    cls = load_request_schema(api_key, 1)
    return cls(**fields), __import__(cls.__module__, fromlist=["x"])


def test_bad_share_requests_get_kafka_errors_and_the_broker_serves_on(kafka) -> None:
    cluster, bootstrap = kafka
    topic_id = uuid.UUID(cluster_topic_id(cluster, "ks-jobs"))
    member = str(uuid.uuid4())
    wait = i32Timedelta.parse(timedelta(milliseconds=10))

    def fetch(epoch: int, acks=()):
        mod = __import__(load_request_schema(78, 1).__module__, fromlist=["x"])
        part = mod.FetchPartition(partition_index=0, acknowledgement_batches=tuple(
            mod.AcknowledgementBatch(first_offset=o, last_offset=o, acknowledge_types=(1,))
            for o in acks))
        body = mod.ShareFetchRequest(
            group_id="ks-nobody", member_id=member, share_session_epoch=epoch, max_wait=wait,
            min_bytes=1, max_records=10, batch_size=10, forgotten_topics_data=(),
            topics=(mod.FetchTopic(topic_id=topic_id, partitions=(part,)),))
        return _raw(bootstrap, 78, 1, body)

    assert fetch(3).error_code == ErrorCode.share_session_not_found  # no session opened
    assert fetch(0, acks=[0]).error_code == ErrorCode.invalid_request  # acks opening one
    ack_mod = __import__(load_request_schema(79, 1).__module__, fromlist=["x"])
    ack = _raw(bootstrap, 79, 1, ack_mod.ShareAcknowledgeRequest(
        group_id="ks-nobody", member_id=member, share_session_epoch=0, topics=()))
    assert ack.error_code == ErrorCode.invalid_share_session_epoch  # acks cannot open one
    opened = fetch(0)
    assert opened.error_code == ErrorCode.none
    assert fetch(5).error_code == ErrorCode.invalid_share_session_epoch  # the next is 1
    # acknowledging an offset this member never acquired: refused, nothing changes
    refused = fetch(1, acks=[0])
    assert refused.error_code == ErrorCode.none
    part = refused.responses[0].partitions[0]
    assert part.acknowledge_error_code == ErrorCode.invalid_record_state
    hb_mod = __import__(load_request_schema(76, 1).__module__, fromlist=["x"])
    starting = {ErrorCode.coordinator_not_available, ErrorCode.coordinator_load_in_progress,
                ErrorCode.not_coordinator}

    def heartbeat(group: str, epoch: int, topics):
        """The answer once the group coordinator is up (a client's FindCoordinator first
        makes the offsets topic, as librdkafka's does)."""
        find_mod = __import__(load_request_schema(10, 4).__module__, fromlist=["x"])
        _raw(bootstrap, 10, 4, find_mod.FindCoordinatorRequest(key_type=0,
                                                               coordinator_keys=(group,)))
        return wait_until(lambda: (lambda r: r if r.error_code not in starting else None)(
            _raw(bootstrap, 76, 1, hb_mod.ShareGroupHeartbeatRequest(
                group_id=group, member_id=member, member_epoch=epoch,
                subscribed_topic_names=topics))), timeout_s=30, what="the group coordinator")

    assert heartbeat("ks-nobody", 7, None).error_code == ErrorCode.unknown_member_id
    describe_mod = __import__(load_request_schema(77, 1).__module__, fromlist=["x"])
    described = _raw(bootstrap, 77, 1, describe_mod.ShareGroupDescribeRequest(
        group_ids=("ks-nobody",), include_authorized_operations=False))
    assert described.groups[0].error_code == ErrorCode.group_id_not_found
    # a member that joins with a raw heartbeat is described with its assignment
    joined = heartbeat("ks-raw", 0, ("ks-jobs",))
    assert joined.error_code == ErrorCode.none and joined.member_epoch > 0
    described = _raw(bootstrap, 77, 1, describe_mod.ShareGroupDescribeRequest(
        group_ids=("ks-raw",), include_authorized_operations=False)).groups[0]
    assert described.error_code == ErrorCode.none and len(described.members) == 1
    tps = described.members[0].assignment.topic_partitions
    assert [(t.topic_id, t.topic_name, t.partitions) for t in tps] == [
        (topic_id, "ks-jobs", (0,))]
    list_mod = __import__(load_request_schema(16, 5).__module__, fromlist=["x"])
    listed = _raw(bootstrap, 16, 5, list_mod.ListGroupsRequest(states_filter=(),
                                                               types_filter=("share",)))
    assert ("ks-raw", "share", "share") in {(g.group_id, g.protocol_type, g.group_type)
                                             for g in listed.groups}
    assert all(g.group_type == "share" for g in listed.groups)
    assert cluster.pid(cluster.broker_ids[0]) is not None  # the broker is up


def cluster_topic_id(cluster, topic: str) -> str:
    with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
        return admin.describe_topics([topic])[topic].topic_id
