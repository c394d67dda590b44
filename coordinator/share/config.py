"""Share-group configs: the GROUP config resource's keys (Kafka's ConfigResource type 32),
their broker-level defaults, validation, and the resolved :class:`ShareGroupConfig`. Pure.

A share group's effective config is, per key, the group's own override (set with
AlterConfigs on the GROUP resource, stored by the controller in the metadata image:
``image.group_configs[group_id]``), else the broker's default (its ``group.share.*`` key,
settable with ``--config``), else Kafka's default:

==================================  =======================================  ===========
group key                           broker default key                       default
==================================  =======================================  ===========
share.record.lock.duration.ms       group.share.record.lock.duration.ms      30000
share.auto.offset.reset             (none)                                   latest
share.heartbeat.interval.ms         group.share.heartbeat.interval.ms        5000
share.session.timeout.ms            group.share.session.timeout.ms           45000
share.delivery.count.limit          group.share.delivery.count.limit         5
retry.backoff.ms                    group.share.retry.backoff.ms             1000
retry.backoff.multiplier            group.share.retry.backoff.multiplier     2.0
retry.backoff.max.ms                group.share.retry.backoff.max.ms         60000
errors.deadletterqueue.topic.name   (none)                                   "" (<topic>.dlq)
==================================  =======================================  ===========

Broker-only share keys (no group override): ``group.share.partition.max.record.locks``
(2000), ``group.share.max.size`` (200), ``share.coordinator.state.topic.num.partitions`` (50)
and ``share.coordinator.state.topic.replication.factor`` (3).

Ranges are wider than Kafka's (whose minimum lock and session are 15 s and 45 s) so that
tests and small deployments may use short timers; they still refuse nonsense (a heartbeat
interval not below the session timeout, a maximum back-off below the initial one, ...).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from rillet.frozen import frozen

RESOURCE_GROUP = 32  # Kafka's ConfigResource.Type.GROUP


class GroupConfigError(ValueError):
    """An unknown key (with a did-you-mean hint) or a bad value (wire: INVALID_CONFIG)."""


_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def _int_in(low: int, high: int) -> Callable[[str, str], int]:
    def parse(key: str, value: str) -> int:
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise GroupConfigError(f"{key}={value!r} is not an integer")
        n = int(text)
        if not low <= n <= high:
            raise GroupConfigError(f"{key}={value!r} must be between {low} and {high}")
        return n

    return parse


def _float_in(low: float, high: float) -> Callable[[str, str], float]:
    def parse(key: str, value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            raise GroupConfigError(f"{key}={value!r} is not a number") from None
        if not low <= x <= high:  # NaN fails this too
            raise GroupConfigError(f"{key}={value!r} must be between {low} and {high}")
        return x

    return parse


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(key: str, value: str) -> str:
        if value not in choices:
            raise GroupConfigError(f"{key}={value!r}; valid values: {', '.join(choices)}")
        return value

    return parse


def _dlq_topic(key: str, value: str) -> str:
    if value and (not _LEGAL_TOPIC.match(value) or value in (".", "..")):
        raise GroupConfigError(
            f"{key}={value!r} is not a legal topic name (ASCII letters, digits, '.', '_', '-')"
        )
    if value.startswith("__"):
        raise GroupConfigError(f"{key}={value!r}: names starting with '__' are internal topics")
    return value


_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


@frozen
class _Key:
    broker_key: str | None
    default: str
    parse: Callable[[str, str], Any]


#: group key -> (broker default key, Kafka's default, parser). The order is DescribeConfigs'.
GROUP_CONFIGS: dict[str, _Key] = {
    "errors.deadletterqueue.topic.name": _Key(None, "", _dlq_topic),
    "retry.backoff.max.ms": _Key("group.share.retry.backoff.max.ms", "60000", _int_in(0, _DAY_MS)),
    "retry.backoff.ms": _Key("group.share.retry.backoff.ms", "1000", _int_in(0, _DAY_MS)),
    "retry.backoff.multiplier": _Key(
        "group.share.retry.backoff.multiplier", "2.0", _float_in(1.0, 100.0)
    ),
    "share.auto.offset.reset": _Key(None, "latest", _choice("latest", "earliest")),
    "share.delivery.count.limit": _Key("group.share.delivery.count.limit", "5", _int_in(2, 100)),
    "share.heartbeat.interval.ms": _Key(
        "group.share.heartbeat.interval.ms", "5000", _int_in(100, _HOUR_MS)
    ),
    "share.record.lock.duration.ms": _Key(
        "group.share.record.lock.duration.ms", "30000", _int_in(100, _HOUR_MS)
    ),
    "share.session.timeout.ms": _Key(
        "group.share.session.timeout.ms", "45000", _int_in(500, _HOUR_MS)
    ),
}

#: broker-only share keys -> (Kafka's default, parser)
BROKER_ONLY: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "group.share.partition.max.record.locks": ("2000", _int_in(100, 1_000_000)),
    "group.share.max.size": ("200", _int_in(1, 1000)),
    "share.coordinator.state.topic.num.partitions": ("50", _int_in(1, 10_000)),
    "share.coordinator.state.topic.replication.factor": ("3", _int_in(1, 32)),
}

#: every broker-level share key and its default (actors/configs.py merges these in)
BROKER_DEFAULTS: dict[str, str] = {
    **{k.broker_key: k.default for k in GROUP_CONFIGS.values() if k.broker_key},
    **{key: default for key, (default, _) in BROKER_ONLY.items()},
}


def _hint(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@frozen(kw_only=True)
class ShareGroupConfig:
    """One share group's effective configs (Kafka's key in each field's docstring)."""

    record_lock_duration_ms: int = 30_000
    """share.record.lock.duration.ms: an acquired record is released when its lock expires."""
    auto_offset_reset: str = "latest"
    """share.auto.offset.reset: where a new share-partition starts ("latest" or "earliest")."""
    heartbeat_interval_ms: int = 5_000
    """share.heartbeat.interval.ms: returned to members in every heartbeat."""
    session_timeout_ms: int = 45_000
    """share.session.timeout.ms: a member silent this long is fenced (removed)."""
    delivery_count_limit: int = 5
    """share.delivery.count.limit: a record released or expired after this many deliveries
    is archived (and dead-lettered)."""
    retry_backoff_ms: int = 1_000
    """retry.backoff.ms: the delay of a release with the group's back-off, first delivery."""
    retry_backoff_multiplier: float = 2.0
    """retry.backoff.multiplier: the delay grows by this factor per delivery."""
    retry_backoff_max_ms: int = 60_000
    """retry.backoff.max.ms: the delay never exceeds this (before jitter)."""
    dead_letter_topic_name: str = ""
    """errors.deadletterqueue.topic.name: "" means ``<topic>.dlq`` per source topic."""
    partition_max_record_locks: int = 2_000
    """group.share.partition.max.record.locks (broker only): in-flight records per
    share-partition past its start offset."""
    max_size: int = 200
    """group.share.max.size (broker only): the most members a share group may have."""

    def dead_letter_topic(self, source_topic: str) -> str:
        """The dead-letter topic of records from ``source_topic``."""
        return self.dead_letter_topic_name or f"{source_topic}.dlq"

    def nominal_backoff_ms(self, delivery_count: int) -> int:
        """``retry.backoff.ms * retry.backoff.multiplier ** (delivery_count - 1)``, capped by
        ``retry.backoff.max.ms`` (before jitter). ``delivery_count`` >= 1."""
        exponent = max(delivery_count, 1) - 1
        delay = float(self.retry_backoff_ms)
        for _ in range(exponent):  # stop multiplying once capped: no float overflow
            delay *= self.retry_backoff_multiplier
            if delay >= self.retry_backoff_max_ms:
                return self.retry_backoff_max_ms
        return min(int(delay), self.retry_backoff_max_ms)


