"""Committed offsets, group deletion and the describe/list views of the coordinator core.

Offset commits are fenced by member epochs (KIP-848): a member commits with its current
epoch, or gets STALE_MEMBER_EPOCH (heartbeat, then retry), UNKNOWN_MEMBER_ID (it was
evicted: rejoin) or FENCED_INSTANCE_ID (another process took its group.instance.id). A
*simple* commit (member_id "", member_epoch < 0; what admin tools and manually-assigned
consumers send) is accepted only while the group has no members, which is what makes
``rillet group reset-offsets`` refuse an active group.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import (
    FencedInstanceIdError,
    GroupIdNotFoundError,
    InvalidRequestError,
    NonEmptyGroupError,
    OffsetMetadataTooLargeError,
    StaleMemberEpochError,
    UnknownMemberIdError,
    UnstableOffsetCommitError,
)
from .messages import (
    GroupDescription,
    GroupListing,
    MemberDescription,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetDeleteResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    Result,
)
from .model import (
    ConsumerGroup,
    CoordinatorState,
    GroupConfig,
    GroupState,
    TopicPartition,
    is_int,
    valid_partition,
)
from .pending import has_pending
from .records import GroupBuilder, OffsetCommitRecord, Tombstone, apply

NONE = 0
GROUP_SUBSCRIBED_TO_TOPIC = 86


def _validate_member(group: ConsumerGroup | None, group_id: str, member_id: str,
                     member_epoch: int, instance_id: str | None) -> None:
    ids = {"group_id": group_id, "member_id": member_id}
    member = group.members.get(member_id) if group else None
    if member is None:
        raise UnknownMemberIdError("unknown member", **ids)
    if instance_id is not None and member.instance_id != instance_id:
        raise FencedInstanceIdError(f"instance {instance_id!r} is fenced", **ids)
    if member_epoch != member.member_epoch:
        raise StaleMemberEpochError(
            f"epoch {member_epoch} is not the member's current epoch {member.member_epoch}",
            **ids,
        )


def commit_offsets(
    config: GroupConfig, state: CoordinatorState, req: OffsetCommitRequest, now_ms: int
) -> Result[OffsetCommitResponse]:
    """OffsetCommit: one record per accepted partition; per-partition errors in the reply."""
    if not req.group_id:
        raise InvalidRequestError("group_id must not be empty")
    if not isinstance(req.group_id, str) or not isinstance(req.member_id, str):
        raise InvalidRequestError("group_id and member_id must be strings")
    for tp, c in req.offsets.items():
        if not (
            valid_partition(tp)
            and is_int(c.offset) and c.offset >= 0
            and is_int(c.leader_epoch) and isinstance(c.metadata, str)
        ):
            raise InvalidRequestError(f"invalid offset commit {tp}: {c!r}",
                                      group_id=req.group_id)
    group = state.groups.get(req.group_id)
    simple = req.member_epoch < 0 and not req.member_id
    if simple:
        if group is not None and group.members:
            raise UnknownMemberIdError(
                "the group has active members; only a member can commit (stop the consumers "
                "to reset offsets)", group_id=req.group_id,
            )
    else:
        _validate_member(group, req.group_id, req.member_id, req.member_epoch, req.instance_id)
    b = GroupBuilder(group or ConsumerGroup(group_id=req.group_id))
    errors: dict[TopicPartition, int] = {}
    for tp in sorted(req.offsets):
        c = req.offsets[tp]
        tp = TopicPartition(*tp)
        if len(c.metadata.encode()) > config.offset_metadata_max_bytes:
            errors[tp] = OffsetMetadataTooLargeError.code
            continue
        b.emit(OffsetCommitRecord(
            group_id=req.group_id, topic=tp[0], partition=tp[1], offset=c.offset,
            leader_epoch=c.leader_epoch, metadata=c.metadata, commit_timestamp_ms=now_ms,
        ))
        errors[tp] = NONE
    records = tuple(b.emitted)
    return Result(apply(state, records), records, OffsetCommitResponse(errors=errors))


def fetch_offsets(state: CoordinatorState, req: OffsetFetchRequest) -> OffsetFetchResponse:
    """OffsetFetch (read-only). A member (epoch >= 0) must be current: STALE_MEMBER_EPOCH.
    Offsets pending in open transactions are never answered; with ``require_stable`` their
    partitions get UNSTABLE_OFFSET_COMMIT instead of the last committed offset."""
    group = state.groups.get(req.group_id)
    if req.member_epoch >= 0:
        _validate_member(group, req.group_id, req.member_id, req.member_epoch, None)
    wanted = (
        sorted(group.offsets) if req.partitions is None and group is not None
        else req.partitions or ()
    )
    if req.require_stable and state.pending:
        # KIP-447: an offset an open transaction may still change is not answered
        unstable = {tp: UnstableOffsetCommitError.code for tp in wanted
                    if has_pending(state.pending, (req.group_id, tp))}
    else:
        unstable = {}
    if group is None:
        return OffsetFetchResponse(offsets={}, errors=unstable)
    return OffsetFetchResponse(
        offsets={tp: group.offsets[tp] for tp in wanted
                 if tp in group.offsets and tp not in unstable},
        errors=unstable,
    )


def delete_offsets(
    state: CoordinatorState, group_id: str, partitions: tuple[TopicPartition, ...]
) -> Result[OffsetDeleteResponse]:
    """OffsetDelete: refused per partition (GROUP_SUBSCRIBED_TO_TOPIC) for subscribed topics."""
    group = state.groups.get(group_id)
    if group is None:
        raise GroupIdNotFoundError("no such group", group_id=group_id)
    b = GroupBuilder(group)
    errors: dict[TopicPartition, int] = {}
    for tp in sorted(set(partitions)):
        if group.members and tp.topic in group.subscribed_topics:
            errors[tp] = GROUP_SUBSCRIBED_TO_TOPIC
            continue
        if tp in group.offsets:
            b.emit(Tombstone(type="offset_commit", group_id=group_id, topic=tp.topic,
                             partition=tp.partition))
        errors[tp] = NONE
    records = tuple(b.emitted)
    return Result(apply(state, records), records, OffsetDeleteResponse(errors=errors))


def delete_topic_offsets(state: CoordinatorState, topics: frozenset[str]) -> Result[int]:
    """Topics were deleted: tombstone every committed offset of theirs, in every group.
    The response is the number of offsets removed."""
    builders = []
    for gid in sorted(state.groups):
        group = state.groups[gid]
        doomed = sorted(tp for tp in group.offsets if tp.topic in topics)
        if doomed:
            b = GroupBuilder(group)
            for tp in doomed:
                b.emit(Tombstone(type="offset_commit", group_id=gid, topic=tp.topic,
                                 partition=tp.partition))
            builders.append(b)
    records = tuple(r for b in builders for r in b.emitted)
    return Result(apply(state, records), records, len(records))


def expire_offsets(
    state: CoordinatorState, now_ms: int, retention_ms: int
) -> Result[tuple[str, ...]]:
    """offsets.retention.ms: in groups without members, offsets committed more than
    ``retention_ms`` ago are tombstoned; a group left with nothing is deleted. The
    response lists the groups deleted. (Groups with members keep their offsets.)"""
    records = []
    deleted = []
    for gid in sorted(state.groups):
        group = state.groups[gid]
        if group.members:
            continue
        old = sorted(tp for tp, o in group.offsets.items()
                     if o.commit_timestamp_ms + retention_ms <= now_ms)
        if not old:
            continue
        records.extend(Tombstone(type="offset_commit", group_id=gid, topic=tp.topic,
                                 partition=tp.partition) for tp in old)
        if len(old) == len(group.offsets):
            records.extend(Tombstone(type=kind, group_id=gid)
                           for kind in ("target_metadata", "partition_metadata",
                                        "group_metadata"))
            deleted.append(gid)
    return Result(apply(state, records), tuple(records), tuple(deleted))


def delete_group(state: CoordinatorState, group_id: str) -> Result[None]:
    """DeleteGroups: only an Empty group; tombstones its offsets and metadata."""
    group = state.groups.get(group_id)
    if group is None:
        raise GroupIdNotFoundError("no such group", group_id=group_id)
    if group.members:
        raise NonEmptyGroupError(f"the group has {len(group.members)} members",
                                 group_id=group_id)
    b = GroupBuilder(group)
    for tp in sorted(group.offsets):
        b.emit(Tombstone(type="offset_commit", group_id=group_id, topic=tp.topic,
                         partition=tp.partition))
    for kind in ("target_metadata", "partition_metadata", "group_metadata"):
        b.emit(Tombstone(type=kind, group_id=group_id))
    records = tuple(b.emitted)
    next_state = apply(state, records)
    assert group_id not in next_state.groups
    timers = {k: v for k, v in next_state.session_deadlines.items() if k != group_id}
    return Result(replace(next_state, session_deadlines=timers), records, None)


def describe_group(state: CoordinatorState, group_id: str, assignor: str) -> GroupDescription:
    """The view behind ``rillet group describe`` (state Dead for an unknown group)."""
    group = state.groups.get(group_id)
    if group is None:
        return GroupDescription(group_id=group_id, state=GroupState.DEAD, group_epoch=0,
                                assignment_epoch=0, assignor=assignor, members=())
    members = tuple(
        MemberDescription(
            member_id=m.member_id,
            instance_id=m.instance_id,
            rack_id=m.rack_id,
            client_id=m.client_id,
            client_host=m.client_host,
            member_epoch=m.member_epoch,
            member_state=m.state,
            subscribed_topic_names=m.subscribed_topic_names,
            subscribed_topic_regex=m.subscribed_topic_regex,
            assignment=tuple(sorted(m.assigned)),
            target_assignment=tuple(sorted(group.target.get(m.member_id, frozenset()))),
            pending_revocation=tuple(sorted(m.pending_revocation)),
        )
        for _, m in sorted(group.members.items())
    )
    return GroupDescription(group_id=group_id, state=group.state, group_epoch=group.group_epoch,
                            assignment_epoch=group.assignment_epoch, assignor=assignor,
                            members=members)


def list_groups(
    state: CoordinatorState, states: frozenset[GroupState] | None = None
) -> tuple[GroupListing, ...]:
    """ListGroups, optionally filtered by state, sorted by group id."""
    return tuple(
        GroupListing(group_id=gid, state=g.state)
        for gid, g in sorted(state.groups.items())
        if states is None or g.state in states
    )
