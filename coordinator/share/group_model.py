"""The data of share groups (KIP-932) in a group-coordinator shard. Pure frozen values.

A share group's members do not own partitions exclusively: the coordinator assigns every
subscribed partition to at least one member and a partition may be assigned to several, so
there is no revocation and no reconciliation: a member takes its new assignment with the
epoch of the heartbeat answer that carries it. Owned by the actor hosting the shard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field

from rillet.frozen import frozen

#: (topic, partition); compares equal to the consumer groups' ``TopicPartition``
SharePartition = tuple[str, int]

STATE_EMPTY = "Empty"
STATE_STABLE = "Stable"
STATE_DEAD = "Dead"


@frozen(kw_only=True)
class ShareGroupMember:
    member_id: str
    member_epoch: int = 0
    """The assignment epoch the member last heard (0 before its first answer)."""
    previous_member_epoch: int = -1
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    """Sorted, deduplicated topic names (they need not exist yet)."""


@frozen(kw_only=True)
class ShareGroup:
    group_id: str
    group_epoch: int = 0
    """Bumped on every change of membership, subscriptions or subscribed partition counts."""
    assignment_epoch: int = 0
    """The group epoch ``assignment`` was computed for (derived, never persisted)."""
    subscribed_topics: Mapping[str, int] = field(default_factory=dict)
    """Subscribed, existing topic -> partition count, as of ``group_epoch``."""
    members: Mapping[str, ShareGroupMember] = field(default_factory=dict)
    assignment: Mapping[str, frozenset[SharePartition]] = field(default_factory=dict)
    """member id -> its partitions (derived: recomputed by the assignor, never persisted)."""

    @property
    def state(self) -> str:
        return STATE_STABLE if self.members else STATE_EMPTY


@frozen
class ShareGroups:
    """Every share group of a shard. ``groups`` is durable (replayed from the
    ``__consumer_offsets`` records of :mod:`.group_records`); the session deadlines are
    volatile (compare=False), rebuilt by ``on_loaded``."""

    groups: Mapping[str, ShareGroup] = field(default_factory=dict)
    session_deadlines: Mapping[str, Mapping[str, int]] = field(default_factory=dict,
                                                               compare=False)
    """group id -> member id -> time (ms) at which the silent member is fenced."""

    def next_deadline_ms(self) -> int | None:
        times = [t for per_group in self.session_deadlines.values() for t in per_group.values()]
        return min(times) if times else None
