"""Records of the ``__consumer_offsets`` topic, and the replay that rebuilds state from them.

The coordinator never changes its state directly: every handler produces records and the
new state is these records applied to the old one (the same :func:`apply` that replays the
log after a failover), so ``replay(every record ever emitted) == live state`` by
construction. The topic is compacted: the latest record per key wins, a tombstone
(``value is None``) deletes the key.

Each record type is a frozen dataclass. ``to_kv(record) -> (key, value)`` gives plain dicts
(str/int/lists/None only) for the actor to CBOR-encode; ``from_kv(key, value)`` decodes
them back. Keys (``"type"`` + identifying fields) are stable, so compaction works:

=====================  ======================================  ==========================================
type                   key fields                              value fields
=====================  ======================================  ==========================================
group_metadata         group_id                                epoch
partition_metadata     group_id                                topics: [[name, partitions], ...]
member_metadata        group_id, member_id                     instance_id, rack_id, client_id,
                                                               client_host, subscribed_topic_names,
                                                               subscribed_topic_regex,
                                                               rebalance_timeout_ms, server_assignor
target_member          group_id, member_id                     partitions: [[topic, [p, ...]], ...]
target_metadata        group_id                                assignment_epoch
current_member         group_id, member_id                     member_epoch, previous_member_epoch,
                                                               state, assigned, pending_revocation
offset_commit          group_id, topic, partition              offset, leader_epoch, metadata,
                                                               commit_timestamp_ms
=====================  ======================================  ==========================================

Every value also carries ``"version": 0``. :class:`Tombstone` names a key of any type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from rillet.coordinator.share import group_records as _share

from rillet.frozen import frozen

from . import classic_records as _classic
from . import pending as _pending
from .errors import InvalidRequestError
from .model import (
    ConsumerGroup,
    ConsumerGroupMember,
    CoordinatorState,
    MemberState,
    OffsetAndMetadata,
    TopicPartition,
    is_int,
)

VERSION = 0


@frozen(kw_only=True)
class GroupMetadataRecord:
    group_id: str
    epoch: int


@frozen(kw_only=True)
class PartitionMetadataRecord:
    group_id: str
    topics: tuple[tuple[str, int], ...]


@frozen(kw_only=True)
class MemberMetadataRecord:
    group_id: str
    member_id: str
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None


@frozen(kw_only=True)
class TargetMemberRecord:
    group_id: str
    member_id: str
    partitions: frozenset[TopicPartition]


@frozen(kw_only=True)
class TargetMetadataRecord:
    group_id: str
    assignment_epoch: int


@frozen(kw_only=True)
class CurrentMemberRecord:
    group_id: str
    member_id: str
    member_epoch: int
    previous_member_epoch: int
    state: MemberState
    assigned: frozenset[TopicPartition]
    pending_revocation: frozenset[TopicPartition]


@frozen(kw_only=True)
class OffsetCommitRecord:
    group_id: str
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int


@frozen(kw_only=True)
class Tombstone:
    """Deletes the key of ``type`` (the unused key fields keep their defaults)."""

    type: str
    group_id: str
    member_id: str = ""
    topic: str = ""
    partition: int = -1


GroupRecord = (
    GroupMetadataRecord | PartitionMetadataRecord | MemberMetadataRecord | TargetMemberRecord
    | TargetMetadataRecord | CurrentMemberRecord | OffsetCommitRecord | Tombstone
)

_TYPES: dict[type, tuple[str, tuple[str, ...]]] = {
    GroupMetadataRecord: ("group_metadata", ("group_id",)),
    PartitionMetadataRecord: ("partition_metadata", ("group_id",)),
    MemberMetadataRecord: ("member_metadata", ("group_id", "member_id")),
    TargetMemberRecord: ("target_member", ("group_id", "member_id")),
    TargetMetadataRecord: ("target_metadata", ("group_id",)),
    CurrentMemberRecord: ("current_member", ("group_id", "member_id")),
    OffsetCommitRecord: ("offset_commit", ("group_id", "topic", "partition")),
}
_BY_NAME = {name: (cls, keys) for cls, (name, keys) in _TYPES.items()}


def _tps_out(tps: Iterable[TopicPartition]) -> list:
    by_topic: dict[str, list[int]] = {}
    for t, p in sorted(tps):
        by_topic.setdefault(t, []).append(p)
    return [[t, ps] for t, ps in by_topic.items()]


def _tps_in(value: Any) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(_str(t), _int(p)) for t, ps in _list(value) for p in _list(ps))


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise InvalidRequestError(f"expected a string, got {type(v).__name__}")
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _int(v: Any) -> int:
    if not is_int(v):
        raise InvalidRequestError(f"expected an integer, got {type(v).__name__}")
    return v


def _list(v: Any) -> list:
    if not isinstance(v, list | tuple):
        raise InvalidRequestError(f"expected a list, got {type(v).__name__}")
    return list(v)


def key_of(record: GroupRecord) -> dict[str, Any]:
    """The compaction key of a record (tombstones give the key they delete)."""
    if isinstance(record, Tombstone):
        _, fields = _BY_NAME[record.type]
        return {"type": record.type, **{f: getattr(record, f) for f in fields}}
    name, fields = _TYPES[type(record)]
    return {"type": name, **{f: getattr(record, f) for f in fields}}


def to_kv(record: GroupRecord) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(key, value) as plain dicts; value is None for a tombstone. Share-group records
    (coordinator/share/group_records.py) are encoded there."""
    if isinstance(record, _share.RECORD_CLASSES):
        return _share.to_kv(record)
    if isinstance(record, _classic.RECORD_CLASSES):
        return _classic.to_kv(record)
    key = key_of(record)
    if isinstance(record, Tombstone):
        return key, None
    match record:
        case GroupMetadataRecord():
            value: dict[str, Any] = {"epoch": record.epoch}
        case PartitionMetadataRecord():
            value = {"topics": [[t, n] for t, n in record.topics]}
        case MemberMetadataRecord():
            value = {
                "instance_id": record.instance_id,
                "rack_id": record.rack_id,
                "client_id": record.client_id,
                "client_host": record.client_host,
                "subscribed_topic_names": list(record.subscribed_topic_names),
                "subscribed_topic_regex": record.subscribed_topic_regex,
                "rebalance_timeout_ms": record.rebalance_timeout_ms,
                "server_assignor": record.server_assignor,
            }
        case TargetMemberRecord():
            value = {"partitions": _tps_out(record.partitions)}
        case TargetMetadataRecord():
            value = {"assignment_epoch": record.assignment_epoch}
        case CurrentMemberRecord():
            value = {
                "member_epoch": record.member_epoch,
                "previous_member_epoch": record.previous_member_epoch,
                "state": record.state.value,
                "assigned": _tps_out(record.assigned),
                "pending_revocation": _tps_out(record.pending_revocation),
            }
        case OffsetCommitRecord():
            value = {
                "offset": record.offset,
                "leader_epoch": record.leader_epoch,
                "metadata": record.metadata,
                "commit_timestamp_ms": record.commit_timestamp_ms,
            }
    return key, {"version": VERSION, **value}


