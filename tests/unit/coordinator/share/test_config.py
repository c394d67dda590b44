"""Share-group configs: resolution (group > broker > Kafka), validation, the image records."""

from __future__ import annotations

import pytest
from rillet.actors.configs import BROKER_DEFAULTS, ConfigError, validate_broker_configs
from rillet.coordinator import metadata as md
from rillet.coordinator.share.config import (
    GroupConfigError,
    ShareGroupConfig,
    group_config,
    validate_group_configs,
)


def _image(**groups) -> md.MetadataImage:
    records = [
        md.SetGroupConfig(group_id=g, name=k, value=v)
        for g, cfg in groups.items()
        for k, v in cfg.items()
    ]
    return md.replay(records)


def test_kafka_defaults_when_nothing_is_set() -> None:
    assert group_config(md.MetadataImage(), "g", BROKER_DEFAULTS) == ShareGroupConfig()
    assert group_config(md.MetadataImage(), "g", {}) == ShareGroupConfig()


def test_group_override_beats_broker_default_beats_kafka_default() -> None:
    broker = validate_broker_configs(
        {"group.share.record.lock.duration.ms": "20000", "group.share.delivery.count.limit": "7"}
    )
    image = _image(g={"share.record.lock.duration.ms": "5000", "retry.backoff.multiplier": "3"})
    c = group_config(image, "g", broker)
    assert c.record_lock_duration_ms == 5000  # group
    assert c.delivery_count_limit == 7  # broker
    assert c.retry_backoff_ms == 1000  # Kafka
    assert c.retry_backoff_multiplier == 3.0
    assert group_config(image, "other", broker).record_lock_duration_ms == 20000


def test_delete_reverts_and_snapshot_keeps_group_configs() -> None:
    image = _image(g={"share.auto.offset.reset": "earliest", "retry.backoff.ms": "10"})
    assert group_config(image, "g", {}).auto_offset_reset == "earliest"
    assert md.decode_snapshot(md.encode_snapshot(image)).group_configs == image.group_configs
    image = md.apply(image, md.SetGroupConfig(group_id="g", name="retry.backoff.ms", value=None))
    assert image.group_configs == {"g": {"share.auto.offset.reset": "earliest"}}
    image = md.apply(image, md.SetGroupConfig(group_id="g", name="share.auto.offset.reset",
                                              value=None))
    assert image.group_configs == {}
    assert md.decode_records(md.encode_records([md.SetGroupConfig(
        group_id="g", name="k", value="v")])) == [md.SetGroupConfig(group_id="g", name="k",
                                                                      value="v")]


def test_unknown_key_gets_a_hint() -> None:
    with pytest.raises(GroupConfigError, match="did you mean 'share.session.timeout.ms'"):
        validate_group_configs({"share.sesion.timeout.ms": "5000"})
    with pytest.raises(GroupConfigError, match="broker config"):
        validate_group_configs({"group.share.max.size": "5"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("share.record.lock.duration.ms", "abc", "not an integer"),
        ("share.record.lock.duration.ms", "10", "between"),
        ("share.delivery.count.limit", "1", "between"),
        ("share.auto.offset.reset", "middle", "valid values"),
        ("retry.backoff.multiplier", "0.5", "between"),
        ("retry.backoff.multiplier", "nan", "between"),
        ("retry.backoff.multiplier", "x", "not a number"),
        ("errors.deadletterqueue.topic.name", "bad name", "legal topic name"),
        ("errors.deadletterqueue.topic.name", "__internal", "internal"),
        ("share.heartbeat.interval.ms", "50000", "smaller than share.session.timeout.ms"),
        ("retry.backoff.ms", "70000", "retry.backoff.max.ms"),
    ],
)
def test_bad_values_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(GroupConfigError, match=message):
        validate_group_configs({key: value})


