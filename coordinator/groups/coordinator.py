"""The group coordinator core: membership of consumer groups in the style of KIP-848.

Pure: every method takes the current :class:`CoordinatorState` and ``now_ms`` (and, where
subscriptions are resolved, the metadata image ``topics``: topic name -> partition count)
and returns a :class:`Result` (next state, records to append, response) or raises a
:class:`GroupError` having changed nothing. One actor owns a shard's state and calls these.

Group events and what they do (this module owns them; member reconciliation and its
transition table live in :mod:`.reconciliation`, offsets in :mod:`.offsets`):

================================  ===========================================================
event                             effect
================================  ===========================================================
heartbeat, epoch 0 (join)         new member (or static replacement of a member at epoch -2);
                                  group epoch + 1; target recomputed; member reconciled
heartbeat, epoch = current        subscription changes bump the group epoch (and recompute
                                  the target); the member is reconciled with what it owns
heartbeat, epoch = previous       accepted if the member owns a subset of its assignment
                                  (the last response was lost); otherwise FENCED_MEMBER_EPOCH
heartbeat, epoch -1 (leave)       member removed; group epoch + 1; target recomputed
heartbeat, epoch -2 (static)      member kept with epoch -2 and its assignment (its pending
                                  revocations released) until it rejoins or its session ends
metadata change                   subscribed topics/partitions changed: group epoch + 1,
                                  target recomputed (on the next heartbeat, or ``on_metadata``)
session timeout (tick)            a silent member is removed, as by a leave
rebalance timeout (tick)          a member still owning partitions it must revoke is removed
delete_group                      only when the group has no members: everything tombstoned
================================  ===========================================================

Group states (derived, see ``ConsumerGroup.state``): Empty (no members) -> Assigning
(group epoch > target assignment epoch; the target is computed within the same call, so this
is never observed between calls) -> Reconciling (some member not yet at the target epoch or
not STABLE) -> Stable. Dead is a deleted or unknown group; a group dies only from Empty
(``MAY_DIE``), and every call checks it.

Safety: a partition newly given to a member is owned by nobody else (revoke before assign),
so no partition is ever owned by two members; ``reconciliation.check_transition`` enforces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from . import offsets as _offsets
from . import txn_offsets as _txn
from .assignors import ASSIGNORS, MemberSubscription
from .errors import (
    FencedInstanceIdError,
    FencedMemberEpochError,
    GroupMaxSizeReachedError,
    IllegalTransition,
    InconsistentGroupProtocolError,
    InvalidRequestError,
    UnknownMemberIdError,
    UnreleasedInstanceIdError,
)
from .messages import (
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
    ExpiredMember,
    GroupDescription,
    GroupListing,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetDeleteResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    Result,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from .model import (
    JOIN_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    ConsumerGroup,
    ConsumerGroupMember,
    CoordinatorState,
    GroupConfig,
    GroupState,
    MemberState,
    TopicPartition,
)
from .reconciliation import check_transition, reconcile
from .records import (
    GroupBuilder,
    GroupMetadataRecord,
    PartitionMetadataRecord,
    TargetMemberRecord,
    TargetMetadataRecord,
    current_member_record,
    emit_member_tombstones,
    member_metadata_record,
)
from .subscriptions import (
    resolve_topics,
    subscribed_topics,
    validate_heartbeat,
)

# States that may become Dead (be removed from the state) in one call: only a group without
# members is deleted or expires. Every other move is legal, because the live states are
# derived from the members (``ConsumerGroup.state``) rather than set by the handlers.
MAY_DIE = frozenset({GroupState.EMPTY, GroupState.DEAD})

def group_state(group: ConsumerGroup | None) -> GroupState:
    return GroupState.DEAD if group is None else group.state


class GroupCoordinator:
    """Stateless functions over a shard's state, configured once. Safe to share."""

    def __init__(self, config: GroupConfig | None = None) -> None:
        self.config = config or GroupConfig()
        if self.config.remote_assignor not in ASSIGNORS:
            raise ValueError(
                f"group.remote.assignor {self.config.remote_assignor!r} is not one of "
                f"{sorted(ASSIGNORS)}"
            )

    # ------------------------------------------------------------------ heartbeat

    def heartbeat(
        self,
        state: CoordinatorState,
        request: ConsumerGroupHeartbeatRequest,
        topics: Mapping[str, int],
        now_ms: int,
    ) -> Result[ConsumerGroupHeartbeatResponse]:
        """Handle one ConsumerGroupHeartbeat (join, heartbeat, or leave)."""
        req = request
        validate_heartbeat(req)
        if req.group_id in state.share.groups:
            raise InconsistentGroupProtocolError("the group id belongs to a share group",
                                                 group_id=req.group_id)
        if req.member_epoch < 0:
            return self._leave(state, req, now_ms)
        group = state.groups.get(req.group_id)
        if group is None:
            if req.member_epoch != JOIN_GROUP_MEMBER_EPOCH:
                raise UnknownMemberIdError("the group does not exist", group_id=req.group_id,
                                           member_id=req.member_id)
            group = ConsumerGroup(group_id=req.group_id)
        b = GroupBuilder(group)
        member, is_new, replaced = self._get_or_subscribe(b, req)

        updated = replace(
            member,
            instance_id=req.instance_id,
            rack_id=req.rack_id if req.rack_id is not None else member.rack_id,
            client_id=req.client_id or member.client_id,
            client_host=req.client_host or member.client_host,
            subscribed_topic_names=(
                tuple(sorted(set(req.subscribed_topic_names)))
                if req.subscribed_topic_names is not None
                else member.subscribed_topic_names
            ),
            subscribed_topic_regex=(
                (req.subscribed_topic_regex or None)
                if req.subscribed_topic_regex is not None
                else member.subscribed_topic_regex
            ),
            rebalance_timeout_ms=(
                req.rebalance_timeout_ms if req.rebalance_timeout_ms > 0
                else member.rebalance_timeout_ms
            ),
            server_assignor=req.server_assignor or member.server_assignor,
        )
        if is_new or _metadata_of(updated) != _metadata_of(member):
            b.emit(member_metadata_record(b.group_id, updated))
        bump = is_new or updated.subscription_key() != member.subscription_key()
        self._update_group_epoch(b, topics, bump)

        member = b.members[req.member_id]
        owned = (
            frozenset() if req.member_epoch == JOIN_GROUP_MEMBER_EPOCH
            else None if req.owned_partitions is None
            else frozenset(TopicPartition(*tp) for tp in req.owned_partitions)
        )
        owners = _LazyOwners(b)
        new = reconcile(
            member,
            target_epoch=b.assignment_epoch,
            target=b.target.get(member.member_id, frozenset()),
            owned=owned,
            owners=owners,
        )
        check_transition(member, new, target_epoch=b.assignment_epoch, owners=owners,
                         group_id=b.group_id)
        if is_new or new != member:
            b.emit(current_member_record(b.group_id, new))

        sessions = {req.member_id: now_ms + self.config.session_timeout_ms}
        rebalances: dict[str, int | None] = {}
        if new.state is MemberState.UNREVOKED_PARTITIONS:
            # A new revocation (entering the state, or acknowledging one revocation and
            # being asked for another in the same heartbeat) starts a fresh timer; the
            # member asking again while still revoking keeps the running one.
            if new != member or not _has_timer(
                state.rebalance_deadlines, b.group_id, new.member_id
            ):
                rebalances[new.member_id] = now_ms + new.rebalance_timeout_ms
        else:
            rebalances[new.member_id] = None
        for gone in replaced:
            sessions[gone] = None
            rebalances[gone] = None
        next_state = self._commit(state, [b], sessions, rebalances)
        return Result(
            next_state,
            tuple(b.emitted),
            ConsumerGroupHeartbeatResponse(
                member_id=new.member_id,
                member_epoch=new.member_epoch,
                heartbeat_interval_ms=self.config.heartbeat_interval_ms,
                assignment=new.assigned,
            ),
        )

    def _get_or_subscribe(
        self, b: GroupBuilder, req: ConsumerGroupHeartbeatRequest
    ) -> tuple[ConsumerGroupMember, bool, list[str]]:
        """(member, is_new, replaced member ids); emits the records of a static replacement."""
        joining = req.member_epoch == JOIN_GROUP_MEMBER_EPOCH
        ids = {"group_id": b.group_id, "member_id": req.member_id}
        if req.instance_id is None:
            member = b.members.get(req.member_id)
            if member is None:
                if not joining:
                    raise UnknownMemberIdError("unknown member", **ids)
                self._check_size(b)
                return ConsumerGroupMember(member_id=req.member_id), True, []
            if member.instance_id is not None:
                raise FencedInstanceIdError("member id belongs to a static member", **ids)
            if not joining:
                _check_epoch(member, req)
            return member, False, []

        existing = b.static_member(req.instance_id)
        if not joining:
            if existing is None:
                raise UnknownMemberIdError(f"unknown static member {req.instance_id!r}", **ids)
            if existing.member_id != req.member_id:
                raise FencedInstanceIdError(
                    f"instance {req.instance_id!r} now belongs to {existing.member_id!r}", **ids
                )
            _check_epoch(existing, req)
            return existing, False, []
        if existing is None:
            if req.member_id in b.members:
                raise InvalidRequestError("member id already used by another member", **ids)
            self._check_size(b)
            return ConsumerGroupMember(member_id=req.member_id), True, []
        if existing.member_id == req.member_id:
            return existing, False, []
        if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            raise UnreleasedInstanceIdError(
                f"instance {req.instance_id!r} is still used by {existing.member_id!r}", **ids
            )
        # A quick restart of a static member: the new member id takes over its assignment.
        target = b.target.get(existing.member_id, frozenset())
        emit_member_tombstones(b, existing.member_id)
        successor = replace(existing, member_id=req.member_id)
        b.emit(member_metadata_record(b.group_id, successor))
        if target:
            b.emit(TargetMemberRecord(group_id=b.group_id, member_id=req.member_id,
                                      partitions=target))
        b.emit(current_member_record(b.group_id, successor))
        return b.members[req.member_id], False, [existing.member_id]

    def _check_size(self, b: GroupBuilder) -> None:
        if len(b.members) >= self.config.max_size:
            raise GroupMaxSizeReachedError(
                f"the group has {len(b.members)} members (group.consumer.max.size)",
                group_id=b.group_id,
            )

    # ------------------------------------------------------------------ leave / expiry

    def _leave(
        self, state: CoordinatorState, req: ConsumerGroupHeartbeatRequest, now_ms: int
    ) -> Result[ConsumerGroupHeartbeatResponse]:
        ids = {"group_id": req.group_id, "member_id": req.member_id}
        group = state.groups.get(req.group_id)
        member = group.members.get(req.member_id) if group else None
        if req.instance_id is not None and group is not None:
            existing = group.static_member(req.instance_id)
            if existing is not None and existing.member_id != req.member_id:
                raise FencedInstanceIdError(
                    f"instance {req.instance_id!r} belongs to {existing.member_id!r}", **ids
                )
        if group is None or member is None:
            raise UnknownMemberIdError("unknown member", **ids)
        b = GroupBuilder(group)
        sessions: dict[str, int | None] = {}
        rebalances: dict[str, int | None] = {member.member_id: None}
        if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # The client revoked everything before leaving: what it had to give up is free
            # now; what it was assigned stays reserved for its quick return.
            b.emit(current_member_record(b.group_id, replace(
                member,
                member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH,
                state=MemberState.STABLE,
                pending_revocation=frozenset(),
            )))
            sessions[member.member_id] = now_ms + self.config.session_timeout_ms
        else:
            self._remove_member(b, member.member_id)
            sessions[member.member_id] = None
        next_state = self._commit(state, [b], sessions, rebalances)
        return Result(
            next_state,
            tuple(b.emitted),
            ConsumerGroupHeartbeatResponse(
                member_id=req.member_id,
                member_epoch=req.member_epoch,
                heartbeat_interval_ms=self.config.heartbeat_interval_ms,
                assignment=None,
            ),
        )

    def _remove_member(self, b: GroupBuilder, member_id: str) -> None:
        emit_member_tombstones(b, member_id)
        # The remaining subscriptions are a subset of the old ones: the stored metadata is
        # enough to recompute them, no metadata image needed.
        self._update_group_epoch(b, b.subscribed_topics, bump=True)

    def tick(self, state: CoordinatorState, now_ms: int) -> Result[tuple[ExpiredMember, ...]]:
        """Evict members whose session or rebalance timeout passed at ``now_ms``."""
        expired: list[ExpiredMember] = []
        for kind, timers in (("session_timeout", state.session_deadlines),
                             ("rebalance_timeout", state.rebalance_deadlines)):
            for gid in sorted(timers):
                for mid, deadline in sorted(timers[gid].items()):
                    if deadline <= now_ms and all(
                        (e.group_id, e.member_id) != (gid, mid) for e in expired
                    ):
                        expired.append(ExpiredMember(group_id=gid, member_id=mid, reason=kind))
        if not expired:
            return Result(state, (), ())
        builders: dict[str, GroupBuilder] = {}
        sessions: dict[str, dict[str, int | None]] = {}
        for e in expired:
            group = state.groups.get(e.group_id)
            if e.group_id not in builders and group is not None:
                builders[e.group_id] = GroupBuilder(group)
            b = builders.get(e.group_id)
            if b is not None and e.member_id in b.members:
                self._remove_member(b, e.member_id)
            sessions.setdefault(e.group_id, {})[e.member_id] = None
        next_state = state
        for gid, cancelled in sessions.items():
            bs = [builders[gid]] if gid in builders else []
            next_state = self._commit(next_state, bs, cancelled, dict(cancelled), group_id=gid)
        records = tuple(r for b in builders.values() for r in b.emitted)
        return Result(next_state, records, tuple(expired))

    def on_loaded(self, state: CoordinatorState, now_ms: int) -> CoordinatorState:
        """After a replay (failover): every member gets a fresh session; revocations a fresh
        rebalance timeout. Returns the state to start serving with."""
        sessions = {
            gid: {mid: now_ms + self.config.session_timeout_ms for mid in g.members}
            for gid, g in state.groups.items()
            if g.members
        }
        rebalances = {
            gid: {
                mid: now_ms + m.rebalance_timeout_ms
                for mid, m in g.members.items()
                if m.state is MemberState.UNREVOKED_PARTITIONS
            }
            for gid, g in state.groups.items()
        }
        rebalances = {gid: t for gid, t in rebalances.items() if t}
        return replace(state, session_deadlines=sessions, rebalance_deadlines=rebalances)

    def on_metadata(
        self, state: CoordinatorState, topics: Mapping[str, int], now_ms: int
    ) -> Result[None]:
        """Topics or partitions changed: bump the epoch of every group whose subscribed
        topics changed and recompute its target (members reconcile on their heartbeats)."""
        builders = []
        for gid in sorted(state.groups):
            group = state.groups[gid]
            if not group.members:
                continue
            b = GroupBuilder(group)
            self._update_group_epoch(b, topics, bump=False)
            if b.emitted:
                builders.append(b)
        if not builders:
            return Result(state, (), None)
        next_state = self._commit(state, builders, {}, {})
        return Result(next_state, tuple(r for b in builders for r in b.emitted), None)

    # ------------------------------------------------------------------ target assignment

    def _update_group_epoch(self, b: GroupBuilder, topics: Mapping[str, int], bump: bool) -> None:
        """Refresh the subscription metadata, bump the epoch if anything changed, and
        recompute the target assignment when it is behind the group epoch."""
        subscribed = subscribed_topics(b.members.values(), topics)
        if subscribed != b.subscribed_topics:
            b.emit(PartitionMetadataRecord(group_id=b.group_id, topics=tuple(subscribed.items())))
            bump = True
        if bump:
            b.emit(GroupMetadataRecord(group_id=b.group_id, epoch=b.group_epoch + 1))
        if b.group_epoch != b.assignment_epoch:
            self._update_target(b)

    def assignor_for(self, members: Iterable[ConsumerGroupMember]) -> str:
        """The most requested server assignor among members, else group.remote.assignor."""
        votes: dict[str, int] = {}
        for m in members:
            if m.server_assignor:
                votes[m.server_assignor] = votes.get(m.server_assignor, 0) + 1
        if not votes:
            return self.config.remote_assignor
        return min(votes, key=lambda name: (-votes[name], name))

    def _update_target(self, b: GroupBuilder) -> None:
        subs = {
            mid: MemberSubscription(
                resolve_topics(m, b.subscribed_topics), b.target.get(mid, frozenset())
            )
            for mid, m in b.members.items()
        }
        assign = ASSIGNORS[self.assignor_for(b.members.values())]
        target = assign(subs, b.subscribed_topics)
        for mid in sorted(target):
            if target[mid] != b.target.get(mid, frozenset()):
                b.emit(TargetMemberRecord(group_id=b.group_id, member_id=mid,
                                          partitions=target[mid]))
        b.emit(TargetMetadataRecord(group_id=b.group_id, assignment_epoch=b.group_epoch))

    # ------------------------------------------------------------------ offsets and views

    def commit_offsets(
        self, state: CoordinatorState, request: OffsetCommitRequest, now_ms: int
    ) -> Result[OffsetCommitResponse]:
        """OffsetCommit; see :func:`.offsets.commit_offsets`."""
        return _offsets.commit_offsets(self.config, state, request, now_ms)

    def fetch_offsets(
        self, state: CoordinatorState, request: OffsetFetchRequest
    ) -> OffsetFetchResponse:
        """OffsetFetch (read-only, no records); see :func:`.offsets.fetch_offsets`."""
        return _offsets.fetch_offsets(state, request)

    def txn_commit_offsets(
        self, state: CoordinatorState, request: TxnOffsetCommitRequest, now_ms: int
    ) -> Result[TxnOffsetCommitResponse]:
        """TxnOffsetCommit (KIP-447): pending offsets; see :mod:`.txn_offsets`."""
        return _txn.txn_commit_offsets(self.config, state, request, now_ms)

    def txn_completed(
        self, state: CoordinatorState, producer_id: int, committed: bool
    ) -> Result[frozenset[str]]:
        """A COMMIT/ABORT marker of ``producer_id`` is in the log (no records to append)."""
        return _txn.txn_completed(state, producer_id, committed)

    def delete_offsets(
        self, state: CoordinatorState, group_id: str, partitions: Iterable[TopicPartition]
    ) -> Result[OffsetDeleteResponse]:
        return _offsets.delete_offsets(state, group_id, tuple(partitions))

    def delete_group(self, state: CoordinatorState, group_id: str) -> Result[None]:
        return _offsets.delete_group(state, group_id)

    def delete_topic_offsets(
        self, state: CoordinatorState, topics: Iterable[str]
    ) -> Result[int]:
        """Deleted topics: drop their committed offsets in every group."""
        return _offsets.delete_topic_offsets(state, frozenset(topics))

    def expire_offsets(self, state: CoordinatorState, now_ms: int) -> Result[tuple[str, ...]]:
        """Run periodically (Kafka: offsets.retention.check.interval.ms, 10 minutes)."""
        return _offsets.expire_offsets(state, now_ms, self.config.offsets_retention_ms)

    def describe_group(self, state: CoordinatorState, group_id: str) -> GroupDescription:
        group = state.groups.get(group_id)
        assignor = self.assignor_for(group.members.values() if group else ())
        return _offsets.describe_group(state, group_id, assignor)

    def list_groups(
        self, state: CoordinatorState, states: frozenset[GroupState] | None = None
    ) -> tuple[GroupListing, ...]:
        return _offsets.list_groups(state, states)

    # ------------------------------------------------------------------ commit

    def _commit(
        self,
        state: CoordinatorState,
        builders: list[GroupBuilder],
        sessions: Mapping[str, int | None],
        rebalances: Mapping[str, int | None],
        group_id: str | None = None,
    ) -> CoordinatorState:
        """Adopt the builders' groups and timer changes (member id -> deadline or None)."""
        groups = dict(state.groups)
        for b in builders:
            group = b.build()
            old = state.groups.get(b.group_id)
            dead = group.is_empty_shell()
            if dead and old is not None and old.state not in MAY_DIE:
                # deriving a state is O(members): only a death needs the check
                raise IllegalTransition(f"group {old.state} -> {GroupState.DEAD}",
                                        group_id=b.group_id)
            if dead:
                groups.pop(b.group_id, None)
            else:
                groups[b.group_id] = group
        gid = group_id or (builders[0].group_id if builders else None)
        if gid is None:
            return replace(state, groups=groups)
        return replace(
            state,
            groups=groups,
            session_deadlines=_with_timers(state.session_deadlines, gid, sessions),
            rebalance_deadlines=_with_timers(state.rebalance_deadlines, gid, rebalances),
        )


