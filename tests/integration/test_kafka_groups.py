"""Kafka clients' consumer groups on rillet's KAFKA listener (actors/kafka_groups.py,
actors/kafka_offsets.py, actors/group_classic.py): real confluent-kafka and kafka-python
consumers in classic groups (client-side assignment) against a real broker process; their
offsets shared with rillet's native tools. One broker for the module."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from rillet.admin import Admin, NewTopic
from rillet.records import TopicPartition as NativeTP
from tests.integration.cli_helpers import cli_env, run
from tests.integration.conftest import FAST_CLUSTER_CONFIGS, TEST_BROKER_CONFIGS, kafka_bootstrap
from tests.support import require_tool, wait_until

pytestmark = pytest.mark.timeout(120)
KAFKA_CONFIGS = {  # the shared `kafka` fixture (tests/integration/conftest.py)
    **TEST_BROKER_CONFIGS,
    "offsets.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "300",
    "group.consumer.heartbeat.interval.ms": "500",  # KIP-848 members
}
KAFKA_TOPICS = (("t6", 6), ("t2", 2), ("tp", 2), ("tjs", 4), ("t848", 4))


def confluent_member(bootstrap: str, group: str, topic: str, owned: dict, name: str):
    from confluent_kafka import Consumer

    def on_assign(_c, parts):
        owned[name] = {(p.topic, p.partition) for p in parts}

    def on_revoke(_c, _parts):
        owned[name] = set()

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 10000,
                  "heartbeat.interval.ms": 500, "log_level": 3})
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    return c


def settle(consumers: dict, owned: dict, partitions: set, timeout_s: float = 60) -> None:
    """Poll every consumer until each partition is owned by exactly one of them and each
    owns some (the rebalance settled)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for c in consumers.values():
            c.poll(0.05)
        got = [tp for name in consumers for tp in owned.get(name, ())]
        if sorted(got) == sorted(partitions) and all(owned.get(n) for n in consumers):
            return
        assert time.monotonic() < deadline, f"not settled: {owned}"


def test_confluent_group_of_three_rebalances_when_one_leaves(kafka) -> None:
    from confluent_kafka.admin import AdminClient

    _cluster, bootstrap = kafka
    owned: dict[str, set] = {}
    names = ("c1", "c2", "c3")
    consumers = {n: confluent_member(bootstrap, "g3", "t6", owned, n) for n in names}
    partitions = {("t6", p) for p in range(6)}
    try:
        settle(consumers, owned, partitions)
        assert sorted(len(owned[n]) for n in names) == [2, 2, 2]
        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: its futures need it
        described = admin.describe_consumer_groups(["g3"])["g3"].result(timeout=30)
        assert str(described.state).endswith("STABLE") and len(described.members) == 3
        assert {(tp.topic, tp.partition) for m in described.members
                for tp in m.assignment.topic_partitions} == partitions
        consumers.pop("c3").close()  # LeaveGroup: the other two take its partitions
        owned.pop("c3")
        settle(consumers, owned, partitions)
        assert sorted(len(owned[n]) for n in consumers) == [3, 3]
    finally:
        for c in consumers.values():
            c.close()


def consume(consumer, n: int, timeout_s: float = 60) -> list[tuple[int, int]]:
    """(partition, offset) of the next ``n`` records ``consumer`` gets."""
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        assert time.monotonic() < deadline, f"consumed only {got}"
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            got.append((m.partition(), m.offset()))
    return got


def test_committed_offsets_survive_a_restart_and_show_in_rillet_group_describe(
        kafka, tmp_path) -> None:
    from confluent_kafka import Producer, TopicPartition

    cluster, bootstrap = kafka
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for i in range(10):
        producer.produce("t2", value=f"v{i}".encode(), partition=i % 2)
    assert producer.flush(30) == 0
    owned: dict[str, set] = {}
    first = confluent_member(bootstrap, "gc", "t2", owned, "a")
    try:
        before = consume(first, 6)
        first.commit(asynchronous=False)  # the positions: the next offset of each
    finally:
        first.close()
    committed = {p: max((o + 1 for q, o in before if q == p), default=0) for p in (0, 1)}
    again = confluent_member(bootstrap, "gc", "t2", owned, "b")
    try:
        after = consume(again, 4)
        # it resumes at the committed offsets: nothing consumed twice, nothing skipped
        assert sorted(before + after) == [(p, o) for p in (0, 1) for o in range(5)]
        assert {p: min((o for q, o in after if q == p), default=5) for p in (0, 1)} == committed
        got = again.committed([TopicPartition("t2", 0), TopicPartition("t2", 1)], timeout=30)
        assert {tp.partition: tp.offset for tp in got} == committed
        env = cli_env(tmp_path)
        out = run(["group", "describe", "gc", "--bootstrap-server",
                   cluster.bootstrap_servers], env).stdout.decode()
        rows = {tuple(line.split()[1:6]) for line in out.splitlines()[1:]}
        assert {("t2", str(p), str(committed[p]), "5", str(5 - committed[p]))
                for p in (0, 1)} <= rows, out
        assert {line.split()[-1] for line in out.splitlines()[1:]} == {"b"}, out  # CLIENT-ID
        admin = Admin({"bootstrap.servers": cluster.bootstrap_servers})
        try:
            [member] = admin.describe_groups(["gc"])["gc"].members  # its partitions, decoded
            assert sorted(member.assignment) == [NativeTP("t2", 0), NativeTP("t2", 1)]
        finally:
            admin.close()
    finally:
        again.close()


