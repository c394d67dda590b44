"""StreamsConfig (rillet/streams/config.py): Kafka Streams' names and defaults, the client
configs derived from it, and clear errors for what is refused."""

from __future__ import annotations

import os
import tempfile

import pytest

from rillet.errors import ConfigError
from rillet.streams import serdes
from rillet.streams.config import (
    consumer_client_config,
    producer_client_config,
    restore_consumer_config,
    streams_config,
)

B = {"bootstrap.servers": "127.0.0.1:9092"}


def test_defaults_are_kafka_streams_ones() -> None:
    cfg = streams_config("app", B)
    assert cfg.processing_guarantee == "at_least_once"
    assert cfg.commit_interval_ms == 30000
    assert cfg.num_standby_replicas == 0
    assert cfg.default_deserialization_exception_handler == "log_and_fail"
    assert cfg.replication_factor == -1
    assert (cfg.poll_ms, cfg.max_task_idle_ms) == (100, 0)
    assert cfg.state_dir == os.path.join(tempfile.gettempdir(), "rillet-streams")
    assert cfg.default_key_serde is None and cfg.default_value_serde is None


@pytest.mark.parametrize("name", ["exactly_once", "exactly_once_v2", "EXACTLY_ONCE_V2"])
def test_exactly_once_and_its_alias(name) -> None:
    cfg = streams_config("app", {**B, "processing.guarantee": name})
    assert cfg.processing_guarantee == "exactly_once_v2" and cfg.exactly_once
    assert cfg.commit_interval_ms == 100  # Kafka's default under exactly-once
    producer = producer_client_config(cfg, "uuid1")
    assert producer["transactional.id"] == "app-uuid1"
    assert producer["transaction.timeout.ms"] == 10000
    assert consumer_client_config(cfg, "uuid1")["isolation.level"] == "read_committed"
    assert restore_consumer_config(cfg)["isolation.level"] == "read_committed"


def test_client_keys_pass_through_and_prefixes_pick_one_client() -> None:
    cfg = streams_config("app", {**B, "request.timeout.ms": 5000,
                                 "consumer.max.poll.records": 50,
                                 "producer.linger.ms": 7},
                         {"commit_interval_ms": 250, "producer_batch_size": 1000})
    assert cfg.commit_interval_ms == 250
    consumer = consumer_client_config(cfg, "x")
    producer = producer_client_config(cfg, "x")
    assert consumer["request.timeout.ms"] == producer["request.timeout.ms"] == 5000
    assert consumer["max.poll.records"] == 50 and "max.poll.records" not in producer
    assert producer["linger.ms"] == 7 and producer["batch.size"] == 1000
    # what the runtime owns
    assert consumer["group.id"] == "app" and consumer["enable.auto.commit"] is False
    assert consumer["group.remote.assignor"] == "range"


@pytest.mark.parametrize("given, message", [
    ({"comit.interval.ms": 5}, "did you mean 'commit.interval.ms'"),
    ({"group.id": "x"}, "group is the application.id"),
    ({"consumer.enable.auto.commit": True}, "cannot be set"),
    ({"consumer.linger.ms": 1}, "not a consumer config key"),
    ({"processing.guarantee": "maybe"}, "at_least_once or exactly_once_v2"),
    ({"num.standby.replicas": -1}, "num.standby.replicas"),
    ({"application.server": "no-port"}, "application.server: expected host:port"),
    ({"application.server": "h:70000"}, "application.server"),
    ({"default.deserialization.exception.handler": "shrug"}, "log_and_fail, "),
    ({"default.deserialization.exception.handler": "dead_letter"},
     "errors.dead.letter.queue.topic.name"),
    ({"replication.factor": 0}, "-1"),
    ({"commit.interval.ms": "soon"}, "integer"),
    ({"default.value.serde": "strng"}, "did you mean 'string'"),
    ({"linger.ms": -1}, "linger.ms"),  # a client key's own check runs up front
])
def test_bad_configs_are_refused_clearly(given, message) -> None:
    with pytest.raises(ConfigError, match=message):
        streams_config("app", {**B, **given})


def test_application_id_is_checked() -> None:
    with pytest.raises(ConfigError, match="application.id"):
        streams_config("no spaces please", B)
    with pytest.raises(ConfigError, match="differs"):
        streams_config("a", {**B, "application.id": "b"})


def test_serdes_by_name_or_object() -> None:
    cfg = streams_config("app", {**B, "default.key.serde": "string",
                                 "default.value.serde": serdes.Long})
    assert cfg.default_key_serde is serdes.String
    assert cfg.default_value_serde is serdes.Long
    cfg = streams_config("app", {**B, "default.deserialization.exception.handler":
                                 "dead_letter", "errors.dead.letter.queue.topic.name": "dlq"})
    assert cfg.errors_dead_letter_queue_topic_name == "dlq"


def test_bootstrap_servers_may_come_later(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("RILLET_BROKERS", raising=False)
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path))
    cfg = streams_config("app", {})
    assert cfg.bootstrap_servers is None  # an app module imports without brokers
    from rillet.streams.config import require_servers

    with pytest.raises(ConfigError, match="bootstrap.servers is required"):
        require_servers(cfg)
    monkeypatch.setenv("RILLET_BROKERS", "h:1")
    assert streams_config("app", {}).bootstrap_servers == ["h:1"]


def test_standby_replicas_and_application_server_are_accepted() -> None:
    cfg = streams_config("app", {**B, "num.standby.replicas": 2,
                                 "application.server": "10.0.0.5:8080"})
    assert cfg.num_standby_replicas == 2 and cfg.application_server == "10.0.0.5:8080"
    assert streams_config("app", B).application_server is None
