"""Kafka admin clients no one here wrote (confluent-kafka, kafka-python, kcat) against the
KAFKA listener that `rillet cluster up` enables (actors/kafka_admin.py, kafka_configs.py).

One cluster for the module: two brokers started by the real CLI, as a user starts them;
the clients use the bootstrap.servers line it prints."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.cli_helpers import cli_env, run
from tests.support import require_tool, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """(`cluster up` stdout, Kafka bootstrap.servers, env, tmp dir); `cluster down` after."""
    tmp = tmp_path_factory.mktemp("kafka-admin")
    env = cli_env(tmp)
    data = tmp / "home"
    try:
        out = run(["cluster", "up", "--brokers", "2", "--detach",
                   "-c", "controller.quorum.election.timeout.ms=300",
                   "-c", "controller.quorum.fetch.timeout.ms=600",
                   "-c", "broker.heartbeat.interval.ms=200"], env).stdout.decode()
        line = [x for x in out.splitlines() if x.startswith("export KAFKA_BOOTSTRAP_SERVERS=")]
        assert line, out
        yield out, line[0].split("=", 1)[1], env, tmp
    finally:  # SIGKILL: a clean stop would only cost time here
        from rillet.launcher import LocalCluster

        cluster = LocalCluster(data, brokers=0)
        for broker_id in cluster.broker_ids:
            cluster.kill(broker_id)


@pytest.fixture(scope="module")
def confluent(up):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": up[1]})


def _done(futures: dict, timeout: float = 30.0) -> dict:
    """{key: None or the exception} of confluent-kafka's futures."""
    out = {}
    for key, f in futures.items():
        try:
            f.result(timeout=timeout)
            out[key] = None
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out[key] = e
    return out


def _partitions(admin, topic: str, count: int) -> dict:
    """The topic's partitions once the metadata of the broker asked shows ``count``."""
    def seen():
        t = admin.list_topics(topic, timeout=30).topics.get(topic)
        return t.partitions if t is not None and len(t.partitions) == count else None

    return wait_until(seen, 30, f"{topic} with {count} partitions in the metadata")


def _code(error) -> str:
    return error.args[0].name() if error is not None else "NONE"


def test_cluster_up_prints_and_saves_the_kafka_bootstrap_servers(up, confluent) -> None:
    out, bootstrap, env, tmp = up
    addresses = bootstrap.split(",")
    assert len(addresses) == 2 and f"bootstrap.servers={bootstrap}" in out
    assert not set(addresses) & set(
        [x for x in out.splitlines() if x.startswith("export RILLET_BROKERS=")][0]
        .split("=", 1)[1].split(","))  # its own ports, not the native listener's
    profile = json.loads((tmp / "config" / "profile.json").read_text())
    assert profile["kafka_bootstrap_servers"] == bootstrap
    assert f"bootstrap.servers={bootstrap}" in run(["cluster", "status"], env).stdout.decode()
    described = confluent.describe_cluster().result(timeout=30)  # DescribeCluster
    assert sorted(f"{n.host}:{n.port}" for n in described.nodes) == sorted(addresses)
    assert described.controller is not None and described.cluster_id