def test_kafka_python_group_admin_and_native_commits(kafka) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

    cluster, bootstrap = kafka
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(6):
        producer.send("tp", value=f"v{i}".encode(), partition=i % 2)
    producer.flush(timeout=30)
    producer.close()
    native = Admin({"bootstrap.servers": cluster.bootstrap_servers})
    consumer = kadmin = None
    try:
        native.alter_consumer_group_offsets("gk", {NativeTP("tp", 0): 1})  # rillet commits
        consumer = KafkaConsumer("tp", bootstrap_servers=bootstrap, group_id="gk",
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 session_timeout_ms=10000, heartbeat_interval_ms=500,
                                 request_timeout_ms=30000)
        kadmin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
        got: list[tuple[int, int]] = []
        deadline = time.monotonic() + 60
        while len(got) < 5:
            for records in consumer.poll(timeout_ms=200).values():
                got += [(r.partition, r.offset) for r in records]
            assert time.monotonic() < deadline, f"kafka-python consumed only {got}"
        # ... and the Kafka consumer started where rillet's commit said (partition 0 at 1)
        assert sorted(got) == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
        consumer.commit()
        assert {g["group_id"]: g["group_state"] for g in kadmin.list_groups()}["gk"] == "Stable"
        d = kadmin.describe_groups(["gk"])["gk"]
        assert d["group_state"] == "Stable" and len(d["members"]) == 1, d
        # OffsetFetch v8: two groups in one request
        both = kadmin.list_group_offsets(["gk", "nobody"])
        assert {tp.partition: o.offset for tp, o in both["gk"].items()} == {0: 3, 1: 3}
        assert both["nobody"] == {}
        assert kadmin.delete_groups(["gk"]) == {"gk": "NonEmptyGroupError"}
        refused = kadmin.delete_group_offsets("gk", [TopicPartition("tp", 0)])
        assert refused[TopicPartition("tp", 0)].__name__ == "GroupSubscribedToTopicError"
        # rillet reads the Kafka client's commit
        assert native.list_consumer_group_offsets("gk") == {NativeTP("tp", 0): 3,
                                                            NativeTP("tp", 1): 3}
        consumer.close()  # LeaveGroup: the group is Empty, its offsets stay
        d = kadmin.describe_groups(["gk"])["gk"]
        assert d["group_state"] == "Empty" and d["members"] == [], d
        assert kadmin.delete_groups(["gk"]) == {"gk": "OK"}
        assert "gk" not in {g["group_id"] for g in kadmin.list_groups()}
        assert native.list_consumer_group_offsets("gk") == {}
    finally:
        native.close()
        if consumer is not None:
            consumer.close()
        if kadmin is not None:
            kadmin.close()


def test_kafkajs_produces_and_consumes_in_a_group_of_two(kafka) -> None:
    node = require_tool("node")
    script = Path(__file__).parents[1] / "tools" / "kafkajs" / "group.js"
    require_tool("kafkajs", str(script.parent / "node_modules" / "kafkajs"))
    cluster, bootstrap = kafka
    proc = subprocess.run([node, str(script), bootstrap, "tjs", "gjs", "40"],
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["consumed"] == 40 and out["duplicates"] == 0, out
    members = [sorted(ps) for ps in out["assigned"].values()]
    assert sorted(p for ps in members for p in ps) == [0, 1, 2, 3], out  # each exactly once
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers})
    try:
        ends = admin.list_offsets([NativeTP("tjs", p) for p in range(4)])
        committed = admin.list_consumer_group_offsets("gjs")
    finally:
        admin.close()
    assert sum(ends.values()) == 40
    assert {tp.partition: o for tp, o in committed.items()} == {
        tp.partition: o for tp, o in ends.items()} == {int(p): o for p, o in
                                                       out["committed"].items()}


