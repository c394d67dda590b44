"""Cluster metadata as a log of records applied to an immutable image (KRaft style). Pure.

The controller never edits state in place: every change is a record appended to the metadata
log, and ``apply(image, record)`` returns the next image. Replaying the log from the start
rebuilds the image, which is how a broker restarts (and, with Raft, how followers keep up).

Records (frozen dataclasses; ``to_dict``/``from_dict`` give a JSON-safe form for storage):

* ``RegisterBroker(broker_id, host, port, rack, incarnation, internal_host, internal_port)``
  a broker process (re)joins; it starts fenced; a new incarnation fences the previous
  process first. ``host:port`` is its client listener (what clients see);
  ``internal_host:internal_port`` its inter-broker listener (Raft, heartbeats, replica
  fetches, AlterPartition, forwarded admin requests; docs/cluster.md). Records written
  before the inter-broker listener existed have no internal address (``""``/0).
* ``UnfenceBroker(broker_id)`` / ``FenceBroker(broker_id)``  may / may not lead partitions
* ``CreateTopic(name, topic_id, configs)``  configs only hold the keys set explicitly
* ``PartitionRecord(topic, partition, replicas, isr, leader, leader_epoch)``  a new partition
* ``PartitionChangeRecord`` (coordinator/election.py)  the whole new state of a partition
  after a leader, ISR, reassignment or damage change
* ``SetConfig(topic, name, value)``  ``value=None`` removes the override (back to default)
* ``SetGroupConfig(group_id, name, value)``  a share group's config (the GROUP resource,
  coordinator/share/config.py); a group need not exist to be configured, as in Kafka
* ``SetBrokerConfig(broker, name, value)``  a dynamic broker config, per broker or the
  cluster-wide default (``broker=""``; coordinator/broker_configs.py)
* ``DeleteTopic(name)``
* ``AccessControlEntryRecord`` / ``RemoveAccessControlEntryRecord``  an ACL binding added /
  removed (coordinator/acl_store.py); the image keeps the set in ``acls``
* ``FeatureLevelRecord(name, level)``  the finalized ``metadata.version`` (coordinator/features.py:
  which level each record type needs, and the rules of a rolling upgrade)

Controller decisions are functions from the image and a request to a list of records, or a
``MetadataError`` (never a partial list); coordinator/control/ applies them to requests. The
records are committed through the Raft-replicated ``__cluster_metadata`` log
(actors/metadata_log.py) and replayed into the image on every broker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

from rillet.frozen import frozen

from . import acl_store, broker_configs, features, quotas
from .acl import AclBinding
from .election import PartitionChangeRecord
from .placement import PlacementError, assign_replicas

MAX_TOPIC_NAME = 249
# Each hosted partition is an actor (memory, no thread: docs/runtime.md) with an open segment
# file: refuse layouts no broker can host (memory, file descriptors) rather than letting one
# request create millions of them. 10,000 is issue #12's largest measured layout.
MAX_PARTITIONS_PER_TOPIC = 10_000
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")


# ------------------------------------------------------------------------------------ errors


class MetadataError(Exception):
    """A controller request that cannot be applied. ``kind`` names the Kafka error code."""

    kind = "INVALID_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidTopicError(MetadataError):
    kind = "INVALID_TOPIC_EXCEPTION"


class TopicExistsError(MetadataError):
    kind = "TOPIC_ALREADY_EXISTS"


class UnknownTopicError(MetadataError):
    kind = "UNKNOWN_TOPIC_OR_PARTITION"


class InvalidPartitionsError(MetadataError):
    kind = "INVALID_PARTITIONS"


class InvalidReplicationFactorError(MetadataError):
    kind = "INVALID_REPLICATION_FACTOR"


# ----------------------------------------------------------------------------------- records

_rec = dataclass(frozen=True, slots=True, kw_only=True)


@_rec
class RegisterBroker:
    """A broker process registering. ``incarnation`` is new for every process start (a
    random id): a registration with a new one means the previous process is gone, so its
    leaderships and ISR places are taken away at once (see ``register_broker``).
    ``clean_shutdown``: whether that previous process shut down cleanly (informational)."""

    broker_id: int
    host: str
    port: int
    rack: str | None = None
    incarnation: str = ""
    clean_shutdown: bool = True
    internal_host: str = ""
    internal_port: int = 0
    kafka_host: str = ""  # the KAFKA listener, advertised to Kafka clients ("": none)
    kafka_port: int = 0
    metadata_version_min: int = 0  # the metadata.version levels it reads (0: not reported,
    metadata_version_max: int = 0  # i.e. written before feature levels: level 1 only)


@_rec
class UnfenceBroker:
    broker_id: int


@_rec
class FenceBroker:
    broker_id: int


@_rec
class CreateTopic:
    name: str
    topic_id: str
    configs: tuple[tuple[str, str], ...] = ()


@_rec
class PartitionRecord:
    topic: str
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int = 0


@_rec
class SetConfig:
    topic: str
    name: str
    value: str | None


@_rec
class SetGroupConfig:
    """``value=None`` removes the group's override of ``name`` (back to the default)."""

    group_id: str
    name: str
    value: str | None


