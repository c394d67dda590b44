"""Dynamic broker configs (Kafka's ``kafka-configs --entity-type brokers``): the records, how
the image keeps them, and the controller's decision. Pure.

A BROKER config resource is named ``""`` (the cluster-wide default, Kafka's
``--entity-default``) or a broker id (``"1"``). Its values live in the metadata log as
``SetBrokerConfig(broker, name, value)`` records (``value=None`` removes the value), kept in
``MetadataImage.broker_configs``: ``{"": {...}, "1": {...}}``. A broker's effective configs
are, most specific first (Kafka's order of ``ConfigSource``)::

    DYNAMIC_BROKER_CONFIG          image.broker_configs["<id>"]
    DYNAMIC_DEFAULT_BROKER_CONFIG  image.broker_configs[""]
    STATIC_BROKER_CONFIG           server.properties / --config
    DEFAULT_CONFIG                 actors/configs.py BROKER_DEFAULTS

Which keys are dynamic, and what a value must look like, is the broker's config registry's
(actors/dynamic_configs.py): ``alter`` takes it as ``validate``, which raises ``ValueError``
with the message to answer (INVALID_CONFIG), e.g. for a key only a restart can change.

Worked example: default ``log.retention.ms=3600000`` and broker 2's ``log.retention.ms=60000``
give broker 2 one minute and every other broker one hour, for each topic that has no
``retention.ms`` of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from rillet.frozen import frozen

DEFAULT_RESOURCE = ""  # the cluster-wide default (Kafka: --entity-default, <default>)

# where an effective broker value comes from (Kafka's ConfigSource numbers)
DYNAMIC_BROKER = 2
DYNAMIC_DEFAULT_BROKER = 3
STATIC_BROKER = 4
DEFAULT = 5


@frozen(kw_only=True)
class SetBrokerConfig:
    """Broker ``broker``'s (``""``: every broker's default) dynamic value of ``name``;
    ``value=None`` removes it (back to the static value)."""

    broker: str
    name: str
    value: str | None


BROKER_CONFIG_RECORDS = (SetBrokerConfig,)

Validate = Callable[[str, Mapping[str, str | None]], None]


def resource_key(resource_name: str) -> str:
    """``""`` or a broker id in canonical form (``"01"`` is ``"1"``); ``ValueError`` else."""
    name = resource_name.strip()
    if name == DEFAULT_RESOURCE:
        return DEFAULT_RESOURCE
    if not name.isdigit():
        raise ValueError(
            f"broker config resource {resource_name!r}: a broker id, or '' for the "
            "cluster-wide default"
        )
    return str(int(name))


def apply_record(
    configs: Mapping[str, Mapping[str, str]], record: SetBrokerConfig
) -> dict[str, Mapping[str, str]]:
    """``MetadataImage.broker_configs`` after ``record`` (new mappings, never edited)."""
    one = dict(configs.get(record.broker, {}))
    if record.value is None:
        one.pop(record.name, None)
    else:
        one[record.name] = record.value
    out = dict(configs)
    if one:
        out[record.broker] = one
    else:
        out.pop(record.broker, None)
    return out


def snapshot_records(configs: Mapping[str, Mapping[str, str]]) -> list[SetBrokerConfig]:
    return [
        SetBrokerConfig(broker=b, name=k, value=v)
        for b in sorted(configs)
        for k, v in sorted(configs[b].items())
    ]


def alter(
    configs: Mapping[str, Mapping[str, str]],
    resource_name: str,
    changes: Iterable[tuple[str, str | None]],
    validate: Validate,
) -> list[SetBrokerConfig]:
    """The records of validated ``(key, value-or-None)`` changes of one BROKER resource, all
    or none. ``validate(resource_key, new dynamic values of the resource)`` raises
    ``ValueError``; so does a malformed resource name."""
    key = resource_key(resource_name)
    changes = list(changes)
    current = configs.get(key, {})
    after = {**current, **dict(changes)}
    validate(key, after)
    return [
        SetBrokerConfig(broker=key, name=name, value=value)
        for name, value in changes
        if current.get(name) != value
    ]


def dynamic_layers(
    configs: Mapping[str, Mapping[str, str]], broker_id: int
) -> tuple[Mapping[str, str], Mapping[str, str]]:
    """(cluster-wide defaults, this broker's own values)."""
    return configs.get(DEFAULT_RESOURCE, {}), configs.get(str(broker_id), {})


def effective(
    static: Mapping[str, str],
    configs: Mapping[str, Mapping[str, str]],
    broker_id: int,
) -> dict[str, str]:
    """Broker ``broker_id``'s configs: its dynamic values over the dynamic defaults over its
    ``static`` configs (which hold every key: the defaults merged with server.properties)."""
    cluster, own = dynamic_layers(configs, broker_id)
    return {**static, **cluster, **own}


def source_of(
    name: str,
    static: Mapping[str, str],
    defaults: Mapping[str, str],
    configs: Mapping[str, Mapping[str, str]],
    broker_id: int,
) -> int:
    """Where broker ``broker_id``'s value of ``name`` comes from (a ConfigSource number)."""
    cluster, own = dynamic_layers(configs, broker_id)
    if name in own:
        return DYNAMIC_BROKER
    if name in cluster:
        return DYNAMIC_DEFAULT_BROKER
    if name in static and static[name] != defaults.get(name):
        return STATIC_BROKER
    return DEFAULT