def test_confluent_kip848_consumers_share_a_native_group(kafka, tmp_path) -> None:
    """librdkafka's new protocol (group.protocol=consumer, ConsumerGroupHeartbeat): its
    members are assigned by the broker in rillet's native groups, incrementally."""
    from confluent_kafka import Consumer, Producer

    cluster, bootstrap = kafka
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for i in range(20):
        producer.produce("t848", value=f"v{i}".encode(), partition=i % 4)
    assert producer.flush(30) == 0
    owned: dict[str, set] = {"n1": set(), "n2": set()}
    seen: list[tuple[int, int]] = []

    def member(name: str):
        def on_assign(_c, parts):  # incremental: what is added
            owned[name] |= {p.partition for p in parts}

        def on_revoke(_c, parts):
            owned[name] -= {p.partition for p in parts}

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g848", "client.id": name,
                      "group.protocol": "consumer", "auto.offset.reset": "earliest",
                      "log_level": 3})
        c.subscribe(["t848"], on_assign=on_assign, on_revoke=on_revoke)
        return c

    consumers = [member("n1"), member("n2")]
    try:
        deadline = time.monotonic() + 60
        while not (len(seen) >= 20 and owned["n1"] and owned["n2"]
                   and sorted(owned["n1"] | owned["n2"]) == [0, 1, 2, 3]
                   and not owned["n1"] & owned["n2"]):
            assert time.monotonic() < deadline, (owned, seen)
            for c in consumers:
                m = c.poll(0.05)
                if m is not None and m.error() is None:
                    seen.append((m.partition(), m.offset()))
        assert sorted(set(seen)) == [(p, o) for p in range(4) for o in range(5)]
        for c in consumers:
            c.commit(asynchronous=False)
        out = run(["group", "describe", "g848", "--members", "--bootstrap-server",
                   cluster.bootstrap_servers], cli_env(tmp_path)).stdout.decode()
        assert {"n1", "n2"} <= set(out.split()), out  # native members, by client id
    finally:
        for c in consumers:
            c.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_classic_group_carries_on_through_its_coordinators_failover(cluster_factory) -> None:
    """kill -9 the broker coordinating a confluent-kafka group: the new coordinator reloads
    the group from __consumer_offsets, so its members carry on in the same generation (no
    rebalance), with their committed offsets, and consume what is produced after."""
    from confluent_kafka import Producer

    cluster = cluster_factory(3, {**FAST_CLUSTER_CONFIGS, "listeners": "KAFKA://127.0.0.1:0",
                                  **KAFKA_CONFIGS})
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers})
    try:
        admin.create_topics([NewTopic("tf", 2, 3)])
        bootstrap = kafka_bootstrap(cluster)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 3})
        owned: dict[str, set] = {}
        consumers = {n: confluent_member(bootstrap, "gf", "tf", owned, n) for n in ("f1", "f2")}
        try:
            # the group settles before there is anything to read: each member then reads
            # (and commits) its own partition; records read before a late split moved a
            # partition came again to its new owner, and a member left with nothing read
            # had nothing to commit (_NO_OFFSET on a loaded machine)
            settle(consumers, owned, {("tf", 0), ("tf", 1)}, timeout_s=90)
            for i in range(10):
                producer.produce("tf", value=f"a{i}".encode(), partition=i % 2)
            assert producer.flush(30) == 0
            seen: list = []
            deadline = time.monotonic() + 90
            while len(seen) < 10:
                assert time.monotonic() < deadline, (owned, seen)
                for c in consumers.values():
                    m = c.poll(0.05)
                    if m is not None and m.error() is None:
                        seen.append(m.value())
            for c in consumers.values():
                c.commit(asynchronous=False)
            before = admin.describe_groups(["gf"])["gf"]
            assert before.state == "Stable" and len(before.members) == 2, before
            leader = cluster_coordinator(cluster, admin, "gf")
            cluster.kill(leader)
            for i in range(10):
                producer.produce("tf", value=f"b{i}".encode(), partition=i % 2)
            assert producer.flush(60) == 0
            deadline = time.monotonic() + 120
            while len(seen) < 20:
                assert time.monotonic() < deadline, (owned, seen)
                for c in consumers.values():
                    m = c.poll(0.05)
                    if m is not None and m.error() is None:
                        seen.append(m.value())
            assert sorted(seen) == sorted([f"a{i}".encode() for i in range(10)]
                                          + [f"b{i}".encode() for i in range(10)])
            after = admin.describe_groups(["gf"])["gf"]
            assert after.coordinator != before.coordinator, (before, after)
            # reloaded, not rebuilt by a rebalance: same generation, same member ids
            assert after.state == "Stable" and after.group_epoch == before.group_epoch, (
                before, after)
            assert {m.member_id for m in after.members} == {
                m.member_id for m in before.members}, (before, after)
            committed = admin.list_consumer_group_offsets("gf")
            assert sum(committed.values()) == 10  # committed before the failover, kept
        finally:
            for c in consumers.values():
                c.close()
    finally:
        admin.close()