@_rec
class SetUserKey:
    """User ``user``'s CURVE public key (Z85); ``None`` removes the user (coordinator/users.py)."""

    user: str
    public_key: str | None


@_rec
class SetUserScram:
    """User ``user``'s SCRAM credential for ``mechanism`` (coordinator/scram.py, Kafka's
    ``salt=..,stored_key=..,server_key=..,iterations=..``); ``None`` removes it."""

    user: str
    mechanism: str
    credential: str | None


@_rec
class DeleteTopic:
    name: str


@_rec
class ProducerIds:
    """Producer ids below ``next_producer_id`` are allocated (InitProducerId)."""

    next_producer_id: int


RECORD_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        RegisterBroker,
        UnfenceBroker,
        FenceBroker,
        CreateTopic,
        PartitionRecord,
        SetConfig,
        SetGroupConfig,
        DeleteTopic,
        PartitionChangeRecord,
        ProducerIds,
        SetUserKey,
        SetUserScram,
        *acl_store.ACL_RECORDS,
        *broker_configs.BROKER_CONFIG_RECORDS,
        quotas.ClientQuotaRecord,
        features.FeatureLevelRecord,
    )
}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


_SCALARS = frozenset({int, str, bool, float, type(None), bytes})


def _flat(value: object) -> bool:
    """JSON-safe as it is: no dataclass inside (``asdict`` would convert one)."""
    t = type(value)
    if t in _SCALARS:
        return True
    if t is tuple or t is list:
        return all(type(v) in _SCALARS or _flat(v) for v in value)
    return not hasattr(t, "__dataclass_fields__")


def to_dict(record: object) -> dict:
    """A JSON-safe dict with a ``type`` key. Records of plain values (all of them today)
    skip ``dataclasses.asdict``, whose deep copies made encoding a 10,000-partition topic's
    creation take seconds on the controller's thread (issue #12); the result is the same."""
    cls = type(record)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(record))
    out = {"type": cls.__name__}
    for name in names:
        value = getattr(record, name)
        if not _flat(value):
            return {"type": cls.__name__, **asdict(record)}
        out[name] = value
    return out


def from_dict(data: Mapping) -> object:
    """Inverse of ``to_dict``; ``ValueError`` on an unknown type or wrong keys. A field
    added after a record was written (it has a default) takes its default."""
    cls = RECORD_TYPES.get(data.get("type", ""))
    if cls is None:
        features.check_readable(str(data.get("type")), False, features.LATEST_LEVEL)
    spec = _FIELD_SPECS.get(cls)
    if spec is None:
        spec = _FIELD_SPECS[cls] = tuple(
            (f.name, f.default is not MISSING or f.default_factory is not MISSING)
            for f in fields(cls)
        )
    kwargs = {}
    for name, has_default in spec:
        if has_default and name not in data:
            continue
        v = data[name]
        if isinstance(v, list):
            v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        kwargs[name] = v
    return cls(**kwargs)


_FIELD_SPECS: dict[type, tuple[tuple[str, bool], ...]] = {}  # (name, has a default)


# ------------------------------------------------------------------------------------- image


