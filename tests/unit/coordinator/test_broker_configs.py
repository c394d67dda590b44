"""Dynamic broker configs (coordinator/broker_configs.py, actors/dynamic_configs.py): the
records replayed into the image and its snapshot, the controller's decision on a BROKER
resource, the layering (per broker over the cluster-wide default over static), and what a
broker does with a change: every accepted key reaches its partitions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rillet.actors import dynamic_configs as dc
from rillet.actors.configs import (
    BROKER_DEFAULTS,
    BROKER_TOPIC_SYNONYMS,
    TOPIC_DEFAULTS,
    log_config,
    validate_broker_configs,
)
from rillet.coordinator import broker_configs as bc
from rillet.coordinator import metadata as md
from rillet.coordinator.control import topics as ct
from rillet.coordinator.control.delta import local_changes
from rillet.transport import protocol as P


def _alter(image, name, changes, validate_only=False):
    res = P.AlterConfigsResource(
        resource_type=P.ConfigResourceType.BROKER, resource_name=name,
        configs=tuple(P.AlterableConfig(name=k, value=v,
                                        op=P.AlterConfigOp.SET if v is not None
                                        else P.AlterConfigOp.DELETE)
                      for k, v in changes.items()))
    return ct.alter_configs(image, [res], validate_only=validate_only,
                            validate_configs=lambda c: None,
                            validate_broker_configs=dc.validate)


def test_broker_configs_are_records_replayed_and_snapshotted():
    image = md.MetadataImage()
    r = _alter(image, "", {"log.retention.ms": "3600000"})
    assert r.response[0].error == "NONE"
    image = md.replay(r.records, image)
    image = md.replay(_alter(image, "02", {"log.retention.ms": "60000"}).records, image)
    assert image.broker_configs == {"": {"log.retention.ms": "3600000"},
                                    "2": {"log.retention.ms": "60000"}}
    # the metadata log's JSON form and a snapshot rebuild the same image
    entry = md.encode_records(md.image_records(image))
    assert md.replay(md.decode_records(entry)).broker_configs == image.broker_configs
    # a delete removes the value, and an emptied resource
    image = md.replay(_alter(image, "2", {"log.retention.ms": None}).records, image)
    assert image.broker_configs == {"": {"log.retention.ms": "3600000"}}
    # validate_only keeps nothing; an unchanged value needs no record
    assert _alter(image, "", {"log.retention.ms": "1"}, validate_only=True).records == []
    assert _alter(image, "", {"log.retention.ms": "3600000"}).records == []


@pytest.mark.parametrize(("name", "changes", "message"), [
    ("", {"num.partitions": "3"}, "num.partitions is a static broker config"),
    ("1", {"listeners": "CLIENT://0.0.0.0:9092"}, "restart"),
    ("1", {"log.retention.mss": "1"}, "did you mean 'log.retention.ms'"),
    ("1", {"log.retention.ms": "soon"}, "is not an integer"),
    ("1", {"log.cleanup.policy": "forever"}, "cleanup.policy"),
    ("1", {"min.insync.replicas": "0"}, "min.insync.replicas"),
    ("x", {"log.retention.ms": "1"}, "a broker id, or ''"),
])
def test_static_unknown_and_bad_values_are_refused_all_or_none(name, changes, message):
    image = md.MetadataImage()
    r = _alter(image, name, {"log.segment.bytes": "1048576", **changes})
    assert r.response[0].error == "INVALID_CONFIG"
    assert message in r.response[0].message
    assert r.records == []


def test_a_broker_value_wins_over_the_default_which_wins_over_static():
    configs = {"": {"log.retention.ms": "100", "log.roll.ms": "200"},
               "2": {"log.retention.ms": "1"}}
    static = {**BROKER_DEFAULTS, "log.roll.ms": "300", "log.segment.bytes": "4096"}
    two = bc.effective(static, configs, 2)
    assert (two["log.retention.ms"], two["log.roll.ms"], two["log.segment.bytes"]) == (
        "1", "200", "4096")
    assert bc.effective(static, configs, 1)["log.retention.ms"] == "100"
    sources = {k: bc.source_of(k, static, BROKER_DEFAULTS, configs, 2)
               for k in ("log.retention.ms", "log.roll.ms", "log.segment.bytes", "num.partitions")}
    assert sources == {"log.retention.ms": bc.DYNAMIC_BROKER,
                       "log.roll.ms": bc.DYNAMIC_DEFAULT_BROKER,
                       "log.segment.bytes": bc.STATIC_BROKER, "num.partitions": bc.DEFAULT}


def _value_other_than(topic_key: str) -> str:
    """A valid value of a topic config other than Kafka's default."""
    special = {"cleanup.policy": "compact", "flush.mode": "group-commit",
               "min.cleanable.dirty.ratio": "0.25", "min.insync.replicas": "2",
               "compression.type": "zstd", "message.timestamp.type": "LogAppendTime"}
    if topic_key in special:
        return special[topic_key]
    return str(int(TOPIC_DEFAULTS[topic_key]) // 2 + 1)


@pytest.mark.parametrize("key", sorted(dc.DYNAMIC_BROKER_CONFIGS - set(dc.THREAD_LANES)))
def test_every_dynamic_key_takes_effect_on_the_live_configs_and_the_partitions(key):
    """What a running broker does with each accepted key: its live configs change, and the
    hosted partition of a topic without an override is told (a new LogConfig to reopen its
    log with, or its partition state with the new min.insync.replicas)."""
    configs = validate_broker_configs({})
    live = dc.LiveBrokerConfigs(1, configs)
    topic_key = BROKER_TOPIC_SYNONYMS[key]
    value = _value_other_than(topic_key)
    image = md.replay([
        md.CreateTopic(name="t", topic_id="id", configs=()),
        md.PartitionRecord(topic="t", partition=0, replicas=(1,), isr=(1,), leader=1),
    ])
    before = log_config({}, configs)
    changed = _alter(image, "", {key: value})
    assert changed.response[0].error == "NONE"
    new = md.replay(changed.records, image)
    keys = live.update(new)
    assert keys == {key} and configs[key] == value
    assert live.source(new, key) == bc.DYNAMIC_DEFAULT_BROKER
    changes = dc.widen(local_changes(image, new, 1, {("t", 0)}), keys, new, {("t", 0)})
    if key in dc.LOG_DEFAULT_KEYS:
        assert changes.reconfigured == ("t",)
        assert log_config({}, configs) != before  # the LogConfig the partition reopens with
    else:
        assert [(n, p) for n, p, _ in changes.changed] == [("t", 0)]
    # a broker's own value wins; removing both restores the static value
    own = md.replay(_alter(new, "1", {key: TOPIC_DEFAULTS[topic_key]}).records, new)
    assert live.update(own) == {key} and configs[key] == TOPIC_DEFAULTS[topic_key]
    assert live.source(own, key) == bc.DYNAMIC_BROKER
    gone = md.replay(_alter(own, "1", {key: None}).records
                     + _alter(own, "", {key: None}).records, own)
    live.update(gone)
    assert configs[key] == BROKER_DEFAULTS[key] and live.source(gone, key) == bc.DEFAULT


def test_a_value_the_broker_cannot_take_is_not_applied():
    configs = validate_broker_configs({"log.cleaner.max.compaction.lag.ms": "1000"})
    live = dc.LiveBrokerConfigs(1, configs)
    # passes the controller (it does not know this broker's static configs), not this broker
    image = md.replay(_alter(md.MetadataImage(), "",
                             {"log.cleaner.min.compaction.lag.ms": "5000"}).records)
    log = SimpleNamespace(warnings=[], warning=lambda m, e: log.warnings.append(str(e)),
                          info=lambda *a: None)
    assert live.on_image(image, log) == set()
    assert configs["log.cleaner.min.compaction.lag.ms"] == "0"
    assert "above max.compaction.lag.ms" in log.warnings[0]


def test_describe_entries_of_a_broker_and_of_the_default():
    configs = validate_broker_configs({"num.partitions": "3"})
    image = md.replay(_alter(md.MetadataImage(), "", {"log.retention.ms": "5"}).records)
    ctx = SimpleNamespace(broker_id=1, image=image, live_configs=dc.LiveBrokerConfigs(1, configs))
    ctx.live_configs.update(image)
    entries, error = dc.native_broker_entries(ctx, "1")
    assert error is None
    by_name = {e.name: e for e in entries}
    assert by_name["log.retention.ms"].source == P.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
    assert not by_name["log.retention.ms"].read_only
    assert by_name["num.partitions"].source == P.ConfigSource.STATIC_BROKER_CONFIG
    assert by_name["num.partitions"].read_only
    assert [e.name for e in dc.native_broker_entries(ctx, "")[0]] == ["log.retention.ms"]
    assert "ask that broker" in dc.native_broker_entries(ctx, "2")[1]
    assert dc.topic_default_source(ctx, "retention.ms") == bc.DYNAMIC_DEFAULT_BROKER
    assert dc.topic_default_source(ctx, "segment.ms") == bc.DEFAULT
    assert ctx.live_configs.synonyms(image, "log.retention.ms") == (
        ("log.retention.ms", "5", bc.DYNAMIC_DEFAULT_BROKER),
        ("log.retention.ms", TOPIC_DEFAULTS["retention.ms"], bc.DEFAULT))