def cluster_coordinator(cluster, admin, group: str) -> int:
    """The broker id leading the group's __consumer_offsets partition (its coordinator)."""
    from rillet.actors.group_locate import partition_for

    topic = admin.describe_topics(["__consumer_offsets"])["__consumer_offsets"]
    partition = partition_for(group, len(topic.partitions))
    return next(p.leader for p in topic.partitions if p.partition == partition)


def test_bad_group_requests_get_kafkas_errors_on_a_connection_that_stays_open(kafka) -> None:
    """Direct protocol requests (kio's codecs, no client library smoothing anything over)."""
    import io
    import socket
    import struct
    from datetime import timedelta

    from kio.schema.errors import ErrorCode
    from kio.schema.find_coordinator.v4 import request as fc_req
    from kio.schema.find_coordinator.v4 import response as fc_resp
    from kio.schema.heartbeat.v4 import request as hb_req
    from kio.schema.heartbeat.v4 import response as hb_resp
    from kio.schema.join_group.v9 import request as jg_req
    from kio.schema.join_group.v9 import response as jg_resp
    from kio.schema.request_header.v2.header import RequestHeader
    from kio.schema.response_header.v1.header import ResponseHeader
    from kio.schema.sync_group.v5 import request as sg_req
    from kio.schema.sync_group.v5 import response as sg_resp
    from kio.serial import entity_reader, entity_writer
    from kio.static.primitive import i32Timedelta

    _cluster, address = kafka
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)

    def call(body, response_cls, cid=[0]):  # noqa: B006 - a counter
        cid[0] += 1
        buf = io.BytesIO()
        entity_writer(RequestHeader)(buf, RequestHeader(
            request_api_key=body.__api_key__, request_api_version=body.__version__,
            correlation_id=cid[0], client_id="raw"))
        entity_writer(type(body))(buf, body)
        sock.sendall(struct.pack(">i", len(buf.getvalue())) + buf.getvalue())
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "the broker closed the connection"
            data += chunk
        frame = data[4:]
        header, at = entity_reader(ResponseHeader)(frame, 0)
        assert header.correlation_id == cid[0]
        response, used = entity_reader(response_cls)(frame, at)
        assert at + used == len(frame)
        return response

    def join(session_ms: int, protocols):
        return call(jg_req.JoinGroupRequest(
            group_id="raw", session_timeout=i32Timedelta.parse(timedelta(milliseconds=session_ms)),
            rebalance_timeout=i32Timedelta.parse(timedelta(milliseconds=10_000)), member_id="",
            protocol_type="consumer", protocols=protocols), jg_resp.JoinGroupResponse)

    found = call(fc_req.FindCoordinatorRequest(key_type=7, coordinator_keys=("raw",)),
                 fc_resp.FindCoordinatorResponse)
    assert [c.error_code for c in found.coordinators] == [ErrorCode.invalid_request]

    def located():  # as a client does: until __consumer_offsets exists and is led
        found = call(fc_req.FindCoordinatorRequest(key_type=0, coordinator_keys=("raw", "x")),
                     fc_resp.FindCoordinatorResponse)
        return [(c.error_code, f"{c.host}:{c.port}") for c in found.coordinators]

    wait_until(lambda: located() == [(ErrorCode.none, address)] * 2, timeout_s=30,
               what="the group coordinator")
    good = (jg_req.JoinGroupRequestProtocol(name="range", metadata=b"\x00"),)
    assert join(1, good).error_code == ErrorCode.invalid_session_timeout
    assert join(10_000, ()).error_code == ErrorCode.inconsistent_group_protocol
    first = join(10_000, good)
    assert first.error_code == ErrorCode.member_id_required and first.member_id
    hb = call(hb_req.HeartbeatRequest(group_id="raw", generation_id=1, member_id="nobody"),
              hb_resp.HeartbeatResponse)
    assert hb.error_code == ErrorCode.unknown_member_id
    sync = call(sg_req.SyncGroupRequest(group_id="nowhere", generation_id=7, member_id="x",
                                        assignments=()), sg_resp.SyncGroupResponse)
    assert sync.error_code == ErrorCode.unknown_member_id
    sock.close()