def test_confluent_create_describe_alter_delete(confluent) -> None:
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ConfigSource,
        NewPartitions,
        NewTopic,
    )

    # validate_only creates nothing; a bad key gets rillet's did-you-mean message
    checked = _done(confluent.create_topics([NewTopic("ck-dry", 2, 1)], validate_only=True))
    assert checked == {"ck-dry": None}
    assert "ck-dry" not in confluent.list_topics(timeout=30).topics
    bad = _done(confluent.create_topics(
        [NewTopic("ck-bad", 1, 1, config={"retention.msx": "1000"})]))["ck-bad"]
    assert _code(bad) == "INVALID_CONFIG" and "did you mean 'retention.ms'" in str(bad)
    assert _code(_done(confluent.create_topics([NewTopic("ck-rf", 1, 5)]))["ck-rf"]) == \
        "INVALID_REPLICATION_FACTOR"

    made = _done(confluent.create_topics(
        [NewTopic("ck-orders", 2, 2, config={"retention.ms": "60000"})]))
    assert made == {"ck-orders": None}
    again = _done(confluent.create_topics([NewTopic("ck-orders", 2, 2)]))["ck-orders"]
    assert _code(again) == "TOPIC_ALREADY_EXISTS"
    # the other broker learns of it a moment later (as in Kafka): poll the metadata
    parts = _partitions(confluent, "ck-orders", 2)
    assert sorted(parts) == [0, 1] and all(len(p.replicas) == 2 for p in parts.values())

    topic = ConfigResource(ConfigResource.Type.TOPIC, "ck-orders")

    def described(ready):  # the configs, once the broker asked knows what ``ready`` wants
        try:
            c = list(confluent.describe_configs([topic]).values())[0].result(timeout=30)
        except Exception:  # noqa: BLE001 - UNKNOWN_TOPIC: that broker learns of it later
            return None
        return c if ready(c) else None

    configs = wait_until(lambda: described(lambda c: True), 30, "ck-orders' configs")
    assert configs["retention.ms"].value == "60000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value

    changes = ConfigResource(ConfigResource.Type.TOPIC, "ck-orders", incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ConfigEntry("segment.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    assert _done(confluent.incremental_alter_configs([changes])) == {changes: None}

    configs = wait_until(lambda: described(
        lambda c: c["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value), 30,
        "the altered configs")
    assert configs["cleanup.policy"].value == "compact,delete"
    assert configs["segment.ms"].value == "3600000"
    typo = ConfigResource(ConfigResource.Type.TOPIC, "ck-orders", incremental_configs=[
        ConfigEntry("segment.mss", "1", incremental_operation=AlterConfigOpType.SET)])
    error = _done(confluent.incremental_alter_configs([typo]))[typo]
    assert _code(error) == "INVALID_CONFIG" and "did you mean 'segment.ms'" in str(error)
    append = ConfigResource(ConfigResource.Type.TOPIC, "ck-orders", incremental_configs=[
        ConfigEntry("segment.ms", "1", incremental_operation=AlterConfigOpType.APPEND)])
    assert _code(_done(confluent.incremental_alter_configs([append]))[append]) == \
        "INVALID_CONFIG"

    broker = ConfigResource(ConfigResource.Type.BROKER, "1")
    bconf = list(confluent.describe_configs([broker]).values())[0].result(timeout=30)
    assert bconf["broker.heartbeat.interval.ms"].value == "200"
    assert bconf["broker.heartbeat.interval.ms"].source == \
        ConfigSource.STATIC_BROKER_CONFIG.value
    assert bconf["num.partitions"].source == ConfigSource.DEFAULT_CONFIG.value

    grown = _done(confluent.create_partitions([NewPartitions("ck-orders", 3)]))
    assert grown == {"ck-orders": None}
    assert len(_partitions(confluent, "ck-orders", 3)) == 3
    shrink = _done(confluent.create_partitions([NewPartitions("ck-orders", 1)]))["ck-orders"]
    assert _code(shrink) == "INVALID_PARTITIONS"

    assert _done(confluent.delete_topics(["ck-orders"])) == {"ck-orders": None}
    wait_until(lambda: "ck-orders" not in confluent.list_topics(timeout=30).topics, 30,
               "ck-orders gone from the metadata")
    gone = _done(confluent.delete_topics(["ck-orders"]))["ck-orders"]
    assert _code(gone) == "UNKNOWN_TOPIC_OR_PART"  # librdkafka's name


def test_kafka_python_admin_core(up) -> None:
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
    from kafka.errors import ElectionNotNeededError, TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=up[1], request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic("kp-t", 1, 1, topic_configs={"retention.ms": "5000"})])
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic("kp-t", 1, 1)])
        # any broker may answer, and the other one learns of a change a moment later
        wait_until(lambda: "kp-t" in admin.list_topics(), 30, "kp-t listed")
        admin.create_partitions({"kp-t": NewPartitions(total_count=2)})
        wait_until(lambda: len(admin.describe_topics(["kp-t"])[0]["partitions"]) == 2, 30,
                   "kp-t with 2 partitions")
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-t",
                                            configs={"segment.ms": "7200000"})])
        # kafka-python's alter_configs re-sends the other overrides (AlterConfigs replaces
        # them all); its describe_configs keeps the non-default ones (config_source)
        def modified():  # None until the broker asked knows of the change
            described = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, "kp-t")])
            values = {k: v["value"] for k, v in described["topic"]["kp-t"].items()}
            return values if "segment.ms" in values else None

        seen = wait_until(modified, 30, "segment.ms altered")  # that answer is checked
        assert seen == {"retention.ms": "5000", "segment.ms": "7200000"}
        cluster = admin.describe_cluster()
        assert len(cluster["brokers"]) == 2 and cluster["controller_id"] in (1, 2)

        # move partition 0 to the other broker: the new replica catches up, then the old
        # one leaves; ListPartitionReassignments shows it only while it is under way
        tp = TopicPartition("kp-t", 0)
        def p0():
            parts = admin.describe_topics(["kp-t"])[0]["partitions"]
            return next(p for p in parts if p["partition_index"] == 0)

        target = [b for b in (1, 2) if b not in p0()["replica_nodes"]]
        assert admin.alter_partition_reassignments({tp: target}) == {tp: None}

        def moved():
            return (p0()["replica_nodes"] == target
                    and tp not in admin.list_partition_reassignments())

        wait_until(moved, 30, "kp-t-0 moved to the other broker")
        elected = admin.elect_leaders(0, {"kp-t": [0]}, raise_errors=False)
        assert elected.replica_election_results[0][1][0][1] == ElectionNotNeededError.errno
        admin.delete_topics(["kp-t"])
        wait_until(lambda: "kp-t" not in admin.list_topics(), 30, "kp-t deleted")
    finally:
        admin.close()


