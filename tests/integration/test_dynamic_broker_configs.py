"""Dynamic broker configs on a real broker process (issue #21; docs/operations.md, "Dynamic
broker configs"): a cluster-wide default and a per-broker value, changed with the Admin API,
stored in the metadata log, applied by the running broker to its existing partitions, kept
across a restart; a static key refused; the same through the KAFKA listener (confluent-kafka's
IncrementalAlterConfigs / DescribeConfigs on a BROKER resource)."""

from __future__ import annotations

import pytest
from rillet.transport import protocol as P

from rillet.admin import Admin
from rillet.errors import InvalidConfigError
from rillet.launcher import LocalCluster
from rillet.records import NewTopic
from tests.integration.cluster_helpers import batch, wait_until
from tests.integration.conftest import TEST_BROKER_CONFIGS

E = P.ErrorCode
BIG = 5000  # bytes of one record: above a default message.max.bytes of 2000


def _produce(wire, topic: str, value: bytes):
    """One batch; None while the partition is reopening (its leader resigns and comes back)."""
    try:
        part = wire.produce(topic, 0, batch([value]))
    except Exception:  # noqa: BLE001 - a timeout while the broker is busy: poll again
        return None
    if part is None or part.error_code in (E.NOT_LEADER_OR_FOLLOWER,
                                           E.UNKNOWN_TOPIC_OR_PARTITION):
        return None
    return part.error_code


def _produced(wire, topic: str, expected: int) -> bool:
    return _produce(wire, topic, b"x" * BIG) == expected


def _earliest(wire, topic: str) -> int:
    part = wire.list_offset(topic, 0, P.EARLIEST_TIMESTAMP)
    return part.offset if part.error_code == 0 else -1


@pytest.fixture
def cluster(tmp_path):
    """One broker with a KAFKA listener too (as `rillet cluster up` starts it)."""
    cluster = LocalCluster(tmp_path / "cluster", 1, dict(TEST_BROKER_CONFIGS), kafka=True)
    try:
        cluster.start(timeout_s=60)
        yield cluster
    finally:
        cluster.stop(timeout_s=10)


@pytest.mark.timeout(180)
def test_dynamic_broker_configs_apply_live_and_survive_restart(cluster, wire_factory):
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers, "request.timeout.ms": 30000})
    try:
        # a static key is refused, naming why and changing nothing
        with pytest.raises(InvalidConfigError, match="static broker config.*restart"):
            admin.alter_broker_configs(None, set={"num.partitions": "3",
                                                  "log.retention.ms": "1"})
        with pytest.raises(InvalidConfigError, match="did you mean 'log.retention.ms'"):
            admin.alter_broker_configs(1, set={"log.retention.mss": "1"})
        assert admin.describe_broker_configs() == {}

        # topics with no override of their own: several small segments of data
        admin.create_topics([NewTopic("dyn-ret", 1, 1, configs={"segment.bytes": "600"}),
                             NewTopic("dyn-size", 1, 1)])
        wire = wire_factory(cluster)
        for i in range(6):
            wait_until(lambda i=i: _produce(wire, "dyn-ret", b"r%d" % i + b"." * 400) == 0,
                       30, "a record appended")
        assert _earliest(wire, "dyn-ret") == 0

        # a cluster-wide default retention reaches the existing topic, without a restart
        admin.alter_broker_configs(None, set={"log.retention.ms": "1"})
        wait_until(lambda: _earliest(wire, "dyn-ret") > 0, 30,
                   "old segments deleted by the dynamic default log.retention.ms")

        # a default message.max.bytes applies; broker 1's own value wins over it
        assert _produced(wire, "dyn-size", 0)
        admin.alter_broker_configs(None, set={"message.max.bytes": "2000"})
        wait_until(lambda: _produced(wire, "dyn-size", E.MESSAGE_TOO_LARGE), 30,
                   "the default message.max.bytes refusing a 5000-byte record")
        admin.alter_broker_configs(1, set={"message.max.bytes": "100000"})
        wait_until(lambda: _produced(wire, "dyn-size", 0), 30,
                   "broker 1's message.max.bytes winning over the default")
        configs = admin.describe_broker_configs(1)
        assert (configs["message.max.bytes"].value,
                configs["message.max.bytes"].source) == ("100000", "DYNAMIC_BROKER_CONFIG")
        assert (configs["log.retention.ms"].value,
                configs["log.retention.ms"].source) == ("1", "DYNAMIC_DEFAULT_BROKER_CONFIG")
        assert configs["num.partitions"].read_only and not configs["log.retention.ms"].read_only
        assert {k: e.value for k, e in admin.describe_broker_configs().items()} == {
            "log.retention.ms": "1", "message.max.bytes": "2000"}
    finally:
        admin.close()

    # a restart keeps both: they are in the metadata log
    cluster.stop_broker(1)
    cluster.start_broker(1)
    cluster.wait_ready(timeout_s=60)
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers, "request.timeout.ms": 30000})
    try:
        configs = admin.describe_broker_configs(1)
        assert configs["message.max.bytes"].source == "DYNAMIC_BROKER_CONFIG"
        assert configs["log.retention.ms"].source == "DYNAMIC_DEFAULT_BROKER_CONFIG"
        wire = wire_factory(cluster)
        wait_until(lambda: _produced(wire, "dyn-size", 0), 30,
                   "broker 1's message.max.bytes after the restart")
        # removing broker 1's value puts the default back in force
        admin.alter_broker_configs(1, delete=["message.max.bytes"])
        wait_until(lambda: _produced(wire, "dyn-size", E.MESSAGE_TOO_LARGE), 30,
                   "the default message.max.bytes once broker 1's value is removed")
    finally:
        admin.close()

    _kafka_client_alters_broker_configs(cluster)
    _cli_alters_broker_configs(cluster)