@frozen
class BrokerInfo:
    broker_id: int
    host: str
    port: int
    rack: str | None = None
    fenced: bool = True
    incarnation: str = ""
    internal_host: str = ""  # the inter-broker listener ("" when registered without one)
    internal_port: int = 0
    kafka_host: str = ""  # the KAFKA listener's advertised address ("": none)
    kafka_port: int = 0
    metadata_version_min: int = 0  # the metadata.version levels it reads (0: level 1 only)
    metadata_version_max: int = 0

    @property
    def metadata_versions(self) -> tuple[int, int]:
        """``(min, max)`` metadata.version this broker reads."""
        lo, hi = self.metadata_version_min, self.metadata_version_max
        return (lo or features.MIN_LEVEL, hi or features.MIN_LEVEL)

    @property
    def internal_address(self) -> str | None:
        """``host:port`` of the inter-broker listener, or None if it registered none."""
        return f"{self.internal_host}:{self.internal_port}" if self.internal_port else None


@frozen
class PartitionInfo:
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int = 0
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()
    damaged: tuple[int, ...] = ()  # replicas that reported a corrupt batch (election.py)


@frozen
class TopicInfo:
    name: str
    topic_id: str
    partitions: Mapping[int, PartitionInfo] = field(default_factory=dict)
    configs: Mapping[str, str] = field(default_factory=dict)


@frozen
class MetadataImage:
    """The cluster as of ``offset`` (the number of records applied). Never mutated: the
    mappings are replaced, not edited, so an image can be shared across threads."""

    brokers: Mapping[int, BrokerInfo] = field(default_factory=dict)
    topics: Mapping[str, TopicInfo] = field(default_factory=dict)
    offset: int = 0
    next_producer_id: int = 0
    group_configs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """group id -> its explicitly set group configs (coordinator/share/config.py)."""
    users: Mapping[str, str] = field(default_factory=dict)
    """user name -> its CURVE public key (coordinator/users.py)."""
    scram: Mapping[str, str] = field(default_factory=dict)
    """user name -> its SCRAM-SHA-256 credential text (coordinator/scram.py)."""
    scram_sha512: Mapping[str, str] = field(default_factory=dict)
    """user name -> its SCRAM-SHA-512 credential text (SetUserScram of that mechanism)."""
    acls: frozenset[AclBinding] = frozenset()
    """the ACL bindings (coordinator/acl_store.py), what the authorizer checks."""
    broker_configs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """dynamic broker configs: ``""`` (cluster-wide default) or a broker id -> its values
    (coordinator/broker_configs.py)."""
    client_quotas: Mapping[tuple, Mapping[str, float]] = field(default_factory=dict)
    """quota entity -> {quota key: value} (coordinator/quotas.py)."""
    features: Mapping[str, int] = field(default_factory=dict)
    """finalized feature levels (coordinator/features.py): ``metadata.version``."""

    @property
    def metadata_version(self) -> int:
        """The finalized metadata.version (1 while none is: a log from before levels)."""
        return features.finalized(self.features)

    def inter_broker_address(self, broker_id: int, voters: Mapping[int, str]) -> str | None:
        """``broker_id``'s inter-broker listener: as registered, else as
        ``controller.quorum.voters`` names it (before it has registered), else None."""
        info = self.brokers.get(broker_id)
        if info is not None and info.internal_address is not None:
            return info.internal_address
        return voters.get(broker_id)

    def live_brokers(self) -> list[int]:
        return sorted(b.broker_id for b in self.brokers.values() if not b.fenced)

    def partition(self, topic: str, partition: int) -> PartitionInfo | None:
        t = self.topics.get(topic)
        return None if t is None else t.partitions.get(partition)

    def partition_count(self) -> int:
        return sum(len(t.partitions) for t in self.topics.values())


def user_topic_ids(image: MetadataImage) -> dict[str, str]:
    """Topic name -> topic id, without the internal (``__``) topics."""
    return {name: t.topic_id for name, t in image.topics.items() if not name.startswith("__")}


def gone_or_recreated(before: Mapping[str, str], after: Mapping[str, str]) -> frozenset[str]:
    """The names of ``before`` (name -> topic id) that ``after`` lacks or gives another id:
    deleted topics, including those created again under their name between the two (whose
    name-keyed state, offsets or share-group state, belongs to the old topic)."""
    return frozenset(name for name, tid in before.items() if after.get(name) != tid)


def _with(mapping: Mapping, key, value) -> dict:
    out = dict(mapping)
    if value is None:
        out.pop(key, None)
    else:
        out[key] = value
    return out


