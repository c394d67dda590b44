"""Client configuration: both spellings, Kafka defaults, strict checking with hints."""

from __future__ import annotations

import pytest

from rillet.config import consumer_config, producer_config
from rillet.errors import ConfigError

BOOT = {"bootstrap.servers": "127.0.0.1:9092"}


def test_dotted_and_snake_case_are_the_same_key() -> None:
    a = producer_config({**BOOT, "linger.ms": 7})
    b = producer_config(None, {"bootstrap_servers": "127.0.0.1:9092", "linger_ms": 7})
    assert a.linger_ms == b.linger_ms == 7
    assert a["linger.ms"] == 7 and a.bootstrap_servers == ["127.0.0.1:9092"]


def test_keywords_win_over_the_dict() -> None:
    cfg = producer_config({**BOOT, "linger.ms": 7}, {"linger_ms": 9})
    assert cfg.linger_ms == 9


def test_java_client_defaults() -> None:
    p = producer_config(BOOT)
    assert (p.acks, p.linger_ms, p.batch_size, p.compression_type) == (-1, 5, 16384, "none")
    assert (p.retry_backoff_ms, p.retry_backoff_max_ms) == (100, 1000)
    assert (p.delivery_timeout_ms, p.request_timeout_ms) == (120000, 30000)
    assert p.max_in_flight_requests_per_connection == 5 and p.enable_idempotence is True
    c = consumer_config(BOOT)
    assert (c.fetch_min_bytes, c.fetch_max_wait_ms) == (1, 500)
    assert (c.max_partition_fetch_bytes, c.fetch_max_bytes) == (1048576, 52428800)
    assert (c.max_poll_records, c.auto_offset_reset, c.group_id) == (500, "latest", None)
    assert c.consumer_timeout_ms == float("inf")


@pytest.mark.parametrize(
    ("raw", "expected"), [("all", -1), (-1, -1), ("-1", -1), (1, 1), ("1", 1), (0, 0)]
)
def test_acks_spellings(raw, expected) -> None:
    assert producer_config({**BOOT, "acks": raw}).acks == expected


def test_strings_are_coerced_like_java_properties() -> None:
    cfg = producer_config({**BOOT, "batch.size": "1000", "enable.idempotence": "false"})
    assert cfg.batch_size == 1000 and cfg.enable_idempotence is False


@pytest.mark.parametrize(
    ("key", "hint"),
    [("linger.msx", "linger.ms"), ("bootstrap_server", "bootstrap.servers"),
     ("batch_sise", "batch.size")],
)
def test_unknown_key_has_a_did_you_mean_hint(key, hint) -> None:
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'; did you mean '{hint}'"):
        producer_config({**BOOT, key: 1})


def test_consumer_keys_are_not_producer_keys() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'fetch.min.bytes'"):
        producer_config({**BOOT, "fetch.min.bytes": 1})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("linger.ms", "soon", "linger.ms must be an integer"),
        ("linger.ms", -1, "linger.ms must be >= 0"),
        ("acks", 2, "acks must be one of all, -1, 0, 1"),
        ("compression.type", "brotli", "compression.type must be one of none, gzip, zstd, lz4, snappy"),
        ("enable.idempotence", "yes", "enable.idempotence must be true or false"),
        ("bootstrap.servers", "localhost", "is not host:port"),
        ("batch.size", True, "batch.size must be an integer"),
    ],
)
def test_bad_values_are_clear_errors(key, value, message) -> None:
    with pytest.raises(ConfigError, match=message):
        producer_config({**BOOT, key: value})


def test_bootstrap_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path))  # no profile there
    monkeypatch.setenv("RILLET_BROKERS", "127.0.0.1:1111,127.0.0.1:2222")
    assert producer_config({}).bootstrap_servers == ["127.0.0.1:1111", "127.0.0.1:2222"]
    monkeypatch.delenv("RILLET_BROKERS")
    with pytest.raises(ConfigError, match="bootstrap.servers is required"):
        producer_config({})


def test_bootstrap_falls_back_to_the_cluster_up_profile(monkeypatch, tmp_path) -> None:
    """Explicit setting, then $RILLET_BROKERS, then the profile `rillet cluster up` wrote."""
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("RILLET_BROKERS", raising=False)
    (tmp_path / "profile.json").write_text('{"brokers": "127.0.0.1:3333"}')
    assert consumer_config({}).bootstrap_servers == ["127.0.0.1:3333"]
    monkeypatch.setenv("RILLET_BROKERS", "127.0.0.1:4444")
    assert consumer_config({}).bootstrap_servers == ["127.0.0.1:4444"]
    assert consumer_config(BOOT).bootstrap_servers != ["127.0.0.1:4444"]
    (tmp_path / "profile.json").write_text("not json")
    monkeypatch.delenv("RILLET_BROKERS")
    with pytest.raises(ConfigError, match="rillet cluster up"):
        consumer_config({})


def test_config_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        consumer_config({**BOOT, "auto.offset.reset": "smallest"})


def test_transactional_id_implies_idempotence_and_refuses_contradicting_settings() -> None:
    from rillet.config import producer_config

    boot = {"bootstrap.servers": "127.0.0.1:1"}
    cfg = producer_config({**boot, "transactional.id": "app-1"})
    assert (cfg.transactional_id, cfg.transaction_timeout_ms) == ("app-1", 60000)
    assert cfg.enable_idempotence and cfg.acks == -1
    assert producer_config(boot).transactional_id is None
    with pytest.raises(ConfigError, match="requires enable.idempotence=true"):
        producer_config({**boot, "transactional.id": "a", "enable.idempotence": False})
    with pytest.raises(ConfigError, match="requires acks=all"):
        producer_config({**boot, "transactional.id": "a", "acks": "1"})
    with pytest.raises(ConfigError, match="must not be empty"):
        producer_config({**boot, "transactional.id": ""})
    with pytest.raises(ConfigError, match="transaction.timeout.ms must be"):
        producer_config({**boot, "transactional.id": "a", "transaction.timeout.ms": 0})
    assert producer_config({**boot, "transaction_timeout_ms": "1500"}).transaction_timeout_ms == 1500