def _cli_alters_broker_configs(cluster) -> None:
    """`rillet config alter|describe --broker N | --broker-defaults` (kafka-configs.sh)."""
    from click.testing import CliRunner

    from rillet.cli.main import cli

    def rillet(*args: str):
        return CliRunner().invoke(cli, [*args, "-b", cluster.bootstrap_servers])

    done = rillet("config", "alter", "--broker-defaults", "--set", "log.flush.interval.ms=2000")
    assert done.exit_code == 0, done.output
    assert "Completed updating default config for brokers in the cluster." in done.output
    shown = rillet("config", "describe", "--broker-defaults")
    assert "log.flush.interval.ms  2000   DYNAMIC_DEFAULT_BROKER_CONFIG" in shown.output
    wait_until(lambda: "log.flush.interval.ms  2000" in rillet(
        "config", "describe", "--broker", "1").output, 30, "broker 1 applying the default")
    refused = rillet("config", "alter", "--broker", "1", "--set", "num.partitions=16")
    assert refused.exit_code == 1
    assert "Error: num.partitions is a static broker config" in refused.output
    both = rillet("config", "alter", "--broker", "1", "--broker-defaults", "--set", "a=b")
    assert both.exit_code == 2 and "exactly one of --broker ID and --broker-defaults" in both.output


def _kafka_client_alters_broker_configs(cluster) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ConfigSource,
    )

    kafka = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap_servers})

    def alter(key: str, value: str):
        r = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
        return kafka.incremental_alter_configs([r])[r]

    assert alter("log.roll.ms", "3600000").result(30) is None
    broker = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = list(kafka.describe_configs([broker]).values())[0].result(30)
    assert configs["log.roll.ms"].value == "3600000"
    assert configs["log.roll.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert not configs["log.roll.ms"].is_read_only
    assert configs["log.retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert configs["num.partitions"].is_read_only
    with pytest.raises(Exception, match="INVALID_CONFIG.*static broker config"):
        alter("num.partitions", "9").result(30)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_per_broker_value_applies_on_that_broker_only(cluster_factory, wire_factory):
    """Two brokers, one partition led by each: the cluster-wide default holds on broker 1,
    broker 2's own value on broker 2."""
    from tests.integration.cluster_helpers import FAST, partition_meta

    cluster = cluster_factory(2, FAST)
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers, "request.timeout.ms": 30000})
    try:
        admin.create_topics([NewTopic("dyn-two", 2, 1)])
        leaders = {p: wait_until(lambda p=p: (m := partition_meta(cluster, "dyn-two", p))
                                 and m.leader > 0 and m.leader, 30, "a leader")
                   for p in (0, 1)}
        assert sorted(leaders.values()) == [1, 2], leaders
        wires = {b: wire_factory(cluster, b) for b in (1, 2)}

        def produced(broker: int, expected: int) -> bool:
            p = next(p for p, b in leaders.items() if b == broker)
            try:
                part = wires[broker].produce("dyn-two", p, batch([b"x" * BIG]))
            except Exception:  # noqa: BLE001 - busy: poll again
                return False
            return part is not None and part.error_code == expected

        admin.alter_broker_configs(None, set={"message.max.bytes": "2000"})
        admin.alter_broker_configs(2, set={"message.max.bytes": "100000"})
        wait_until(lambda: produced(1, E.MESSAGE_TOO_LARGE), 30, "broker 1 on the default")
        wait_until(lambda: produced(2, 0), 30, "broker 2 on its own value")
        assert admin.describe_broker_configs(1)["message.max.bytes"].value == "2000"
        assert admin.describe_broker_configs(2)["message.max.bytes"].value == "100000"
    finally:
        admin.close()