_PARTITION_RECORDS = (PartitionRecord, PartitionChangeRecord)


def _partition_info(partitions: Mapping[int, PartitionInfo], record) -> PartitionInfo | None:
    """The partition's state after ``record`` (a partition record of its topic), or None
    if the record is about a partition the topic does not have (it is then ignored)."""
    if isinstance(record, PartitionRecord):
        return PartitionInfo(
            record.partition,
            record.replicas,
            record.isr,
            record.leader,
            record.leader_epoch,
        )
    old = partitions.get(record.partition)
    if old is None:
        return None
    return PartitionInfo(
        record.partition,
        tuple(record.replicas),
        tuple(record.isr),
        record.leader,
        record.leader_epoch,
        record.partition_epoch,
        tuple(record.adding_replicas),
        tuple(record.removing_replicas),
        tuple(record.damaged),
    )


def apply(image: MetadataImage, record: object) -> MetadataImage:
    """The image after ``record``. Records about unknown topics/brokers are ignored (they can
    follow a deletion in the log), so replay never fails."""
    nxt = image.offset + 1
    match record:
        case RegisterBroker(broker_id=b, host=h, port=p, rack=r):
            ih, ip = record.internal_host, record.internal_port
            info = BrokerInfo(
                b,
                h,
                p,
                r,
                fenced=True,
                incarnation=record.incarnation,
                internal_host=ih,
                internal_port=ip,
                kafka_host=record.kafka_host,
                kafka_port=record.kafka_port,
                metadata_version_min=record.metadata_version_min,
                metadata_version_max=record.metadata_version_max,
            )
            return replace(image, brokers=_with(image.brokers, b, info), offset=nxt)
        case UnfenceBroker(broker_id=b) | FenceBroker(broker_id=b):
            old = image.brokers.get(b)
            if old is None:
                return replace(image, offset=nxt)
            info = replace(old, fenced=isinstance(record, FenceBroker))
            return replace(image, brokers=_with(image.brokers, b, info), offset=nxt)
        case CreateTopic(name=n, topic_id=tid, configs=cfg):
            topic = TopicInfo(n, tid, {}, dict(cfg))
            return replace(image, topics=_with(image.topics, n, topic), offset=nxt)
        case PartitionRecord() | PartitionChangeRecord():
            topic = image.topics.get(record.topic)
            info = None if topic is None else _partition_info(topic.partitions, record)
            if info is None:
                return replace(image, offset=nxt)
            topic = replace(topic, partitions=_with(topic.partitions, record.partition, info))
            return replace(image, topics=_with(image.topics, topic.name, topic), offset=nxt)
        case SetConfig(topic=n, name=k, value=v):
            topic = image.topics.get(n)
            if topic is None:
                return replace(image, offset=nxt)
            topic = replace(topic, configs=_with(topic.configs, k, v))
            return replace(image, topics=_with(image.topics, n, topic), offset=nxt)
        case SetGroupConfig(group_id=g, name=k, value=v):
            configs = _with(image.group_configs.get(g, {}), k, v)
            return replace(
                image, group_configs=_with(image.group_configs, g, configs or None), offset=nxt
            )
        case SetUserKey(user=u, public_key=k):
            return replace(image, users=_with(image.users, u, k), offset=nxt)
        case SetUserScram(user=u, mechanism="SCRAM-SHA-512", credential=c):
            return replace(image, scram_sha512=_with(image.scram_sha512, u, c), offset=nxt)
        case SetUserScram(user=u, credential=c):
            return replace(image, scram=_with(image.scram, u, c), offset=nxt)
        case DeleteTopic(name=n):
            return replace(image, topics=_with(image.topics, n, None), offset=nxt)
        case ProducerIds(next_producer_id=n):
            return replace(image, next_producer_id=max(image.next_producer_id, n), offset=nxt)
        case acl_store.AccessControlEntryRecord() | acl_store.RemoveAccessControlEntryRecord():
            acls = acl_store.apply_acl_record(image.acls, record)
            return replace(image, acls=acls, offset=nxt)
        case broker_configs.SetBrokerConfig():
            configs = broker_configs.apply_record(image.broker_configs, record)
            return replace(image, broker_configs=configs, offset=nxt)
        case quotas.ClientQuotaRecord():
            cq = quotas.apply_record(image.client_quotas, record)
            return replace(image, client_quotas=cq, offset=nxt)
        case features.FeatureLevelRecord(name=n, level=v):
            return replace(image, features=_with(image.features, n, v or None), offset=nxt)
    raise ValueError(f"not a metadata record: {record!r}")


