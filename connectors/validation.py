"""Validating a whole connector config: common keys, the connector's own keys, transforms,
predicates and converters, reported together in one ConnectConfigError."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .api import ExactlyOnceSupport, SinkConnector
from .config import CONNECTOR_DEF, ConfigDef, _to_list, sub_config
from .converters import Converter, make_converter
from .errors import ConnectConfigError
from .plugins import load_connector_class
from .transforms import TransformChain, build_transforms


@dataclass
class ConnectorSpec:
    """A validated connector config and what it names."""

    name: str
    config: dict[str, Any]
    connector_class: type
    is_sink: bool
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return "sink" if self.is_sink else "source"


def validate_connector_config(raw: Mapping[str, Any],
                              worker: Mapping[str, Any] | None = None) -> ConnectorSpec:
    """Raise ConnectConfigError (all problems at once) or return the typed spec."""
    worker = worker or {}
    name = str(raw.get("name") or "connector")
    source = f"connector {name!r} config"
    problems: list[str] = []
    cls = None
    if raw.get("connector.class"):
        try:
            cls = load_connector_class(str(raw["connector.class"]))
        except ConnectConfigError as e:
            problems += e.problems
    if cls is not None and getattr(cls, "default_config", None):
        # a connector's defaults for Connect's keys (the mirror's: bytes converters)
        raw = {**cls.default_config, **raw}
    own: ConfigDef | None = getattr(cls, "config_def", None) if cls else None
    full = CONNECTOR_DEF + own if own is not None else CONNECTOR_DEF
    typed: dict[str, Any] = {}
    try:
        typed = full.parse(raw, source=source, allow_unknown=cls is not None and own is None)
    except ConnectConfigError as e:
        problems += e.problems
    if cls is not None:
        is_sink = issubclass(cls, SinkConnector)
        topics = _to_list(raw.get("topics") or [])
        regex = raw.get("topics.regex") or ""
        if is_sink and not topics and not regex:
            problems.append("a sink needs 'topics' (a comma list) or 'topics.regex'")
        if is_sink and topics and regex:
            problems.append("set only one of 'topics' and 'topics.regex'")
        dlq = raw.get("errors.deadletterqueue.topic.name") or ""
        if dlq and dlq in topics:
            problems.append("errors.deadletterqueue.topic.name must not be one of 'topics'")
    if cls is not None and typed:
        problems += exactly_once_problems(cls, typed, raw, worker)
        try:
            problems += list(cls.validate_config(typed))
        except Exception as e:  # a plugin's validator must not take the worker down
            problems.append(f"{cls.__name__}.validate_config failed: {type(e).__name__}: {e}")
    try:
        build_transforms(raw)
    except ConnectConfigError as e:
        problems += e.problems
    for which in ("key", "value"):
        try:
            make_converter_for(raw, worker, which)
        except ConnectConfigError as e:
            problems += e.problems
    if problems:
        raise ConnectConfigError(problems, source=source)
    assert cls is not None
    return ConnectorSpec(typed["name"], typed, cls, issubclass(cls, SinkConnector), dict(raw))


EOS_KEYS = ("exactly.once.support", "transaction.boundary", "transaction.boundary.interval.ms")


def exactly_once_problems(cls: type, typed: Mapping[str, Any], raw: Mapping[str, Any],
                          worker: Mapping[str, Any]) -> list[str]:
    """KIP-618's checks of a connector config against its class and the worker."""
    if issubclass(cls, SinkConnector):
        return [f"{k} applies to source connectors only" for k in EOS_KEYS if k in raw]
    problems = []
    if typed.get("transaction.boundary") == "connector":
        problems.append("transaction.boundary=connector (boundaries defined by the connector) "
                        "is not implemented; use poll or interval")
    if typed.get("exactly.once.support") == "required":
        mode = worker.get("exactly.once.source.support", "disabled")
        if mode != "enabled":
            problems.append("exactly.once.support=required needs a worker with "
                            f"exactly.once.source.support=enabled (this worker: {mode})")
        try:
            support = cls().exactly_once_support(dict(typed))
        except Exception as e:  # a plugin's answer must not take the worker down
            support = None
            problems.append(f"{cls.__name__}.exactly_once_support failed: "
                            f"{type(e).__name__}: {e}")
        else:
            if support is not ExactlyOnceSupport.SUPPORTED:
                problems.append(
                    f"exactly.once.support=required, but connector {cls.__name__} does not "
                    f"declare exactly-once support (exactly_once_support() returned "
                    f"{getattr(support, 'value', support)}); set exactly.once.support="
                    "requested or use a connector that supports it")
    return problems


def make_converter_for(config: Mapping[str, Any], worker: Mapping[str, Any],
                       which: str) -> Converter:
    """The connector's ``key.converter``/``value.converter``, else the worker's, else json."""
    k = f"{which}.converter"
    if config.get(k):
        return make_converter(str(config[k]), sub_config(config, k + "."), which == "key")
    return make_converter(str(worker.get(k) or "json"), sub_config(worker, k + "."),
                          which == "key")


def transforms_for(config: Mapping[str, Any]) -> TransformChain:
    return build_transforms(config)
