"""Topic admin: create and delete topics, add partitions, alter topic configs, producer ids.

Each handler takes the committed image and the request's items (the wire request's own
objects: anything with the named fields), and returns a ``ControllerResult`` whose response
is a list of per-item outcomes. Items are decided one after another against the image as the
earlier items of the same request leave it, so two creations of one name in a request give
TOPIC_ALREADY_EXISTS for the second. ``validate_only`` decides and answers but keeps no
record.

Config validation is the caller's (``validate_configs`` raises ``ValueError`` with the
message to return as INVALID_CONFIG): the key registry lives with the broker's configs.
AlterConfigs serves topics, share groups (GROUP, 32: validated by ``validate_group_configs``;
a group need not exist to be configured, as in Kafka), users, and brokers (BROKER, 4: dynamic
broker configs, coordinator/broker_configs.py, validated by ``validate_broker_configs``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from rillet.coordinator import broker_configs, users
from rillet.coordinator import metadata as md

from .result import ConfigOutcome, ControllerResult, Note, ProducerIdOutcome, TopicOutcome

# Kafka's numbers (ConfigResource.Type, AlterConfigOp); the wire enums carry the same values
RESOURCE_TOPIC = 2
RESOURCE_GROUP = 32
RESOURCE_BROKER = 4
OP_SET = 0
OP_DELETE = 1

Validate = Callable[[Mapping[str, str | None]], None]


class NewTopic(Protocol):
    name: str
    num_partitions: int  # -1: the broker's num.partitions
    replication_factor: int  # -1: the broker's default.replication.factor
    configs: Mapping[str, str]


class NewPartitions(Protocol):
    name: str
    count: int


class ConfigChange(Protocol):
    name: str
    op: int
    value: str | None


class ConfigResource(Protocol):
    resource_type: int
    resource_name: str
    configs: Iterable[ConfigChange]


def create_topics(
    image: md.MetadataImage,
    topics: Iterable[NewTopic],
    *,
    validate_only: bool,
    default_partitions: int,
    default_replication_factor: int,
    new_topic_id: Callable[[], str],
    validate_configs: Validate,
) -> ControllerResult[list[TopicOutcome]]:
    results: list[TopicOutcome] = []
    records: list[object] = []
    notes: list[Note] = []
    for t in topics:
        partitions = t.num_partitions if t.num_partitions != -1 else default_partitions
        rf = t.replication_factor if t.replication_factor != -1 else default_replication_factor
        try:
            validate_configs(t.configs)
        except ValueError as e:
            results.append(TopicOutcome(t.name, "INVALID_CONFIG", str(e)))
            continue
        try:
            recs = md.create_topic(image, t.name, partitions, rf, t.configs, new_topic_id())
        except md.MetadataError as e:
            results.append(TopicOutcome(t.name, e.kind, e.message))
            continue
        if not validate_only:
            image = md.replay(recs, image)
            records += recs
            notes.append(
                Note(
                    "info",
                    f"creating topic {t.name} with {partitions} partition(s), "
                    f"replication factor {rf}",
                )
            )
        results.append(
            TopicOutcome(
                t.name,
                topic_id=recs[0].topic_id,
                num_partitions=partitions,
                replication_factor=rf,
            )
        )
    return ControllerResult(records, results, tuple(notes))


def delete_topics(
    image: md.MetadataImage, names: Iterable[str]
) -> ControllerResult[list[TopicOutcome]]:
    results: list[TopicOutcome] = []
    records: list[object] = []
    notes: list[Note] = []
    for name in names:
        try:
            recs = md.delete_topic(image, name)
        except md.MetadataError as e:
            results.append(TopicOutcome(name, e.kind, e.message))
            continue
        image = md.replay(recs, image)
        records += recs
        notes.append(Note("info", f"deleting topic {name}"))
        results.append(TopicOutcome(name))
    return ControllerResult(records, results, tuple(notes))


def create_partitions(
    image: md.MetadataImage, topics: Iterable[NewPartitions], *, validate_only: bool
) -> ControllerResult[list[TopicOutcome]]:
    results: list[TopicOutcome] = []
    records: list[object] = []
    notes: list[Note] = []
    for t in topics:
        try:
            recs = md.create_partitions(image, t.name, t.count)
        except md.MetadataError as e:
            results.append(TopicOutcome(t.name, e.kind, e.message))
            continue
        if not validate_only:
            image = md.replay(recs, image)
            records += recs
            notes.append(Note("info", f"topic {t.name} grows to {t.count} partitions"))
        results.append(TopicOutcome(t.name))
    return ControllerResult(records, results, tuple(notes))


def _changes(resource: ConfigResource) -> list[tuple[str, str | None]]:
    """The (name, value or None to delete) pairs of a resource; ValueError if malformed."""
    if resource.resource_type not in (
        RESOURCE_TOPIC, RESOURCE_GROUP, RESOURCE_BROKER, users.RESOURCE_USER
    ):
        raise ValueError(f"config resource type {resource.resource_type} cannot be altered")
    changes = []
    for c in resource.configs:
        if c.op == OP_SET and c.value is None:
            raise ValueError(f"{c.name}: SET needs a value")
        if c.op not in (OP_SET, OP_DELETE):
            raise ValueError(f"{c.name}: unknown operation {c.op}")
        changes.append((c.name, c.value if c.op == OP_SET else None))
    return changes


def alter_configs(
    image: md.MetadataImage,
    resources: Iterable[ConfigResource],
    *,
    validate_only: bool,
    validate_configs: Validate,
    validate_group_configs: Validate | None = None,
    validate_broker_configs: broker_configs.Validate | None = None,
) -> ControllerResult[list[ConfigOutcome]]:
    results: list[ConfigOutcome] = []
    records: list[object] = []
    notes: list[Note] = []
    for r in resources:
        error, message = "NONE", None
        try:
            changes = _changes(r)
            if r.resource_type == users.RESOURCE_USER:
                updates = users.user_updates(r.resource_name, changes)
                recs = []
                if users.CURVE_PUBLIC_KEY in updates:
                    recs.append(md.SetUserKey(user=r.resource_name,
                                              public_key=updates[users.CURVE_PUBLIC_KEY]))
                for mech in (users.SCRAM_SHA_256, users.SCRAM_SHA_512):
                    if mech in updates:
                        recs.append(md.SetUserScram(user=r.resource_name, mechanism=mech,
                                                    credential=updates[mech]))
            elif r.resource_type == RESOURCE_GROUP:
                if validate_group_configs is None:
                    raise ValueError("group configs are not supported here")
                current = image.group_configs.get(r.resource_name, {})
                validate_group_configs({**current, **dict(changes)})
                recs = md.alter_group_configs(image, r.resource_name, changes)
            elif r.resource_type == RESOURCE_BROKER:
                if validate_broker_configs is None:
                    raise ValueError("broker configs are not supported here")
                recs = broker_configs.alter(
                    image.broker_configs, r.resource_name, changes, validate_broker_configs
                )
            else:
                topic = image.topics.get(r.resource_name)
                validate_configs({**(topic.configs if topic else {}), **dict(changes)})
                recs = md.alter_configs(image, r.resource_name, changes)
            if not validate_only:
                image = md.replay(recs, image)
                records += recs
                notes.append(
                    Note("info", f"altering configs of {r.resource_name}: {dict(changes)}")
                )
        except ValueError as e:
            error, message = "INVALID_CONFIG", str(e)
        except md.MetadataError as e:
            error, message = e.kind, e.message
        results.append(ConfigOutcome(r.resource_type, r.resource_name, error, message))
    return ControllerResult(records, results, tuple(notes))


def init_producer_id(image: md.MetadataImage) -> ControllerResult[ProducerIdOutcome]:
    """A new producer id (epoch 0); the next one is committed with it."""
    pid = image.next_producer_id
    return ControllerResult(
        [md.ProducerIds(next_producer_id=pid + 1)], ProducerIdOutcome(producer_id=pid)
    )