def replay(records: Iterable[object], image: MetadataImage | None = None) -> MetadataImage:
    """``apply`` of each record in turn. A run of partition records of one topic (a topic's
    creation: thousands of them) copies the topic's partition map once, not once per record
    (issue #12: that was quadratic, a second for 10,000 partitions)."""
    image = image or MetadataImage()
    records = list(records)
    i, n = 0, len(records)
    while i < n:
        record = records[i]
        topic = image.topics.get(record.topic) if isinstance(record, _PARTITION_RECORDS) else None
        if topic is None:
            image = apply(image, record)
            i += 1
            continue
        partitions = dict(topic.partitions)
        start = i
        while (
            i < n and isinstance(records[i], _PARTITION_RECORDS) and records[i].topic == topic.name
        ):
            info = _partition_info(partitions, records[i])
            if info is not None:
                partitions[records[i].partition] = info
            i += 1
        topic = replace(topic, partitions=partitions)
        image = replace(
            image,
            topics=_with(image.topics, topic.name, topic),
            offset=image.offset + (i - start),
        )
    return image


# ------------------------------------------------------------------------- controller logic


def validate_topic_name(name: str) -> None:
    if not name or name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is illegal")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopicError(f"topic name is longer than {MAX_TOPIC_NAME} characters")
    if not _LEGAL_TOPIC.match(name):
        raise InvalidTopicError(
            f"topic name {name!r} is illegal: use only ASCII letters, digits, '.', '_' and '-'"
        )


def _check_partition_count(count: int) -> None:
    if count > MAX_PARTITIONS_PER_TOPIC:
        raise InvalidPartitionsError(
            f"{count} partitions is more than the limit of {MAX_PARTITIONS_PER_TOPIC} per topic"
        )


def create_topic(
    image: MetadataImage,
    name: str,
    num_partitions: int,
    replication_factor: int,
    configs: Mapping[str, str],
    topic_id: str,
) -> list[object]:
    """Records creating a topic, or a ``MetadataError``. ``configs`` must be validated already."""
    validate_topic_name(name)
    if name in image.topics:
        raise TopicExistsError(f"topic {name!r} already exists")
    _check_partition_count(num_partitions)
    try:
        layout = assign_replicas(
            image.live_brokers(),
            num_partitions,
            replication_factor,
            start_index=image.partition_count(),
        )
    except PlacementError as e:
        kind = InvalidReplicationFactorError if e.replication_factor else InvalidPartitionsError
        raise kind(str(e)) from None
    records: list[object] = [
        CreateTopic(name=name, topic_id=topic_id, configs=tuple(sorted(configs.items())))
    ]
    for p, replicas in enumerate(layout):
        records.append(
            PartitionRecord(
                topic=name, partition=p, replicas=replicas, isr=replicas, leader=replicas[0]
            )
        )
    return records


def create_partitions(image: MetadataImage, name: str, count: int) -> list[object]:
    """Records growing ``name`` to ``count`` partitions with the topic's replication factor."""
    topic = image.topics.get(name)
    if topic is None:
        raise UnknownTopicError(f"topic {name!r} does not exist")
    current = len(topic.partitions)
    if count <= current:
        raise InvalidPartitionsError(
            f"topic {name!r} has {current} partitions; the new count must be larger, got {count}"
        )
    _check_partition_count(count)
    rf = len(next(iter(topic.partitions.values())).replicas) if topic.partitions else 1
    try:
        layout = assign_replicas(
            image.live_brokers(),
            count - current,
            rf,
            start_index=image.partition_count(),
            first_partition=current,
        )
    except PlacementError as e:
        raise InvalidReplicationFactorError(str(e)) from None
    return [
        PartitionRecord(topic=name, partition=current + i, replicas=r, isr=r, leader=r[0])
        for i, r in enumerate(layout)
    ]


def delete_topic(image: MetadataImage, name: str) -> list[object]:
    if name not in image.topics:
        raise UnknownTopicError(f"topic {name!r} does not exist")
    return [DeleteTopic(name=name)]


