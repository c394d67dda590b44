"""Single message transforms (SMTs) and predicates, with Kafka's names and config keys.

Configured as in Kafka::

    transforms=addSource,route
    transforms.addSource.type=InsertField$Value
    transforms.addSource.static.field=source
    transforms.addSource.static.value=orders-db
    transforms.route.type=RegexRouter
    transforms.route.regex=(.*)-raw
    transforms.route.replacement=$1-clean
    transforms.route.predicate=isRaw          # optional; transforms.route.negate=true inverts
    predicates=isRaw
    predicates.isRaw.type=TopicNameMatches
    predicates.isRaw.pattern=.*-raw

Transforms work on Python values (dict values for field transforms, as the JSON converter
produces) and return a new record, or None to drop it. They apply to SourceRecords before
conversion and to SinkRecords after it. ``type`` accepts the short name, the short name with
``$Key``/``$Value``, Kafka's full class name, or ``module:Class``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .config import ConfigDef, _to_bool, _to_list, key, sub_config
from .errors import ConnectConfigError, TransformError
from .plugins import load_class


class Predicate:
    config_def = ConfigDef()

    def configure(self, config: Mapping[str, Any]) -> None:
        self.config = self.config_def.parse(config, source=type(self).__name__)

    def test(self, record: Any) -> bool:
        raise NotImplementedError


class TopicNameMatches(Predicate):
    config_def = ConfigDef([key("pattern", doc="a regex the whole topic name must match")])

    def configure(self, config: Mapping[str, Any]) -> None:
        super().configure(config)
        try:
            self.pattern = re.compile(self.config["pattern"])
        except re.error as e:
            raise ConnectConfigError([f"pattern: invalid regex: {e}"]) from e

    def test(self, record: Any) -> bool:
        return self.pattern.fullmatch(record.topic) is not None


class HasHeaderKey(Predicate):
    config_def = ConfigDef([key("name")])

    def test(self, record: Any) -> bool:
        return any(k == self.config["name"] for k, _ in record.headers)


class RecordIsTombstone(Predicate):
    def test(self, record: Any) -> bool:
        return record.value is None


class Transform:
    config_def = ConfigDef()
    #: for $Key/$Value variants: which half of the record the transform edits
    on_key = False

    def configure(self, config: Mapping[str, Any]) -> None:
        self.config = self.config_def.parse(config, source=type(self).__name__)

    def apply(self, record: Any) -> Any:
        raise NotImplementedError

    def _get(self, record: Any) -> Any:
        return record.key if self.on_key else record.value

    def _set(self, record: Any, data: Any) -> Any:
        return dataclasses.replace(record, **{"key" if self.on_key else "value": data})

    def _need_dict(self, data: Any) -> dict:
        if not isinstance(data, dict):
            part = "key" if self.on_key else "value"
            raise TransformError(f"{type(self).__name__} needs a map {part}, "
                                 f"got {type(data).__name__}")
        return data


class InsertField(Transform):
    """Adds fields: a static one, and the topic / partition / offset / timestamp."""

    config_def = ConfigDef([
        key("static.field", default=""), key("static.value", default=""),
        key("topic.field", default=""), key("partition.field", default=""),
        key("offset.field", default=""), key("timestamp.field", default=""),
    ])

    def apply(self, record: Any) -> Any:
        data = self._get(record)
        if data is None:  # tombstones pass through, as in Kafka
            return record
        out = dict(self._need_dict(data))
        c = self.config
        if c["static.field"]:
            out[c["static.field"]] = c["static.value"]
        if c["topic.field"]:
            out[c["topic.field"]] = record.topic
        if c["partition.field"]:
            out[c["partition.field"]] = record.partition
        if c["offset.field"]:
            out[c["offset.field"]] = getattr(record, "offset", None)
        if c["timestamp.field"]:
            out[c["timestamp.field"]] = record.timestamp
        return self._set(record, out)


class ReplaceField(Transform):
    """Drops (``exclude``), keeps only (``include``) and renames (``renames=old:new,...``)."""

    config_def = ConfigDef([
        key("exclude", "list", []), key("include", "list", []), key("renames", "list", []),
        key("blacklist", "list", []), key("whitelist", "list", []),  # pre-3.0 Kafka names
    ])

    def configure(self, config: Mapping[str, Any]) -> None:
        super().configure(config)
        self.exclude = set(self.config["exclude"]) | set(self.config["blacklist"])
        self.include = set(self.config["include"]) | set(self.config["whitelist"])
        self.renames: dict[str, str] = {}
        for pair in self.config["renames"]:
            old, sep, new = pair.partition(":")
            if not sep or not old or not new:
                raise ConnectConfigError([f"renames: expected old:new, got {pair!r}"])
            self.renames[old] = new

    def apply(self, record: Any) -> Any:
        data = self._get(record)
        if data is None:
            return record
        out = {}
        for name, v in self._need_dict(data).items():
            if name in self.exclude or (self.include and name not in self.include):
                continue
            out[self.renames.get(name, name)] = v
        return self._set(record, out)


class ValueToKey(Transform):
    """The key becomes a map of the listed value fields."""

    config_def = ConfigDef([key("fields", "list", doc="value fields that form the key")])

    def apply(self, record: Any) -> Any:
        if record.value is None:
            return record
        value = record.value
        if not isinstance(value, dict):
            raise TransformError(f"ValueToKey needs a map value, got {type(value).__name__}")
        missing = [f for f in self.config["fields"] if f not in value]
        if missing:
            raise TransformError(f"ValueToKey: the value has no field {missing[0]!r}")
        return dataclasses.replace(record, key={f: value[f] for f in self.config["fields"]})


class Filter(Transform):
    """Drops every record (so it is used with a predicate: drop those matching it)."""

    def apply(self, record: Any) -> Any:
        return None


class RegexRouter(Transform):
    """Renames the topic when the whole name matches ``regex``; ``replacement`` may use $1."""

    config_def = ConfigDef([key("regex"), key("replacement")])

    def configure(self, config: Mapping[str, Any]) -> None:
        super().configure(config)
        try:
            self.regex = re.compile(self.config["regex"])
        except re.error as e:
            raise ConnectConfigError([f"regex: invalid regex: {e}"]) from e
        # Java's $1 -> Python's \g<1>
        self.replacement = re.sub(r"\$(\d+)", r"\\g<\1>", self.config["replacement"])

    def apply(self, record: Any) -> Any:
        m = self.regex.fullmatch(record.topic)
        if not m:
            return record
        return dataclasses.replace(record, topic=m.expand(self.replacement))


def _variant(cls: type[Transform], on_key: bool) -> type[Transform]:
    return type(f"{cls.__name__}${'Key' if on_key else 'Value'}", (cls,), {"on_key": on_key})


TRANSFORM_ALIASES: dict[str, Any] = {
    "ValueToKey": ValueToKey, "Filter": Filter, "RegexRouter": RegexRouter,
}
for _cls in (InsertField, ReplaceField):
    for _on_key in (False, True):
        TRANSFORM_ALIASES[f"{_cls.__name__}${'Key' if _on_key else 'Value'}"] = _variant(
            _cls, _on_key)
    TRANSFORM_ALIASES[_cls.__name__] = TRANSFORM_ALIASES[f"{_cls.__name__}$Value"]
PREDICATE_ALIASES: dict[str, Any] = {
    "TopicNameMatches": TopicNameMatches, "HasHeaderKey": HasHeaderKey,
    "RecordIsTombstone": RecordIsTombstone,
}
for _short in list(TRANSFORM_ALIASES):
    TRANSFORM_ALIASES[f"org.apache.kafka.connect.transforms.{_short}"] = TRANSFORM_ALIASES[_short]
for _short in list(PREDICATE_ALIASES):
    PREDICATE_ALIASES[f"org.apache.kafka.connect.transforms.predicates.{_short}"] = (
        PREDICATE_ALIASES[_short])


class TransformChain:
    """The configured transforms of one connector, in order, each with its predicate."""

    def __init__(self, steps: list[tuple[str, Transform, Predicate | None, bool]]) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return len(self.steps)

    def apply(self, record: Any) -> Any:
        """The transformed record, or None if a transform dropped it. TransformError (or
        whatever a custom transform raises) propagates."""
        for _alias, transform, predicate, negate in self.steps:
            if predicate is not None and predicate.test(record) == negate:
                continue
            record = transform.apply(record)
            if record is None:
                return None
        return record


def build_transforms(config: Mapping[str, Any]) -> TransformChain:
    """From a connector config (``transforms``, ``transforms.X.*``, ``predicates.*``)."""
    problems: list[str] = []
    predicates: dict[str, Predicate] = {}
    for alias in _to_list(config.get("predicates", [])):
        sub = sub_config(config, f"predicates.{alias}.")
        try:
            cls = load_class(str(sub.pop("type", "")) or "(missing)", f"predicates.{alias}.type",
                             PREDICATE_ALIASES)
            pred = cls()
            pred.configure(sub)
            predicates[alias] = pred
        except ConnectConfigError as e:
            problems += [f"predicates.{alias}: {p}" for p in e.problems]
    steps = []
    for alias in _to_list(config.get("transforms", [])):
        sub = sub_config(config, f"transforms.{alias}.")
        pred_name = str(sub.pop("predicate", "") or "")
        try:
            negate = _to_bool(sub.pop("negate", False))
        except ValueError as e:
            problems.append(f"transforms.{alias}.negate: {e}")
            negate = False
        if pred_name and pred_name not in predicates:
            problems.append(f"transforms.{alias}.predicate: no predicate {pred_name!r} "
                            "in predicates")
        try:
            cls = load_class(str(sub.pop("type", "")) or "(missing)", f"transforms.{alias}.type",
                             TRANSFORM_ALIASES)
            t = cls()
            t.configure(sub)
            steps.append((alias, t, predicates.get(pred_name), negate))
        except ConnectConfigError as e:
            problems += [f"transforms.{alias}: {p}" for p in e.problems]
    if problems:
        raise ConnectConfigError(problems, source="transforms")
    return TransformChain(steps)
