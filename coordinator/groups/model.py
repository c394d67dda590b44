"""The data of the group coordinator: groups, members, committed offsets, configuration.

Everything here is a frozen value. A ``ConsumerGroup``'s mappings are plain dicts that are
never mutated after construction (the record applier in :mod:`.records` builds new ones), so
a state can be kept as a snapshot while the next one is computed and thrown away if the
records cannot be written.

Owned by: the single actor that hosts a :class:`~.coordinator.GroupCoordinator` shard.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import field
from typing import NamedTuple

from rillet.coordinator.share.group_model import ShareGroups

from rillet.frozen import frozen

LEAVE_GROUP_MEMBER_EPOCH = -1
"""member_epoch in a heartbeat: leave the group now (dynamic or static member)."""

LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2
"""member_epoch in a heartbeat: a static member leaves for a quick restart (keeps its assignment)."""

JOIN_GROUP_MEMBER_EPOCH = 0
"""member_epoch in a heartbeat: (re)join the group."""


class TopicPartition(NamedTuple):
    """A partition of a topic; sorts by (topic, partition)."""

    topic: str
    partition: int


def is_int(v: object) -> bool:
    """An int and not a bool (``True`` is an ``int`` to isinstance; the replay's reader,
    records.py ``_int``, refuses it, so a commit must too)."""
    return isinstance(v, int) and not isinstance(v, bool)


def valid_partition(tp: object) -> bool:
    """A (topic, partition) pair with a non-empty topic name and a partition >= 0."""
    return (
        isinstance(tp, tuple)
        and len(tp) == 2
        and isinstance(tp[0], str)
        and bool(tp[0])
        and is_int(tp[1])
        and tp[1] >= 0
    )


class MemberState(enum.StrEnum):
    """Reconciliation state of one member (Kafka's ``MemberState``)."""

    STABLE = "stable"
    """Assigned exactly the target of its epoch (or waiting for a newer target)."""
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    """Must stop owning ``pending_revocation``; keeps its epoch until it acknowledges."""
    UNRELEASED_PARTITIONS = "unreleased_partitions"
    """At the target epoch, but some target partitions are still owned by other members."""


class GroupState(enum.StrEnum):
    """The group's state as shown by describe/list (Kafka's consumer-group states)."""

    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@frozen(kw_only=True)
class GroupConfig:
    """Coordinator configuration (Kafka's broker config names in the field docs)."""

    session_timeout_ms: int = 45_000
    """group.consumer.session.timeout.ms: a member silent this long is evicted."""
    heartbeat_interval_ms: int = 5_000
    """group.consumer.heartbeat.interval.ms: returned to members in every heartbeat."""
    remote_assignor: str = "uniform"
    """group.remote.assignor: the default server-side assignor ("uniform" or "range")."""
    max_size: int = 2**31 - 1
    """group.consumer.max.size: the most members a group may have."""
    offset_metadata_max_bytes: int = 4096
    """offset.metadata.max.bytes: longest metadata string of one committed offset (UTF-8)."""
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    """offsets.retention.ms: offsets of a group without members expire this long after
    their commit (see ``GroupCoordinator.expire_offsets``)."""


@frozen(kw_only=True)
class ConsumerGroupMember:
    """One member: its subscription (from heartbeats) and its current assignment.

    ``assigned`` is what the member may own now; ``pending_revocation`` is what it owned and
    must give up. From the coordinator's view the member owns ``assigned | pending_revocation``
    and no partition is ever owned by two members.
    """

    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    """Sorted, deduplicated topic names (they need not exist yet)."""
    subscribed_topic_regex: str | None = None
    """Python ``re`` pattern matched with ``fullmatch`` against non-internal topic names."""
    rebalance_timeout_ms: int = 300_000
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: frozenset[TopicPartition] = frozenset()
    pending_revocation: frozenset[TopicPartition] = frozenset()

    @property
    def owned(self) -> frozenset[TopicPartition]:
        """Partitions this member owns in the coordinator's view."""
        return self.assigned | self.pending_revocation

    def subscription_key(self) -> tuple:
        """The fields whose change bumps the group epoch."""
        return (self.subscribed_topic_names, self.subscribed_topic_regex, self.server_assignor)


@frozen(kw_only=True)
class OffsetAndMetadata:
    """A committed offset: the next offset to consume, with the client's metadata string."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = 0


@frozen(kw_only=True)
class PendingOffset:
    """An offset committed inside a producer's open transaction (TxnOffsetCommit, KIP-447):
    invisible to OffsetFetch until the transaction's COMMIT marker (see :mod:`.pending`)."""

    offset: OffsetAndMetadata
    superseded: bool = False
    """A commit written to the log after this one is the visible offset of the partition:
    on COMMIT this one is not applied (Kafka keeps the record with the higher log offset)."""
    followed_by: frozenset[int] = frozenset()
    """Producers whose pending offset for the same group and partition was written after
    this one: if one of them commits first, this one is superseded."""


@frozen(kw_only=True)
class TxnProducer:
    """The producer fields of the transactional batch a TxnOffsetCommit is written in."""

    producer_id: int
    producer_epoch: int
    base_sequence: int
    """Chosen by the core: the partition's idempotence checks want the sequences of one
    producer and epoch to follow each other (0 for a new epoch)."""


@frozen(kw_only=True)
class ConsumerGroup:
    """One group. Fields are exactly what the records in :mod:`.records` carry."""

    group_id: str
    group_epoch: int = 0
    """Bumped on every change of membership, subscription or subscribed-topic metadata."""
    assignment_epoch: int = 0
    """The group epoch the target assignment was computed for."""
    subscribed_topics: Mapping[str, int] = field(default_factory=dict)
    """Subscription metadata: subscribed, existing topic -> partition count."""
    members: Mapping[str, ConsumerGroupMember] = field(default_factory=dict)
    target: Mapping[str, frozenset[TopicPartition]] = field(default_factory=dict)
    """Target assignment: member id -> partitions (members with an empty target are absent)."""
    offsets: Mapping[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)

    @property
    def state(self) -> GroupState:
        if not self.members:
            return GroupState.EMPTY
        if self.group_epoch != self.assignment_epoch:
            return GroupState.ASSIGNING
        for m in self.members.values():
            if m.member_epoch != self.assignment_epoch or m.state is not MemberState.STABLE:
                return GroupState.RECONCILING
        return GroupState.STABLE

    def owners(self) -> dict[TopicPartition, str]:
        """Partition -> the member owning it (assigned or pending revocation)."""
        out: dict[TopicPartition, str] = {}
        for m in self.members.values():
            for tp in m.assigned:
                out[tp] = m.member_id
            for tp in m.pending_revocation:
                out[tp] = m.member_id
        return out

    def static_member(self, instance_id: str) -> ConsumerGroupMember | None:
        for m in self.members.values():
            if m.instance_id == instance_id:
                return m
        return None

    def is_empty_shell(self) -> bool:
        """True when nothing about the group remains (it is dropped from the state)."""
        return not self.members and not self.offsets and self.group_epoch == 0


@frozen
class CoordinatorState:
    """Every group of one coordinator shard (one ``__consumer_offsets`` partition).

    ``groups``, ``pending`` and ``producer_sequences`` are the durable part: replaying the
    log (``txn_offsets.replay_log``) gives them back. The deadlines are volatile (compare=False): they are rebuilt by ``GroupCoordinator.on_loaded(now)``.
    """

    groups: Mapping[str, ConsumerGroup] = field(default_factory=dict)
    session_deadlines: Mapping[str, Mapping[str, int]] = field(
        default_factory=dict, compare=False
    )
    """group_id -> member_id -> time (ms) at which the member is evicted if still silent."""
    rebalance_deadlines: Mapping[str, Mapping[str, int]] = field(
        default_factory=dict, compare=False
    )
    """group_id -> member_id -> time (ms) at which a member that has not revoked is fenced."""
    pending: Mapping[int, Mapping[tuple[str, TopicPartition], PendingOffset]] = field(
        default_factory=dict
    )
    """producer id -> (group id, partition) -> the offset its open transaction committed
    (durable: replayed from the transactional batches and markers of the log)."""
    producer_sequences: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    """producer id -> (producer epoch, last sequence) of its last transactional batch in this
    partition, so the next one follows it; forgotten at its marker (the marker bumps the
    epoch, the next transaction starts at sequence 0), so only open transactions are kept."""
    share: ShareGroups = field(default_factory=ShareGroups)
    """The shard's share groups (KIP-932, coordinator/share/group.py): their own records in
    the same topic; a group id is either a consumer group or a share group."""
    classic: Mapping[str, Mapping] = field(default_factory=dict)
    """group id -> the last metadata of each classic group (coordinator/groups/classic.py);
    durable (replayed from its classic_group records)."""

    def next_deadline_ms(self) -> int | None:
        """Earliest consumer-group timer (ms); the actor should call ``tick`` at or after
        it. O(members). Share groups' timers: ``share.next_deadline_ms()``."""
        times = [
            t
            for timers in (self.session_deadlines, self.rebalance_deadlines)
            for per_group in timers.values()
            for t in per_group.values()
        ]
        return min(times) if times else None