def alter_configs(
    image: MetadataImage, name: str, changes: Sequence[tuple[str, str | None]]
) -> list[object]:
    """``SetConfig`` records for validated ``(key, value-or-None)`` changes of one topic."""
    if name not in image.topics:
        raise UnknownTopicError(f"topic {name!r} does not exist")
    return [SetConfig(topic=name, name=k, value=v) for k, v in changes]


def alter_group_configs(
    image: MetadataImage, group_id: str, changes: Sequence[tuple[str, str | None]]
) -> list[object]:
    """``SetGroupConfig`` records for validated changes of one group's configs (the group
    need not exist: configs may be set before its first member joins, as in Kafka)."""
    if not group_id:
        raise MetadataError("the group id must not be empty")
    return [SetGroupConfig(group_id=group_id, name=k, value=v) for k, v in changes]


def register_broker(
    image: MetadataImage,
    broker_id: int,
    host: str,
    port: int,
    rack: str | None = None,
    *,
    incarnation: str = "",
    clean_shutdown: bool = True,
    unclean_default: bool = False,
    internal_host: str = "",
    internal_port: int = 0,
    kafka_host: str = "",
    kafka_port: int = 0,
    metadata_versions: tuple[int, int] = (0, 0),
) -> list[object]:
    """Records for a broker starting up: (re)register if an address or its incarnation (its
    process) changed, then unfence.

    A new incarnation while the previous one is still registered and unfenced means that
    process died (or restarted faster than ``broker.session.timeout.ms``): it is fenced
    first, in the same batch of records, so its leaderships move to other in-sync replicas
    and it leaves every ISR that has another member (``fence_broker``). The new process then
    rejoins an ISR only when its leader sees it caught up (KIP-966's rule: a log that
    recovery cut short can never lead or count toward acks=all). Worked example: broker 1
    leads p0 (ISR [1, 2, 3]) and restarts within its session -> FenceBroker(1),
    PartitionChangeRecord(p0: leader 2, ISR [2, 3], leader epoch + 1), RegisterBroker(1, new id)."""
    old = image.brokers.get(broker_id)
    records: list[object] = []
    new_process = old is not None and old.incarnation != incarnation
    if new_process:
        records += fence_broker(image, broker_id, unclean_default)
    new = (host, port, rack, internal_host, internal_port, kafka_host, kafka_port)
    if (
        old is None
        or new_process
        or (old.host, old.port, old.rack, old.internal_host, old.internal_port,
            old.kafka_host, old.kafka_port) != new
    ):
        records.append(
            RegisterBroker(
                broker_id=broker_id,
                host=host,
                port=port,
                rack=rack,
                incarnation=incarnation,
                clean_shutdown=clean_shutdown,
                internal_host=internal_host,
                internal_port=internal_port,
                kafka_host=kafka_host,
                kafka_port=kafka_port,
                metadata_version_min=metadata_versions[0],
                metadata_version_max=metadata_versions[1],
            )
        )
    if old is None or old.fenced or records:
        records.append(UnfenceBroker(broker_id=broker_id))
    return records


# ------------------------------------------------------------------ raft payloads and snapshots


def encode_records(records: Sequence[object]) -> bytes:
    """One Raft entry: a JSON list of records (one controller decision, applied atomically)."""
    return json.dumps([to_dict(r) for r in records], separators=(",", ":")).encode()


def decode_records(payload: bytes) -> list[object]:
    """Inverse of ``encode_records``; ``ValueError`` on anything else."""
    data = json.loads(payload)
    if not isinstance(data, list):
        raise ValueError("a metadata entry must be a JSON list of records")
    return [from_dict(d) for d in data]


