"""The broker's configs (actors/configs.py): defaults written once, typed reads, a clear error
for every wrong key or value."""

from __future__ import annotations

import pytest
from rillet.actors.configs import (
    BROKER_DEFAULTS,
    BrokerConfig,
    ConfigError,
    validate_broker_configs,
)


def test_every_default_is_present_and_read_typed() -> None:
    c = validate_broker_configs({"replica.lag.time.max.ms": "1500"})
    assert isinstance(c, BrokerConfig) and set(c) == set(BROKER_DEFAULTS)
    assert c.int("replica.lag.time.max.ms") == 1500
    assert c.int("producer.id.expiration.ms") == 86_400_000
    assert c.flag("auto.leader.rebalance.enable") is True
    assert c.flag("unclean.leader.election.enable") is False
    assert BrokerConfig.of(c) is c
    assert BrokerConfig.of({"num.partitions": "3"}).int("num.partitions") == 3


def test_a_key_that_is_not_a_broker_config_names_the_closest() -> None:
    c = validate_broker_configs({})
    with pytest.raises(KeyError, match="replica.lag.time.max.ms"):
        c["replica.lag.time.max"]
    with pytest.raises(ConfigError, match="did you mean 'num.io.threads'"):
        validate_broker_configs({"num.io.thread": "4"})


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("auto.leader.rebalance.enable", "yes", "valid values: true, false"),
        ("auto.create.topics.enable", "1", "valid values: true, false"),
        ("replica.lag.time.max.ms", "fast", "is not an integer"),
        ("producer.id.expiration.ms", "0", "must be an integer >= 1"),
        ("log.scrub.enable", "on", "valid values"),
    ],
)
def test_a_wrong_value_is_refused_at_start(key, value, error) -> None:
    with pytest.raises(ConfigError, match=error):
        validate_broker_configs({key: value})


def test_log_append_time_and_topic_codecs_are_accepted_and_near_misses_hinted():
    """LogAppendTime and every Kafka topic codec are accepted (the leader applies them:
    logstore/rewrite.py); a near miss is refused with a did-you-mean."""
    import pytest as _pytest
    from rillet.actors.configs import ConfigError, validate_broker_configs, validate_topic_configs

    validate_topic_configs({"message.timestamp.type": "LogAppendTime"})
    validate_broker_configs({"log.message.timestamp.type": "LogAppendTime"})
    for codec in ("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"):
        validate_topic_configs({"compression.type": codec})
    validate_broker_configs({"compression.type": "zstd"})
    with _pytest.raises(ConfigError, match="did you mean 'LogAppendTime'"):
        validate_topic_configs({"message.timestamp.type": "LogAppendtime"})
    with _pytest.raises(ConfigError, match="did you mean 'zstd'.*valid values: producer"):
        validate_topic_configs({"compression.type": "zstdd"})
    with _pytest.raises(ConfigError, match="did you mean 'LogAppendTime'"):
        validate_broker_configs({"log.message.timestamp.type": "logappendtime"})
    validate_topic_configs({"message.timestamp.type": "CreateTime"})