def test_kcat_lists_the_topics(up, confluent) -> None:
    from confluent_kafka.admin import NewTopic

    kcat = require_tool("kcat")
    assert _done(confluent.create_topics([NewTopic("kc-listed", 3, 1)])) == {"kc-listed": None}
    deadline = time.monotonic() + 30
    while True:
        proc = subprocess.run([kcat, "-b", up[1], "-L", "-J"], capture_output=True,
                              timeout=60)
        listed = json.loads(proc.stdout) if proc.returncode == 0 else {}
        topics = {t["topic"]: t for t in listed.get("topics", ())}
        if "kc-listed" in topics or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr
    assert len(topics["kc-listed"]["partitions"]) == 3
    assert len(listed["brokers"]) == 2


def test_the_kafka_ports_are_kept_in_cluster_json(up) -> None:
    """A restart (`cluster up` / `cluster start ID` again) binds the same ports."""
    _out, bootstrap, env, tmp = up
    saved = json.loads((Path(tmp) / "home" / "cluster.json").read_text())
    assert sorted(f"127.0.0.1:{p}" for p in saved["kafka_ports"].values()) == \
        sorted(bootstrap.split(","))


def _kafka_call(address: str, body, cid: int = 9):
    """One request over a plain socket to this address (no client's routing); the response."""
    import io
    import socket
    import struct

    from kio.index import load_response_schema
    from kio.schema.request_header.v2.header import RequestHeader
    from kio.serial import entity_reader, entity_writer

    buf = io.BytesIO()
    entity_writer(RequestHeader)(buf, RequestHeader(
        request_api_key=body.__api_key__, request_api_version=body.__version__,
        correlation_id=cid, client_id="t"))
    entity_writer(type(body))(buf, body)
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(struct.pack(">i", len(buf.getvalue())) + buf.getvalue())
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            data += chunk
    cls = load_response_schema(body.__api_key__, body.__version__)
    header, at = entity_reader(cls.__header_schema__)(data, 4)
    assert header.correlation_id == cid
    return entity_reader(cls)(data, 4 + at)[0]


def test_a_broker_that_is_not_the_controller_forwards_to_it(up, confluent) -> None:
    from datetime import timedelta

    from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
    from kio.schema.errors import ErrorCode
    from kio.static.primitive import i32Timedelta

    cluster = confluent.describe_cluster().result(timeout=30)
    other = next(n for n in cluster.nodes if n.id != cluster.controller.id)
    answer = _kafka_call(f"{other.host}:{other.port}", CreateTopicsRequest(
        topics=(CreatableTopic(name="fwd", num_partitions=1, replication_factor=1,
                               assignments=(), configs=()),),
        timeout=i32Timedelta.parse(timedelta(seconds=30)), validate_only=False))
    (topic,) = answer.topics
    assert topic.error_code == ErrorCode.none and topic.num_partitions == 1, topic
    # answered once the forwarding broker's image had it; the controller had it first
    assert confluent.list_topics("fwd", timeout=30).topics["fwd"].error is None
