"""The small value types of the public API (all immutable and hashable)."""

from __future__ import annotations

from collections import _tuplegetter  # namedtuple's C field accessor
from collections.abc import Mapping
from dataclasses import field
from typing import Any, NamedTuple

from rillet.frozen import frozen


class TopicPartition(NamedTuple):
    """A partition of a topic; hashable, usable as a dict key."""

    topic: str
    partition: int


@frozen
class ConsumerGroupMetadata:
    """A consumer's place in its group, for ``Producer.send_offsets_to_transaction`` (Kafka's
    ConsumerGroupMetadata, KIP-447): the group coordinator refuses the offsets if the member's
    ``generation_id`` (its member epoch) or ``member_id`` is no longer current, so a zombie
    whose partitions moved cannot commit. ``generation_id`` -1 and ``member_id`` "" skip the
    check (a consumer without a subscription, or a plain group id)."""

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


class RecordMetadata(NamedTuple):
    """Where an acknowledged record was written. ``timestamp`` is ms since the epoch
    (the record's create time; on a message.timestamp.type=LogAppendTime topic the leader's
    append time, as in Kafka); ``offset`` is -1 when acks=0."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class _RecordType(type):
    """ConsumerRecord's metaclass: ``ConsumerRecord(topic, partition, offset, timestamp, key,
    value, headers=())`` as with a namedtuple (positional or keyword arguments)."""

    def __call__(cls, topic, partition, offset, timestamp, key, value, headers=()):
        return tuple.__new__(cls, (topic, partition, offset, timestamp, key, value, headers))


class ConsumerRecord(tuple, metaclass=_RecordType):
    """One record returned by the consumer. ``timestamp`` in ms since the epoch; ``key`` and
    ``value`` bytes or None (or what the deserializers return); ``headers`` a tuple of
    (str, bytes | None) pairs, ``()`` when there are none (immutable, so one shared empty tuple
    costs nothing per record).

    A named tuple (fields by name or index, ``_fields``, ``_asdict()``, ``_replace()``,
    ``_make()``). The records poll() returns are instances of a subclass that the consumer
    builds from C with tuple's own constructor (see :class:`FetchedRecord`); compare types
    with ``isinstance``."""

    __slots__ = ()
    _fields = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")
    __match_args__ = _fields

    topic = _tuplegetter(0, "the topic (str)")
    partition = _tuplegetter(1, "the partition (int)")
    offset = _tuplegetter(2, "the record's offset (int)")
    timestamp = _tuplegetter(3, "ms since the epoch (int)")
    key = _tuplegetter(4, "bytes, None or what key.deserializer returned")
    value = _tuplegetter(5, "bytes, None or what value.deserializer returned")
    headers = _tuplegetter(6, "((name, bytes | None), ...), () without headers")
    #: kafka-python's: 0 (CREATE_TIME) the producer's timestamp, 1 (LOG_APPEND_TIME) the
    #: leader's clock at append (a topic with message.timestamp.type=LogAppendTime). A class
    #: attribute: such records are of the subclass :class:`LogAppendTimeRecord`
    timestamp_type = 0

    @classmethod
    def _make(cls, iterable) -> ConsumerRecord:
        out = tuple.__new__(cls, iterable)
        if len(out) != 7:
            raise TypeError(f"expected 7 fields, got {len(out)}")
        return out

    def _replace(self, **changes: Any) -> ConsumerRecord:
        fields = dict(zip(self._fields, self, strict=True))
        unknown = changes.keys() - fields.keys()
        if unknown:
            raise ValueError(f"unknown field names: {sorted(unknown)}")
        fields.update(changes)
        if self.timestamp_type:
            return LogAppendTimeRecord(tuple(fields.values()))
        return ConsumerRecord(**fields)

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))

    def __getnewargs__(self) -> tuple:  # copy and pickle: tuple.__new__(cls, fields)
        return (tuple(self),)

    def __repr__(self) -> str:
        return "ConsumerRecord(" + ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)) + ")"


class _FetchedRecordType(_RecordType):
    __call__ = type.__call__  # a C-level slot (type_call), not the Python __call__ above


class FetchedRecord(ConsumerRecord, metaclass=_FetchedRecordType):
    """The class of the records poll() returns: a ConsumerRecord that the consumer makes with
    ``FetchedRecord(fields)`` from C (``map(FetchedRecord, zip(...columns))``): the call goes
    straight to tuple's constructor, ~60 ns per record less than ``tuple.__new__`` on a
    namedtuple (a third of building a record)."""

    __slots__ = ()


class LogAppendTimeRecord(FetchedRecord):
    """A fetched record of a LogAppendTime topic: ``timestamp`` is its append time."""

    __slots__ = ()
    timestamp_type = 1


CREATE_TIME = 0
LOG_APPEND_TIME = 1


@frozen
class NewTopic:
    """A topic to create: ``configs`` uses Kafka's topic config names (``retention.ms``)."""

    name: str
    num_partitions: int = 1
    replication_factor: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)
    #: kafka-python's name for ``configs`` (merged into it)
    topic_configs: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.topic_configs:
            object.__setattr__(self, "configs", {**self.configs, **self.topic_configs})


@frozen
class PartitionInfo:
    """One partition as described by the cluster metadata. ``leader`` is -1 without one."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader_epoch: int = -1
    #: replicas that found a corrupt batch and have not re-fetched it yet
    damaged: tuple[int, ...] = ()
    #: why there is no leader, e.g. "offline: replica on broker 2 is damaged; ..."
    offline_reason: str | None = None


@frozen
class TopicDescription:
    name: str
    partitions: tuple[PartitionInfo, ...]
    topic_id: str | None = None
    is_internal: bool = False

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0


@frozen
class BrokerInfo:
    broker_id: int
    host: str
    port: int
    rack: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@frozen
class ClusterDescription:
    cluster_id: str | None
    controller_id: int
    brokers: tuple[BrokerInfo, ...]


@frozen
class ConfigEntry:
    """A topic config value; ``is_default`` is True when no override is set."""

    name: str
    value: str | None
    is_default: bool = False
    is_sensitive: bool = False
    read_only: bool = False
