"""KIP-618 config: the worker's exactly.once.source.support, a connector's exactly.once.support,
transaction.boundary and transaction.boundary.interval.ms, validated with did-you-mean hints;
``required`` refused for a connector that does not declare exactly-once support."""

from __future__ import annotations

import pytest
from rillet.connectors.api import ExactlyOnceSupport, SourceConnector, SourceTask
from rillet.connectors.builtin.file import FileSourceConnector
from rillet.connectors.builtin.sqlite_source import SqliteSourceConnector
from rillet.connectors.config import ConfigDef, key, parse_worker_config
from rillet.connectors.errors import ConnectConfigError
from rillet.connectors.herder import Worker
from rillet.connectors.source_runtime import transactional_id
from rillet.connectors.validation import validate_connector_config


class UndeclaredSource(SourceConnector):  # does not override exactly_once_support()
    config_def = ConfigDef([key("topic")])

    def task_class(self):
        return SourceTask


class UnsupportedSource(UndeclaredSource):
    def exactly_once_support(self, config=None):
        return ExactlyOnceSupport.UNSUPPORTED


def worker(mode: str = "enabled") -> dict:
    return parse_worker_config({"bootstrap.servers": "fake:1",
                                "exactly.once.source.support": mode})


def file_source(**extra) -> dict:
    return {"name": "src", "connector.class": "file-source", "file": "/tmp/x",
            "topic": "t", **extra}


def problems(raw: dict, w: dict | None = None) -> str:
    with pytest.raises(ConnectConfigError) as e:
        validate_connector_config(raw, w if w is not None else worker())
    return "\n".join(e.value.problems)


def test_worker_key_defaults_to_disabled_and_refuses_typos_with_a_hint():
    assert parse_worker_config({"bootstrap.servers": "b:1"})[
        "exactly.once.source.support"] == "disabled"
    for mode in ("disabled", "enabled", "preparing"):
        assert worker(mode)["exactly.once.source.support"] == mode
    with pytest.raises(ConnectConfigError) as e:
        worker("enable")
    assert e.value.problems == ["exactly.once.source.support: 'enable' is not one of "
                                "disabled, enabled, preparing (did you mean 'enabled'?)"]
    with pytest.raises(ConnectConfigError) as e:
        parse_worker_config({"bootstrap.servers": "b:1", "exactly.once.source.suport": "x"})
    assert "did you mean 'exactly.once.source.support'?" in e.value.problems[0]


def test_connector_keys_defaults_and_bad_values():
    spec = validate_connector_config(file_source(), worker())
    assert (spec.config["exactly.once.support"], spec.config["transaction.boundary"],
            spec.config["transaction.boundary.interval.ms"]) == ("requested", "poll", None)
    spec = validate_connector_config(file_source(**{
        "transaction.boundary": "interval", "transaction.boundary.interval.ms": "250"}),
        worker())
    assert spec.config["transaction.boundary.interval.ms"] == 250
    text = problems(file_source(**{"transaction.boundary": "pol",
                                   "exactly.once.support": "require",
                                   "transaction.boundary.interval.ms": "0",
                                   "transaction.boundry": "poll"}))
    assert "transaction.boundary: 'pol' is not one of poll, interval, connector " \
           "(did you mean 'poll'?)" in text
    assert "exactly.once.support: 'require' is not one of requested, required " \
           "(did you mean 'required'?)" in text
    assert "transaction.boundary.interval.ms: must be >= 1, got 0" in text
    assert "unknown key 'transaction.boundry' (did you mean 'transaction.boundary'?)" in text


def test_connector_defined_boundaries_are_refused_as_not_implemented():
    assert "transaction.boundary=connector (boundaries defined by the connector) is not " \
           "implemented" in problems(file_source(**{"transaction.boundary": "connector"}))


def test_required_is_refused_for_a_connector_that_does_not_declare_support():
    for cls, answer in ((UndeclaredSource, "None"), (UnsupportedSource, "UNSUPPORTED")):
        raw = {"name": "c", "connector.class": f"{__name__}:{cls.__name__}", "topic": "t",
               "exactly.once.support": "required"}
        assert problems(raw) == (
            f"exactly.once.support=required, but connector {cls.__name__} does not declare "
            f"exactly-once support (exactly_once_support() returned {answer}); set "
            "exactly.once.support=requested or use a connector that supports it")
        # requested (the default) runs it anyway, as Kafka does
        validate_connector_config({**raw, "exactly.once.support": "requested"}, worker())


def test_the_builtin_sources_declare_support_and_required_passes():
    assert FileSourceConnector().exactly_once_support({}) is ExactlyOnceSupport.SUPPORTED
    assert SqliteSourceConnector().exactly_once_support({}) is ExactlyOnceSupport.SUPPORTED
    spec = validate_connector_config(file_source(**{"exactly.once.support": "required"}),
                                     worker())
    assert spec.config["exactly.once.support"] == "required"


def test_required_needs_an_enabled_worker():
    for mode in ("disabled", "preparing"):
        assert problems(file_source(**{"exactly.once.support": "required"}), worker(mode)) == (
            "exactly.once.support=required needs a worker with "
            f"exactly.once.source.support=enabled (this worker: {mode})")


def test_the_keys_are_refused_on_a_sink():
    raw = {"name": "s", "connector.class": "file-sink", "file": "/tmp/y", "topics": "t",
           "transaction.boundary": "poll"}
    assert problems(raw) == "transaction.boundary applies to source connectors only"


def test_the_herder_refuses_at_create(cluster):
    w = Worker(worker(), cluster.clients(), worker_id="test")
    try:
        with pytest.raises(ConnectConfigError) as e:
            w.add_connector({"name": "c", "connector.class": f"{__name__}:UndeclaredSource",
                             "topic": "t", "exactly.once.support": "required"})
        assert "does not declare exactly-once support" in str(e.value)
        assert w.connectors() == []
    finally:
        w.stop()


def test_transactional_ids_follow_kafka_naming():
    assert transactional_id({"group.id": "g", "worker.id": "w"}, "src", 2) == "g-src-2"
    assert transactional_id({"group.id": "", "worker.id": "w"}, "src", 0) == "w-src-0"
    assert transactional_id({}, "src", 1) == "connect-src-1"
