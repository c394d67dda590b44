"""The small value types of the public API (all immutable and hashable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class TopicPartition(NamedTuple):
    """A partition of a topic; hashable, usable as a dict key."""

    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where an acknowledged record was written. ``timestamp`` is ms since the epoch
    (the record's create time); ``offset`` is -1 when acks=0."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class ConsumerRecord(NamedTuple):
    """One record returned by the consumer. ``timestamp`` in ms since the epoch; ``key`` and
    ``value`` bytes or None (or what the deserializers return); ``headers`` a tuple of
    (str, bytes | None) pairs, ``()`` when there are none (immutable, so one shared empty tuple
    costs nothing per record)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: Any
    value: Any
    headers: tuple


@dataclass(frozen=True, slots=True)
class NewTopic:
    """A topic to create: ``configs`` uses Kafka's topic config names (``retention.ms``)."""

    name: str
    num_partitions: int = 1
    replication_factor: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition as described by the cluster metadata. ``leader`` is -1 without one."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader_epoch: int = -1


@dataclass(frozen=True, slots=True)
class TopicDescription:
    name: str
    partitions: tuple[PartitionInfo, ...]
    topic_id: str | None = None
    is_internal: bool = False

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    broker_id: int
    host: str
    port: int
    rack: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ClusterDescription:
    cluster_id: str | None
    controller_id: int
    brokers: tuple[BrokerInfo, ...]


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """A topic config value; ``is_default`` is True when no override is set."""

    name: str
    value: str | None
    is_default: bool = False
    is_sensitive: bool = False
    read_only: bool = False