_FIELDS = {
    "share.record.lock.duration.ms": "record_lock_duration_ms",
    "share.auto.offset.reset": "auto_offset_reset",
    "share.heartbeat.interval.ms": "heartbeat_interval_ms",
    "share.session.timeout.ms": "session_timeout_ms",
    "share.delivery.count.limit": "delivery_count_limit",
    "retry.backoff.ms": "retry_backoff_ms",
    "retry.backoff.multiplier": "retry_backoff_multiplier",
    "retry.backoff.max.ms": "retry_backoff_max_ms",
    "errors.deadletterqueue.topic.name": "dead_letter_topic_name",
    "group.share.partition.max.record.locks": "partition_max_record_locks",
    "group.share.max.size": "max_size",
}


def group_defaults(broker_configs: Mapping[str, str]) -> dict[str, str]:
    """Each group key's default on this broker (its broker key's value, else Kafka's)."""
    return {
        key: broker_configs.get(k.broker_key, k.default) if k.broker_key else k.default
        for key, k in GROUP_CONFIGS.items()
    }


def effective_group_configs(
    overrides: Mapping[str, str], broker_configs: Mapping[str, str]
) -> dict[str, str]:
    """Every group key's value (strings, as DescribeConfigs shows them)."""
    return {**group_defaults(broker_configs), **overrides}


