"""Operations on real broker processes (issue #21): DeleteRecords through Admin and the CLI,
replicated to followers; keyless records refused on compacted topics. One three-broker
cluster for the module; each test uses its own topics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cluster_helpers import FAST, call, wait_until
from rillet.logstore.fs import FileSystem
from rillet.logstore.recovery import LOG_START_FILE
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import ProtocolError

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet.cli.main import cli
from rillet.errors import (
    OffsetOutOfRangeError,
    PolicyViolationError,
    RilletError,
    UnknownTopicOrPartitionError,
)
from rillet.launcher import LocalCluster
from tests.integration.cli_helpers import cli_env, run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def c3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("ops3"), 3,
                           {**FAST, "log.retention.check.interval.ms": "500",
                            "listeners": "KAFKA://127.0.0.1:0"})
    try:
        cluster.start(timeout_s=60)
        yield cluster
    finally:
        cluster.stop(timeout_s=10)


@pytest.fixture(scope="module")
def admin(c3) -> Iterator[Admin]:
    with Admin({"bootstrap.servers": c3.bootstrap_servers, "request.timeout.ms": 15000}) as a:
        yield a


def _produce(c3, topic: str, n: int, key=None) -> None:
    with Producer({"bootstrap.servers": c3.bootstrap_servers, "acks": "all",
                   "linger.ms": 0}) as producer:
        for i in range(n):
            producer.send(topic, f"v{i}".encode(), key=key, partition=0)
        producer.flush(30)


def _earliest(c3, topic: str) -> int:
    with Admin({"bootstrap.servers": c3.bootstrap_servers}) as a:
        return a.list_offsets([TopicPartition(topic, 0)], -2)[TopicPartition(topic, 0)]


def _log_start_on(c3, broker_id: int, topic: str) -> int | None:
    value = FileSystem().read_checkpoint(c3.broker_dir(broker_id) / f"{topic}-0" / LOG_START_FILE)
    return value if isinstance(value, int) else None


def _configs_of(admin, topic: str):
    """DescribeConfigs goes to any broker, which may apply a new topic a moment after the
    controller: None until it knows it."""
    try:
        return admin.describe_configs([topic])[topic]
    except UnknownTopicOrPartitionError:
        return None


def _consume_from_earliest(c3, topic: str, until: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": c3.bootstrap_servers,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, 0)])
        offsets: list[int] = []

        def caught_up():
            for records in consumer.poll(500).values():
                offsets.extend(r.offset for r in records)
            return offsets and offsets[-1] >= until - 1

        wait_until(caught_up, 30, f"a consumer to read {topic} up to {until}")
        return offsets
    finally:
        consumer.close()


def test_delete_records_moves_the_log_start_on_every_replica(c3, admin) -> None:
    admin.create_topics([NewTopic("dr", 1, 3)])
    _produce(c3, "dr", 30)
    tp = TopicPartition("dr", 0)
    assert admin.delete_records({tp: 12}) == {tp: 12}
    assert _earliest(c3, "dr") == 12
    # a consumer from "earliest" starts at the new log start, not at 0
    assert _consume_from_earliest(c3, "dr", 30) == list(range(12, 30))
    # the followers take the leader's log start from their fetches (durably)
    for b in c3.broker_ids:
        wait_until(lambda b=b: _log_start_on(c3, b, "dr") == 12, 30,
                   f"broker {b} to have log start 12")
    # again, at the high watermark (-1), with more records: followers follow again
    _produce(c3, "dr", 5)
    assert admin.delete_records({("dr", 0): -1}) == {tp: 35}
    for b in c3.broker_ids:
        wait_until(lambda b=b: _log_start_on(c3, b, "dr") == 35, 30,
                   f"broker {b} to have log start 35")
    # a lower offset changes nothing
    assert admin.delete_records({tp: 3}) == {tp: 35}


def test_delete_records_refusals_change_nothing(c3, admin) -> None:
    admin.create_topics([NewTopic("dr-bad", 1, 1),
                         NewTopic("dr-compact", 1, 1, configs={"cleanup.policy": "compact"})])
    _produce(c3, "dr-bad", 5)
    tp = TopicPartition("dr-bad", 0)
    with pytest.raises(OffsetOutOfRangeError, match="high watermark 5"):
        admin.delete_records({tp: 6})
    assert _earliest(c3, "dr-bad") == 0
    results = admin.delete_records({tp: 6, ("dr-compact", 0): 0}, raise_errors=False)
    assert isinstance(results[tp], OffsetOutOfRangeError)
    assert isinstance(results[TopicPartition("dr-compact", 0)], PolicyViolationError)
    internal = call(c3, 1, P.DeleteRecordsRequest(topics=(P.DeleteRecordsTopic(
        name="__consumer_offsets", partitions=(P.DeleteRecordsPartition(partition=0, offset=1),)),)))
    refused = internal.topics[0].partitions[0]
    assert refused.error_code == P.ErrorCode.INVALID_TOPIC_EXCEPTION, refused
    assert "internal topic" in refused.error_message
    with pytest.raises(ValueError, match="negative"):
        admin.delete_records({tp: -2})
    # the raw wire: a partition named twice is one clear error, the broker stays up
    twice = P.DeleteRecordsRequest(topics=(P.DeleteRecordsTopic(name="dr-bad", partitions=(
        P.DeleteRecordsPartition(partition=0, offset=1),
        P.DeleteRecordsPartition(partition=0, offset=2))),))
    leader = admin.describe_topics(["dr-bad"])["dr-bad"].partitions[0].leader
    with ClientEndpoint() as endpoint, pytest.raises(ProtocolError) as refused_twice:
        endpoint.request(c3.address(leader), twice, 5000).result(10)
    assert refused_twice.value.code == P.ErrorCode.INVALID_REQUEST
    assert _earliest(c3, "dr-bad") == 0


def test_rillet_delete_records_command(c3, admin, tmp_path: Path) -> None:
    admin.create_topics([NewTopic("dr-cli", 2, 1)])
    with Producer({"bootstrap.servers": c3.bootstrap_servers, "linger.ms": 0}) as producer:
        for i in range(10):
            producer.send("dr-cli", b"x", partition=i % 2)
        producer.flush(30)
    env = {**cli_env(tmp_path), "RILLET_BROKERS": c3.bootstrap_servers}
    out = run(["delete-records", "--topic", "dr-cli", "--partition", "0", "--offset", "2"], env)
    assert out.stdout.decode().splitlines() == [
        "Executing records delete operation", "Records delete operation completed:",
        "partition: dr-cli-0\tlow_watermark: 2"]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": "dr-cli", "partition": 1, "offset": -1},
        {"topic": "dr-cli", "partition": 0, "offset": 99}]}))
    # the same command in-process (a subprocess costs ~1.5 s of imports on a loaded machine)
    runner = CliRunner()
    args = ["delete-records", "--offset-json-file", str(plan), "-b", c3.bootstrap_servers]
    out = runner.invoke(cli, args)
    assert out.exit_code == 1
    assert "partition: dr-cli-1\tlow_watermark: 5" in out.stdout
    assert "partition: dr-cli-0\terror: " in out.stderr
    assert "high watermark 5" in out.stderr
    plan.write_text('{"partitions": [{"topic": "dr-cli", "partition": -1, "offset": 1}]}')
    bad = runner.invoke(cli, args)
    assert bad.exit_code == 2 and "partitions[0]" in bad.stderr


def test_a_compacted_topic_refuses_keyless_records(c3, admin) -> None:
    """Kafka's rule: INVALID_RECORD "Compacted topic cannot accept message without key";
    nothing of the refused batch is written (issue #21: it was accepted, then kept forever
    by the cleaner's null-key handling)."""
    admin.create_topics([NewTopic("keyed-only", 1, 1, configs={"cleanup.policy": "compact"})])
    with Producer({"bootstrap.servers": c3.bootstrap_servers, "linger.ms": 0}) as producer:
        with pytest.raises(RilletError, match="without key") as refused:
            producer.send("keyed-only", b"no key").get(15)
        assert refused.value.code == P.ErrorCode.INVALID_RECORD
        assert producer.send("keyed-only", b"v", key=b"k").get(15).offset == 0
    latest = admin.list_offsets([TopicPartition("keyed-only", 0)])
    assert latest == {TopicPartition("keyed-only", 0): 1}


def test_max_compaction_lag_gets_a_log_cleaned_that_its_ratio_never_would(c3, admin) -> None:
    """min.cleanable.dirty.ratio=1.0: never dirty enough (Kafka's test is strictly above);
    max.compaction.lag.ms=1000 rolls the active segment and makes the log cleanable once a
    record waited 1 s. The broker's housekeeping (every 500 ms here) then compacts it."""
    admin.create_topics([NewTopic("lagged", 1, 1, configs={
        "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "1.0",
        "max.compaction.lag.ms": "1000"})])
    described = wait_until(lambda: _configs_of(admin, "lagged"), 15, "every broker to know it")
    assert described["max.compaction.lag.ms"].value == "1000"
    assert described["min.cleanable.dirty.ratio"].value == "1.0"
    tp = TopicPartition("lagged", 0)
    with Producer({"bootstrap.servers": c3.bootstrap_servers, "linger.ms": 0}) as producer:
        first = producer.send("lagged", b"v0", key=b"k0").get(15).timestamp
        for i in range(1, 20):
            producer.send("lagged", b"v%d" % i, key=b"k%d" % (i % 2)).get(15)
        # the lag is a duration of the wall clock: wait for it to pass, then a record rolls
        # the active segment (it is older than max.compaction.lag.ms)
        wait_until(lambda: time.time() * 1000 - first > 1200, 10, "1.2 s to pass")
        producer.send("lagged", b"last", key=b"k0").get(15)

    def compacted():
        with Consumer({"bootstrap.servers": c3.bootstrap_servers,
                       "auto.offset.reset": "earliest", "consumer.timeout.ms": 1000}) as cons:
            cons.assign([tp])
            return len(list(cons)) < 20
    wait_until(compacted, 30, "the lagged log to be compacted")


def test_describe_log_dirs_on_every_broker(c3, admin) -> None:
    admin.create_topics([NewTopic("ld", 1, 3), NewTopic("ld-other", 1, 3)])
    _produce(c3, "ld", 5)
    tp = TopicPartition("ld", 0)

    def replicated():
        found = admin.describe_log_dirs(topics=["ld"])
        ends = {b: [r.log_end_offset for d in dirs.values()
                    for t, r in d.replica_infos.items() if t == tp]
                for b, dirs in found.items()}
        return found if ends == {b: [5] for b in c3.broker_ids} else None

    found = wait_until(replicated, 30, "every replica of ld-0 to hold 5 records")
    for b in c3.broker_ids:
        (path, d), = found[b].items()
        assert path == str(c3.broker_dir(b).absolute()) and d.error is None
        assert 0 < d.usable_bytes <= d.total_bytes
        assert set(d.replica_infos) == {tp}  # --topic-list: only ld
        info = d.replica_infos[tp]
        assert info.size > 0 and info.offset_lag == 0 and info.log_start_offset == 0
    one = admin.describe_log_dirs([c3.broker_ids[0]])
    assert list(one) == [c3.broker_ids[0]]
    (d,) = one[c3.broker_ids[0]].values()
    assert {tp, TopicPartition("ld-other", 0)} <= set(d.replica_infos)  # every topic
    out = CliRunner().invoke(cli, ["log-dirs", "describe", "--topic-list", "ld", "--format",
                                   "json", "-b", c3.bootstrap_servers])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert [b["broker"] for b in doc["brokers"]] == c3.broker_ids
    part = doc["brokers"][0]["logDirs"][0]["partitions"][0]
    assert part["partition"] == "ld-0" and part["size"] > 0 and part["offsetLag"] == 0


def test_list_reassignments_and_describe_all(c3, admin) -> None:
    admin.create_topics([NewTopic("desc-all", 1, 1, configs={"retention.ms": "60000"})])
    assert admin.list_partition_reassignments() == {}
    runner = CliRunner()
    b = ["-b", c3.bootstrap_servers]
    out = runner.invoke(cli, ["topic", "reassignments", *b])
    assert out.exit_code == 0 and out.stdout == "No partition reassignments found.\n"
    missing = runner.invoke(cli, ["topic", "reassignments", "no-such-topic", *b])
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    # describe reads configs from any broker, which applies a new topic a moment after the
    # controller: wait for one that knows it
    plain = wait_until(lambda: (r := runner.invoke(cli, ["topic", "describe", "desc-all", *b]))
                       .exit_code == 0 and r, 15, "every broker to know desc-all")
    assert plain.stdout.splitlines()[0].endswith("Configs: retention.ms=60000")
    every = wait_until(lambda: (r := runner.invoke(cli, ["topic", "describe", "--all", *b]))
                       .exit_code == 0 and r, 15, "describe --all")
    line = next(x for x in every.stdout.splitlines() if x.startswith("Topic: desc-all\t"))
    configs = dict(kv.split("=", 1) for kv in line.split("Configs: ")[1].split(","))
    assert configs["retention.ms"] == "60000" and configs["segment.bytes"] == str(1 << 30)
    assert configs["min.cleanable.dirty.ratio"] == "0.5"
    described = {x.split("\t")[0][len("Topic: "):] for x in every.stdout.splitlines()
                 if x.startswith("Topic: ")}
    assert described == set(admin.list_topics(include_internal=True))  # every topic
    both = runner.invoke(cli, ["topic", "describe", "--all", "desc-all", *b])
    assert both.exit_code == 2


def test_kafka_admin_delete_records(c3, admin) -> None:
    """confluent-kafka's AdminClient.delete_records (librdkafka, DeleteRecords v2 through the
    KAFKA listener): the same rules as the native request, and the native side sees it."""
    from confluent_kafka import KafkaException
    from confluent_kafka import TopicPartition as KafkaTopicPartition
    from confluent_kafka.admin import AdminClient

    admin.create_topics([NewTopic("kdr", 1, 3)])
    _produce(c3, "kdr", 10)
    files = [c3.broker_dir(b) / "kafka-listener" for b in c3.broker_ids]  # written at start
    wait_until(lambda: all(f.exists() for f in files), 30, "the KAFKA listeners' addresses")
    kafka = AdminClient({"bootstrap.servers": ",".join(f.read_text().strip() for f in files)})
    done = kafka.delete_records([KafkaTopicPartition("kdr", 0, 4)], request_timeout=30)
    result = done[KafkaTopicPartition("kdr", 0, 4)].result(60)
    assert result.low_watermark == 4
    assert _earliest(c3, "kdr") == 4
    above = kafka.delete_records([KafkaTopicPartition("kdr", 0, 11)], request_timeout=30)
    with pytest.raises(KafkaException, match="OFFSET_OUT_OF_RANGE"):
        list(above.values())[0].result(60)
    assert _earliest(c3, "kdr") == 4
    del kafka, done, above  # librdkafka's threads stop with the last reference