def test_rules_between_keys_use_the_effective_values() -> None:
    validate_group_configs({"share.session.timeout.ms": "2000", "share.heartbeat.interval.ms":
                            "500"})
    with pytest.raises(GroupConfigError, match="smaller than"):
        validate_group_configs({"share.session.timeout.ms": "2000"})  # heartbeat stays 5000
    validate_group_configs({"share.session.timeout.ms": None})  # a delete needs a known key


def test_broker_share_keys_are_validated() -> None:
    assert validate_broker_configs({})["group.share.max.size"] == "200"
    with pytest.raises(ConfigError, match="not a number"):
        validate_broker_configs({"group.share.retry.backoff.multiplier": "fast"})
    with pytest.raises(ConfigError, match="between"):
        validate_broker_configs({"group.share.partition.max.record.locks": "0"})
    with pytest.raises(ConfigError, match="group.share"):
        validate_broker_configs({"group.share.heartbeat.interval.ms": "60000"})


def test_dead_letter_topic_and_nominal_backoff() -> None:
    c = ShareGroupConfig(retry_backoff_ms=100, retry_backoff_multiplier=2.0,
                         retry_backoff_max_ms=1000)
    assert c.dead_letter_topic("orders") == "orders.dlq"
    assert ShareGroupConfig(dead_letter_topic_name="dead").dead_letter_topic("orders") == "dead"
    assert [c.nominal_backoff_ms(n) for n in (1, 2, 3, 4, 5, 50, 10_000)] == [
        100, 200, 400, 800, 1000, 1000, 1000]


def test_a_stored_override_that_no_longer_fits_falls_back() -> None:
    # valid when set (session 60 s); the broker default heartbeat later grows past it
    image = _image(g={"share.session.timeout.ms": "6000"})
    broker = {"group.share.heartbeat.interval.ms": "8000", "group.share.session.timeout.ms":
              "90000"}
    c = group_config(image, "g", broker)
    assert (c.session_timeout_ms, c.heartbeat_interval_ms) == (90000, 8000)


# ------------------------------------------------------------------ the controller's decision


class _Change:
    def __init__(self, name, value, op=0):
        self.name, self.value, self.op = name, value, op


class _Resource:
    def __init__(self, name, *changes, resource_type=32):
        self.resource_type, self.resource_name, self.configs = resource_type, name, changes


def _alter(image, *resources, validate_only=False):
    from rillet.coordinator.control import topics as ct

    def no_topics(_):
        raise AssertionError("a group resource must not be validated as a topic")

    return ct.alter_configs(image, resources, validate_only=validate_only,
                            validate_configs=no_topics,
                            validate_group_configs=validate_group_configs)


def test_controller_sets_configs_of_a_group_that_does_not_exist_yet() -> None:
    r = _alter(md.MetadataImage(), _Resource("g", _Change("share.delivery.count.limit", "3")))
    assert [o.error for o in r.response] == ["NONE"]
    image = md.replay(r.records)
    assert image.group_configs == {"g": {"share.delivery.count.limit": "3"}}
    # a delete and a set in one request; validation sees the group's whole new set
    r = _alter(image, _Resource("g", _Change("share.delivery.count.limit", None, op=1),
                                _Change("share.auto.offset.reset", "earliest")))
    assert md.replay(r.records, image).group_configs == {"g": {"share.auto.offset.reset":
                                                               "earliest"}}


def test_controller_refuses_bad_group_configs_with_no_record() -> None:
    r = _alter(md.MetadataImage(), _Resource("g", _Change("share.delivery.count.limit", "3"),
                                             _Change("share.lock.duration.ms", "1")))
    assert r.records == [] and r.response[0].error == "INVALID_CONFIG"
    assert "did you mean 'share.record.lock.duration.ms'" in r.response[0].message
    r = _alter(md.MetadataImage(), _Resource("", _Change("share.delivery.count.limit", "3")))
    assert r.records == [] and r.response[0].error != "NONE"
    r = _alter(md.MetadataImage(), _Resource("g", _Change("share.delivery.count.limit", "3")),
               validate_only=True)
    assert r.records == [] and r.response[0].error == "NONE"