def _check_epoch(member: ConsumerGroupMember, req: ConsumerGroupHeartbeatRequest) -> None:
    epoch = req.member_epoch
    ids = {"group_id": req.group_id, "member_id": req.member_id}
    if epoch > member.member_epoch:
        raise FencedMemberEpochError(
            f"epoch {epoch} is newer than the member's {member.member_epoch}", **ids
        )
    if epoch < member.member_epoch:
        lost_response = (
            epoch == member.previous_member_epoch
            and req.owned_partitions is not None
            and req.owned_partitions <= member.assigned
        )
        if not lost_response:
            raise FencedMemberEpochError(
                f"epoch {epoch} is older than the member's {member.member_epoch}", **ids
            )


class _LazyOwners(Mapping[TopicPartition, str]):
    """Partition -> owning member, computed (O(partitions)) only if reconciliation asks."""

    def __init__(self, b: GroupBuilder) -> None:
        self._b = b
        self._map: dict[TopicPartition, str] | None = None

    def _get(self) -> dict[TopicPartition, str]:
        if self._map is None:
            self._map = self._b.owners()
        return self._map

    def __getitem__(self, tp: TopicPartition) -> str:
        return self._get()[tp]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def _has_timer(timers: Mapping[str, Mapping[str, int]], gid: str, mid: str) -> bool:
    return mid in timers.get(gid, {})


def _with_timers(
    timers: Mapping[str, Mapping[str, int]], gid: str, changes: Mapping[str, int | None]
) -> Mapping[str, Mapping[str, int]]:
    if not changes:
        return timers
    per_group = dict(timers.get(gid, {}))
    for mid, deadline in changes.items():
        if deadline is None:
            per_group.pop(mid, None)
        else:
            per_group[mid] = deadline
    out = dict(timers)
    if per_group:
        out[gid] = per_group
    else:
        out.pop(gid, None)
    return out


def _metadata_of(m: ConsumerGroupMember) -> tuple:
    return (m.instance_id, m.rack_id, m.client_id, m.client_host, m.subscribed_topic_names,
            m.subscribed_topic_regex, m.rebalance_timeout_ms, m.server_assignor)