def from_kv(key: Mapping[str, Any], value: Mapping[str, Any] | None) -> GroupRecord:
    """Decode what :func:`to_kv` produced; ``InvalidRequestError`` on anything malformed."""
    try:
        name = _str(key["type"])
        if name in _share.TYPES:
            return _share.from_kv(key, value)
        if name == _classic.TYPE:
            return _classic.from_kv(key, value)
        if name not in _BY_NAME:
            raise InvalidRequestError(f"unknown record type {name!r}")
        cls, fields = _BY_NAME[name]
        ids: dict[str, Any] = {
            f: (_int(key[f]) if f == "partition" else _str(key[f])) for f in fields
        }
        if value is None:
            return Tombstone(type=name, **ids)
        v = value
        if cls is GroupMetadataRecord:
            return GroupMetadataRecord(**ids, epoch=_int(v["epoch"]))
        if cls is PartitionMetadataRecord:
            topics = tuple((_str(t), _int(n)) for t, n in _list(v["topics"]))
            return PartitionMetadataRecord(**ids, topics=topics)
        if cls is MemberMetadataRecord:
            return MemberMetadataRecord(
                **ids,
                instance_id=_opt_str(v["instance_id"]),
                rack_id=_opt_str(v["rack_id"]),
                client_id=_str(v["client_id"]),
                client_host=_str(v["client_host"]),
                subscribed_topic_names=tuple(_str(t) for t in _list(v["subscribed_topic_names"])),
                subscribed_topic_regex=_opt_str(v["subscribed_topic_regex"]),
                rebalance_timeout_ms=_int(v["rebalance_timeout_ms"]),
                server_assignor=_opt_str(v["server_assignor"]),
            )
        if cls is TargetMemberRecord:
            return TargetMemberRecord(**ids, partitions=_tps_in(v["partitions"]))
        if cls is TargetMetadataRecord:
            return TargetMetadataRecord(**ids, assignment_epoch=_int(v["assignment_epoch"]))
        if cls is CurrentMemberRecord:
            return CurrentMemberRecord(
                **ids,
                member_epoch=_int(v["member_epoch"]),
                previous_member_epoch=_int(v["previous_member_epoch"]),
                state=MemberState(_str(v["state"])),
                assigned=_tps_in(v["assigned"]),
                pending_revocation=_tps_in(v["pending_revocation"]),
            )
        return OffsetCommitRecord(
            **ids,
            offset=_int(v["offset"]),
            leader_epoch=_int(v["leader_epoch"]),
            metadata=_str(v["metadata"]),
            commit_timestamp_ms=_int(v["commit_timestamp_ms"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"malformed group record: {exc!r}") from exc


class GroupBuilder:
    """A mutable working copy of one group; records are applied to it in order.

    Handlers read the group through this builder while they emit records, so every later
    decision sees exactly the state the earlier records produced.
    """

    __slots__ = ("group_id", "group_epoch", "assignment_epoch", "subscribed_topics", "members",
                 "target", "offsets", "emitted", "_copied")

    def __init__(self, group: ConsumerGroup) -> None:
        self.emitted: list[GroupRecord] = []
        self.group_id = group.group_id
        self.group_epoch = group.group_epoch
        self.assignment_epoch = group.assignment_epoch
        # Copy-on-write: the group's dicts are shared until a record changes one of them.
        self.subscribed_topics = group.subscribed_topics
        self.members = group.members
        self.target = group.target
        self.offsets = group.offsets
        self._copied: set[str] = set()

    def _own(self, name: str) -> dict:
        if name not in self._copied:
            setattr(self, name, dict(getattr(self, name)))
            self._copied.add(name)
        return getattr(self, name)

    def emit(self, record: GroupRecord) -> None:
        """Record ``record`` as a decision of the current handler and apply it."""
        self.emitted.append(record)
        self.apply(record)

    def static_member(self, instance_id: str) -> ConsumerGroupMember | None:
        for m in self.members.values():
            if m.instance_id == instance_id:
                return m
        return None

    def owners(self) -> dict[TopicPartition, str]:
        out: dict[TopicPartition, str] = {}
        for m in self.members.values():
            for tp in m.assigned | m.pending_revocation:
                out[tp] = m.member_id
        return out

    def _member(self, member_id: str) -> ConsumerGroupMember:
        return self.members.get(member_id) or ConsumerGroupMember(member_id=member_id)

    def apply(self, record: GroupRecord) -> None:
        match record:
            case GroupMetadataRecord():
                self.group_epoch = record.epoch
            case PartitionMetadataRecord():
                self.subscribed_topics = dict(record.topics)
                self._copied.add("subscribed_topics")
            case MemberMetadataRecord():
                self._own("members")[record.member_id] = replace(
                    self._member(record.member_id),
                    instance_id=record.instance_id,
                    rack_id=record.rack_id,
                    client_id=record.client_id,
                    client_host=record.client_host,
                    subscribed_topic_names=record.subscribed_topic_names,
                    subscribed_topic_regex=record.subscribed_topic_regex,
                    rebalance_timeout_ms=record.rebalance_timeout_ms,
                    server_assignor=record.server_assignor,
                )
            case TargetMemberRecord():
                if record.partitions:
                    self._own("target")[record.member_id] = record.partitions
                elif record.member_id in self.target:
                    del self._own("target")[record.member_id]
            case TargetMetadataRecord():
                self.assignment_epoch = record.assignment_epoch
            case CurrentMemberRecord():
                self._own("members")[record.member_id] = replace(
                    self._member(record.member_id),
                    member_epoch=record.member_epoch,
                    previous_member_epoch=record.previous_member_epoch,
                    state=record.state,
                    assigned=record.assigned,
                    pending_revocation=record.pending_revocation,
                )
            case OffsetCommitRecord():
                self._own("offsets")[TopicPartition(record.topic, record.partition)] = OffsetAndMetadata(
                    offset=record.offset,
                    leader_epoch=record.leader_epoch,
                    metadata=record.metadata,
                    commit_timestamp_ms=record.commit_timestamp_ms,
                )
            case Tombstone():
                self._delete(record)

    def _delete(self, t: Tombstone) -> None:
        match t.type:
            case "group_metadata":
                self.group_epoch = 0
            case "partition_metadata":
                self.subscribed_topics = {}
                self._copied.add("subscribed_topics")
            case "member_metadata":
                if t.member_id in self.members:
                    del self._own("members")[t.member_id]
            case "target_member":
                if t.member_id in self.target:
                    del self._own("target")[t.member_id]
            case "target_metadata":
                self.assignment_epoch = 0
            case "current_member":
                # The member's subscription tombstone follows and removes it; reset meanwhile.
                if t.member_id in self.members:
                    self._own("members")[t.member_id] = replace(
                        self.members[t.member_id],
                        member_epoch=0, previous_member_epoch=-1, state=MemberState.STABLE,
                        assigned=frozenset(), pending_revocation=frozenset(),
                    )
            case "offset_commit":
                tp = TopicPartition(t.topic, t.partition)
                if tp in self.offsets:
                    del self._own("offsets")[tp]

    def build(self) -> ConsumerGroup:
        return ConsumerGroup(
            group_id=self.group_id,
            group_epoch=self.group_epoch,
            assignment_epoch=self.assignment_epoch,
            subscribed_topics=self.subscribed_topics,
            members=self.members,
            target=self.target,
            offsets=self.offsets,
        )


def member_metadata_record(group_id: str, m: ConsumerGroupMember) -> MemberMetadataRecord:
    return MemberMetadataRecord(
        group_id=group_id,
        member_id=m.member_id,
        instance_id=m.instance_id,
        rack_id=m.rack_id,
        client_id=m.client_id,
        client_host=m.client_host,
        subscribed_topic_names=m.subscribed_topic_names,
        subscribed_topic_regex=m.subscribed_topic_regex,
        rebalance_timeout_ms=m.rebalance_timeout_ms,
        server_assignor=m.server_assignor,
    )


def current_member_record(group_id: str, m: ConsumerGroupMember) -> CurrentMemberRecord:
    return CurrentMemberRecord(
        group_id=group_id,
        member_id=m.member_id,
        member_epoch=m.member_epoch,
        previous_member_epoch=m.previous_member_epoch,
        state=m.state,
        assigned=m.assigned,
        pending_revocation=m.pending_revocation,
    )


def emit_member_tombstones(b: GroupBuilder, member_id: str) -> None:
    for kind in ("current_member", "target_member", "member_metadata"):
        b.emit(Tombstone(type=kind, group_id=b.group_id, member_id=member_id))


def apply(state: CoordinatorState, records: Iterable[GroupRecord]) -> CoordinatorState:
    """The state after ``records`` (plain, non-transactional ones), in order. Timers are
    carried over unchanged; pending transactional offsets of the partitions whose committed
    offset a record sets or deletes are marked (see :mod:`.pending`)."""
    builders: dict[str, GroupBuilder] = {}
    pending = state.pending
    share: list = []
    classic: list = []
    for record in records:
        if isinstance(record, _share.RECORD_CLASSES):
            share.append(record)
            continue
        if isinstance(record, _classic.RECORD_CLASSES):
            classic.append(record)
            continue
        gid = record.group_id
        if gid not in builders:
            builders[gid] = GroupBuilder(state.groups.get(gid) or ConsumerGroup(group_id=gid))
        builders[gid].apply(record)
        if pending:
            if isinstance(record, OffsetCommitRecord):
                key = (gid, TopicPartition(record.topic, record.partition))
                pending = _pending.after_plain(pending, key, deleted=False)
            elif isinstance(record, Tombstone) and record.type == "offset_commit":
                key = (gid, TopicPartition(record.topic, record.partition))
                pending = _pending.after_plain(pending, key, deleted=True)
    if share:
        state = replace(state, share=_share.apply(state.share, share))
    if classic:
        state = replace(state, classic=_classic.apply(state.classic, classic))
    if not builders:
        return state
    groups = dict(state.groups)
    for gid, b in builders.items():
        group = b.build()
        if group.is_empty_shell():
            groups.pop(gid, None)
        else:
            groups[gid] = group
    return replace(state, groups=groups, pending=pending)


def replay(records: Iterable[GroupRecord], state: CoordinatorState | None = None) -> CoordinatorState:
    """Rebuild a coordinator shard from its log (then call ``GroupCoordinator.on_loaded``)."""
    return apply(state or CoordinatorState(), records)


def replay_kv(
    pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]],
) -> CoordinatorState:
    """:func:`replay` over decoded (key, value) dicts as read back from the topic."""
    return replay(from_kv(k, v) for k, v in pairs)