def image_records(image: MetadataImage) -> list[object]:
    """Records that rebuild ``image`` from an empty one (a metadata snapshot)."""
    out: list[object] = [
        features.FeatureLevelRecord(name=n, level=v) for n, v in sorted(image.features.items())
    ]
    if image.next_producer_id:
        out.append(ProducerIds(next_producer_id=image.next_producer_id))
    for u in sorted(image.users):
        out.append(SetUserKey(user=u, public_key=image.users[u]))
    for u in sorted(image.scram):
        out.append(SetUserScram(user=u, mechanism="SCRAM-SHA-256", credential=image.scram[u]))
    for u in sorted(image.scram_sha512):
        out.append(SetUserScram(user=u, mechanism="SCRAM-SHA-512",
                                credential=image.scram_sha512[u]))
    out += acl_store.snapshot_records(image.acls)
    out += broker_configs.snapshot_records(image.broker_configs)
    out += quotas.snapshot_records(image.client_quotas)
    for g in sorted(image.group_configs):
        for k, v in sorted(image.group_configs[g].items()):
            out.append(SetGroupConfig(group_id=g, name=k, value=v))
    for b in sorted(image.brokers.values(), key=lambda b: b.broker_id):
        out.append(
            RegisterBroker(
                broker_id=b.broker_id,
                host=b.host,
                port=b.port,
                rack=b.rack,
                incarnation=b.incarnation,
                internal_host=b.internal_host,
                internal_port=b.internal_port,
                kafka_host=b.kafka_host,
                kafka_port=b.kafka_port,
                metadata_version_min=b.metadata_version_min,
                metadata_version_max=b.metadata_version_max,
            )
        )
        if not b.fenced:
            out.append(UnfenceBroker(broker_id=b.broker_id))
    for t in sorted(image.topics.values(), key=lambda t: t.name):
        out.append(
            CreateTopic(name=t.name, topic_id=t.topic_id, configs=tuple(sorted(t.configs.items())))
        )
        for p in sorted(t.partitions.values(), key=lambda p: p.partition):
            out.append(
                PartitionRecord(
                    topic=t.name,
                    partition=p.partition,
                    replicas=p.replicas,
                    isr=p.isr,
                    leader=p.leader,
                    leader_epoch=p.leader_epoch,
                )
            )
            if p.partition_epoch or p.adding_replicas or p.removing_replicas or p.damaged:
                out.append(
                    PartitionChangeRecord(
                        topic=t.name,
                        partition=p.partition,
                        replicas=p.replicas,
                        isr=p.isr,
                        leader=p.leader,
                        leader_epoch=p.leader_epoch,
                        partition_epoch=p.partition_epoch,
                        adding_replicas=p.adding_replicas,
                        removing_replicas=p.removing_replicas,
                        damaged=p.damaged,
                    )
                )
    return out


def encode_snapshot(image: MetadataImage) -> bytes:
    return encode_records(image_records(image))


def decode_snapshot(data: bytes) -> MetadataImage:
    return replay(decode_records(data))


# -------------------------------------------------------------------- fencing and unfencing


def _changes(decisions: Iterable[object]) -> list[object]:
    return [d.record for d in decisions]


def fence_broker(
    image: MetadataImage, broker_id: int, unclean_default: bool = False
) -> list[object]:
    """Records fencing ``broker_id`` (it missed its session): the broker record, then every
    partition it led moves to another live in-sync replica (``election.fence_broker``: first
    live ISR member in replica order, leader epoch bumped; leader -1 if there is none) and it
    leaves the ISRs (never emptying one)."""
    return fence_with_decisions(image, broker_id, unclean_default)[0]


def fence_with_decisions(
    image: MetadataImage, broker_id: int, unclean_default: bool = False
) -> tuple[list[object], list]:
    """``fence_broker``'s records and the election decisions they come from (which say
    whether an election was unclean)."""
    from .election import fence_broker as decide

    info = image.brokers.get(broker_id)
    if info is None or info.fenced:
        return [], []
    decisions = decide(image, broker_id, unclean_default=unclean_default)
    return [FenceBroker(broker_id=broker_id), *_changes(decisions)], decisions


def unfence_records(
    image: MetadataImage, broker_id: int, unclean_default: bool = False
) -> list[object]:
    """Records unfencing a registered broker: offline partitions it can lead get it back."""
    return unfence_with_decisions(image, broker_id, unclean_default)[0]


def unfence_with_decisions(
    image: MetadataImage, broker_id: int, unclean_default: bool = False
) -> tuple[list[object], list]:
    """``unfence_records``' records and the election decisions they come from."""
    from .election import unfence_broker as decide

    info = image.brokers.get(broker_id)
    if info is None or not info.fenced:
        return [], []
    decisions = decide(image, broker_id, unclean_default=unclean_default)
    return [UnfenceBroker(broker_id=broker_id), *_changes(decisions)], decisions