def _check_together(values: Mapping[str, Any]) -> None:
    """Rules between keys, on the parsed effective values."""
    if values["share.heartbeat.interval.ms"] >= values["share.session.timeout.ms"]:
        raise GroupConfigError(
            f"share.heartbeat.interval.ms={values['share.heartbeat.interval.ms']} must be "
            f"smaller than share.session.timeout.ms={values['share.session.timeout.ms']}"
        )
    if values["retry.backoff.max.ms"] < values["retry.backoff.ms"]:
        raise GroupConfigError(
            f"retry.backoff.max.ms={values['retry.backoff.max.ms']} must not be smaller than "
            f"retry.backoff.ms={values['retry.backoff.ms']}"
        )


def _parse_all(effective: Mapping[str, str]) -> dict[str, Any]:
    return {key: GROUP_CONFIGS[key].parse(key, effective[key]) for key in GROUP_CONFIGS}


def validate_group_configs(
    configs: Mapping[str, str | None], broker_configs: Mapping[str, str] | None = None
) -> None:
    """Raise ``GroupConfigError`` for an unknown key (did-you-mean hint), a bad value, or a
    combination that breaks a rule between keys. ``configs`` is the group's whole new set of
    overrides (a ``None`` value: the key reverts to its default, only the key is checked)."""
    for key, value in configs.items():
        if key not in GROUP_CONFIGS:
            hint = _hint(key, GROUP_CONFIGS)
            if not hint and key in BROKER_DEFAULTS:
                hint = "; it is a broker config (set with --config at startup)"
            raise GroupConfigError(f"unknown group config {key!r}{hint}")
        if value is not None:
            GROUP_CONFIGS[key].parse(key, value)
    present = {k: v for k, v in configs.items() if v is not None}
    _check_together(_parse_all(effective_group_configs(present, broker_configs or {})))


def validate_broker_share_configs(broker_configs: Mapping[str, str]) -> None:
    """Check the broker-level share keys present in ``broker_configs`` (merged defaults)."""
    for k in GROUP_CONFIGS.values():
        if k.broker_key and k.broker_key in broker_configs:
            k.parse(k.broker_key, str(broker_configs[k.broker_key]))
    for key, (_, parse) in BROKER_ONLY.items():
        if key in broker_configs:
            parse(key, str(broker_configs[key]))
    try:
        _check_together(_parse_all(group_defaults(broker_configs)))
    except GroupConfigError as e:
        raise GroupConfigError(f"the group.share.* defaults: {e}") from None


def resolve(
    overrides: Mapping[str, str], broker_configs: Mapping[str, str]
) -> ShareGroupConfig:
    """The ``ShareGroupConfig`` from a group's overrides and the broker's configs. Stored
    overrides were validated when set; one that no longer parses (a broker default changed
    under it) falls back to the broker's default rather than failing the group."""
    defaults = group_defaults(broker_configs)
    values: dict[str, Any] = {}
    for key in GROUP_CONFIGS:
        parse = GROUP_CONFIGS[key].parse
        try:
            values[key] = parse(key, overrides.get(key, defaults[key]))
        except GroupConfigError:
            values[key] = parse(key, defaults[key])
    try:
        _check_together(values)
    except GroupConfigError:
        values = _parse_all(defaults)
    for key, (default, parse) in BROKER_ONLY.items():
        if key in _FIELDS:
            values[key] = parse(key, str(broker_configs.get(key, default)))
    return ShareGroupConfig(**{_FIELDS[k]: v for k, v in values.items()})


def group_config(
    image: Any, group_id: str, broker_configs: Mapping[str, str]
) -> ShareGroupConfig:
    """``group_id``'s effective share-group config: its overrides in the metadata ``image``
    (``image.group_configs``), else the broker's ``group.share.*`` defaults, else Kafka's."""
    overrides = getattr(image, "group_configs", {}).get(group_id, {})
    return resolve(overrides, broker_configs)
