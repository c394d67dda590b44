"""Share-group membership (KIP-932) as pure functions over :class:`ShareGroups`.

Each handler takes the shard's share groups, the request, ``now_ms`` and the group's
:class:`~.config.ShareGroupConfig` (and, where subscriptions are resolved, ``topics``: topic
name -> partition count from the metadata image) and returns a :class:`ShareResult` (next
state, records for ``__consumer_offsets``, response), or raises a ``GroupError`` having
changed nothing. The actor appends the records and only then adopts the state and answers.

================================  ===========================================================
event                             effect
================================  ===========================================================
heartbeat, epoch 0 (join)         new member (``share.max.size``: GROUP_MAX_SIZE_REACHED),
                                  or a known member rejoining; group epoch + 1 if the
                                  membership or the subscriptions changed
heartbeat, epoch = member's       subscription changes bump the group epoch
  (or its previous: a lost answer)
heartbeat, other epoch            FENCED_MEMBER_EPOCH (the member rejoins with epoch 0)
heartbeat, unknown member         UNKNOWN_MEMBER_ID (the member rejoins with epoch 0)
heartbeat, epoch -1 (leave)       member removed; group epoch + 1
metadata change (``on_metadata``)  a subscribed topic appears, goes or grows: group epoch + 1
session timeout (``tick``)         a silent member is fenced (removed), as by a leave
delete_group                      only a group without members (NON_EMPTY_GROUP otherwise)
================================  ===========================================================

Every group epoch bump recomputes the assignment (:func:`.assignor.simple_assign`) at once:
share groups have no revocation, so the assignment epoch always equals the group epoch and a
member takes that epoch, with its assignment, in the answer to its next heartbeat. Group
states: Empty (no members), Stable (members), Dead (unknown or deleted). A group id is one
type: the caller passes the shard's consumer groups and a share heartbeat for one of their
ids is INCONSISTENT_GROUP_PROTOCOL.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import replace
from typing import Generic, TypeVar

from rillet.coordinator.groups.errors import (
    FencedMemberEpochError,
    GroupIdNotFoundError,
    GroupMaxSizeReachedError,
    InconsistentGroupProtocolError,
    InvalidRequestError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)

from rillet.frozen import frozen

from .assignor import simple_assign
from .config import ShareGroupConfig
from .group_model import (
    STATE_DEAD,
    ShareGroup,
    ShareGroupMember,
    ShareGroups,
    SharePartition,
)
from .group_records import (
    ShareGroupMetadataRecord,
    ShareRecord,
    ShareTombstone,
    apply_one,
    member_record,
)

T = TypeVar("T")
JOIN = 0
LEAVE = -1


@frozen(kw_only=True)
class ShareHeartbeat:
    group_id: str
    member_id: str
    member_epoch: int
    rack_id: str | None = None
    subscribed_topic_names: tuple[str, ...] | None = None
    """None: unchanged since the last heartbeat (required when joining)."""
    client_id: str = ""
    client_host: str = ""


@frozen(kw_only=True)
class ShareHeartbeatAnswer:
    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    assignment: frozenset[SharePartition] | None
    """The member's partitions when its epoch changed with this answer, else None."""


@frozen
class ShareResult(Generic[T]):
    state: ShareGroups
    records: tuple[ShareRecord, ...]
    response: T


@frozen
class FencedMember:
    group_id: str
    member_id: str


def validate(req: ShareHeartbeat) -> None:
    def bad(msg: str) -> InvalidRequestError:
        return InvalidRequestError(msg, group_id=req.group_id, member_id=req.member_id)

    if not req.group_id:
        raise bad("group_id must not be empty")
    if not req.member_id:
        raise bad("member_id must not be empty (the client generates a UUID)")
    if req.member_epoch < LEAVE:
        raise bad(f"invalid member_epoch {req.member_epoch} (share groups have no static "
                  "members)")
    if req.member_epoch == JOIN and req.subscribed_topic_names is None:
        raise bad("subscribed_topic_names must be given when joining")
    if req.subscribed_topic_names is not None and not all(
        isinstance(t, str) and t for t in req.subscribed_topic_names
    ):
        raise bad("subscribed_topic_names holds an empty topic name")


def _subscribed(members: Iterable[ShareGroupMember], topics: Mapping[str, int]) -> dict:
    names = {t for m in members for t in m.subscribed_topic_names}
    return {t: topics[t] for t in sorted(names) if t in topics}


def _assigned(group: ShareGroup) -> ShareGroup:
    subs = {mid: m.subscribed_topic_names for mid, m in group.members.items()}
    return replace(group, assignment=simple_assign(subs, group.subscribed_topics),
                   assignment_epoch=group.group_epoch)


def _emit(group: ShareGroup | None, records: list, record: ShareRecord) -> ShareGroup | None:
    records.append(record)
    return apply_one(group, record)


def _refresh(group: ShareGroup, records: list, topics: Mapping[str, int],
             bump: bool) -> ShareGroup:
    """Bump the epoch if ``bump`` or the subscribed partition counts changed; reassign."""
    subscribed = _subscribed(group.members.values(), topics)
    if bump or subscribed != dict(group.subscribed_topics):
        group = _emit(group, records, ShareGroupMetadataRecord(
            group_id=group.group_id, epoch=group.group_epoch + 1,
            topics=tuple(subscribed.items())))
        return _assigned(group)
    return group


def _with_timers(timers: Mapping[str, Mapping[str, int]], gid: str,
                 changes: Mapping[str, int | None]) -> dict:
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


def _commit(state: ShareGroups, group: ShareGroup | None, gid: str,
            timers: Mapping[str, int | None]) -> ShareGroups:
    groups = dict(state.groups)
    if group is None:
        groups.pop(gid, None)
    else:
        groups[gid] = group
    return replace(state, groups=groups,
                   session_deadlines=_with_timers(state.session_deadlines, gid, timers))


def heartbeat(state: ShareGroups, req: ShareHeartbeat, topics: Mapping[str, int], now_ms: int,
              config: ShareGroupConfig, consumer_groups: Container[str] = ()
              ) -> ShareResult[ShareHeartbeatAnswer]:
    """One ShareGroupHeartbeat (join, heartbeat or leave)."""
    validate(req)
    ids = {"group_id": req.group_id, "member_id": req.member_id}
    if req.group_id in consumer_groups:
        raise InconsistentGroupProtocolError("the group id belongs to a consumer group", **ids)
    group = state.groups.get(req.group_id)
    member = group.members.get(req.member_id) if group else None
    records: list[ShareRecord] = []
    if req.member_epoch == LEAVE:
        if member is None:
            raise UnknownMemberIdError("unknown member", **ids)
        group = _remove(group, req.member_id, records)
        return ShareResult(_commit(state, group, req.group_id, {req.member_id: None}),
                           tuple(records), ShareHeartbeatAnswer(
                               member_id=req.member_id, member_epoch=LEAVE,
                               heartbeat_interval_ms=config.heartbeat_interval_ms,
                               assignment=None))
    if member is None:
        if req.member_epoch != JOIN:
            raise UnknownMemberIdError("unknown member: rejoin with epoch 0", **ids)
        if group is not None and len(group.members) >= config.max_size:
            raise GroupMaxSizeReachedError(
                f"the group has {len(group.members)} members (group.share.max.size)", **ids)
        group = group or ShareGroup(group_id=req.group_id)
        old = None
        member = ShareGroupMember(member_id=req.member_id)
    else:
        old = member
        epochs = (member.member_epoch, member.previous_member_epoch)
        if req.member_epoch != JOIN and req.member_epoch not in epochs:
            raise FencedMemberEpochError(
                f"epoch {req.member_epoch} is not the member's {member.member_epoch}", **ids)
    names = (tuple(sorted(set(req.subscribed_topic_names)))
             if req.subscribed_topic_names is not None else member.subscribed_topic_names)
    updated = replace(member, rack_id=req.rack_id if req.rack_id is not None else
                      member.rack_id, client_id=req.client_id or member.client_id,
                      client_host=req.client_host or member.client_host,
                      subscribed_topic_names=names)
    group = replace(group, members={**group.members, req.member_id: updated})
    if group.assignment_epoch != group.group_epoch:  # a replayed group: derive it first
        group = _assigned(group)
    bump = old is None or names != old.subscribed_topic_names
    group = _refresh(group, records, topics, bump)
    new = replace(updated, member_epoch=group.group_epoch,
                  previous_member_epoch=(updated.member_epoch
                                         if updated.member_epoch != group.group_epoch
                                         else updated.previous_member_epoch))
    if old is None or new != old:
        group = _emit(group, records, member_record(req.group_id, new))
    changed = req.member_epoch != new.member_epoch
    answer = ShareHeartbeatAnswer(
        member_id=req.member_id, member_epoch=new.member_epoch,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        assignment=group.assignment.get(req.member_id, frozenset()) if changed else None)
    timers = {req.member_id: now_ms + config.session_timeout_ms}
    return ShareResult(_commit(state, group, req.group_id, timers), tuple(records), answer)


def _remove(group: ShareGroup, member_id: str, records: list) -> ShareGroup:
    group = _emit(group, records, ShareTombstone(type="share_member", group_id=group.group_id,
                                                 member_id=member_id))
    # the remaining subscriptions are a subset of the old ones: the stored counts suffice
    return _refresh(group, records, group.subscribed_topics, bump=True)


def tick(state: ShareGroups, now_ms: int) -> ShareResult[tuple[FencedMember, ...]]:
    """Fence (remove) every member whose session expired at ``now_ms``."""
    fenced = tuple(FencedMember(gid, mid)
                   for gid in sorted(state.session_deadlines)
                   for mid, t in sorted(state.session_deadlines[gid].items()) if t <= now_ms)
    records: list[ShareRecord] = []
    for f in fenced:
        group = state.groups.get(f.group_id)
        if group is not None and f.member_id in group.members:
            group = _remove(group, f.member_id, records)
        state = _commit(state, group, f.group_id, {f.member_id: None})
    return ShareResult(state, tuple(records), fenced)


def on_metadata(state: ShareGroups, topics: Mapping[str, int]) -> ShareResult[None]:
    """Topics appeared, went or grew: bump the epoch of each group whose subscribed
    partitions changed and reassign (members hear it on their next heartbeat)."""
    records: list[ShareRecord] = []
    groups = dict(state.groups)
    for gid in sorted(groups):
        group = groups[gid]
        if group.members:
            groups[gid] = _refresh(group, records, topics, bump=False)
    if not records:
        return ShareResult(state, (), None)
    return ShareResult(replace(state, groups=groups), tuple(records), None)


def on_loaded(state: ShareGroups, now_ms: int,
              config_of: Callable[[str], ShareGroupConfig]) -> ShareGroups:
    """After a replay: derive each assignment, give every member a fresh session."""
    groups = {gid: _assigned(g) for gid, g in state.groups.items()}
    sessions = {gid: {mid: now_ms + config_of(gid).session_timeout_ms for mid in g.members}
                for gid, g in groups.items() if g.members}
    return replace(state, groups=groups, session_deadlines=sessions)


def delete_group(state: ShareGroups, group_id: str) -> ShareResult[None]:
    """DeleteGroups of a share group: only without members. The share-partition state is
    deleted separately (DeleteShareGroupOffsets to each partition leader)."""
    group = state.groups.get(group_id)
    if group is None:
        raise GroupIdNotFoundError("no such share group", group_id=group_id)
    if group.members:
        raise NonEmptyGroupError(f"the group has {len(group.members)} members",
                                 group_id=group_id)
    record = ShareTombstone(type="share_group_metadata", group_id=group_id)
    return ShareResult(_commit(state, None, group_id, {}), (record,), None)


def group_state(state: ShareGroups, group_id: str) -> str:
    group = state.groups.get(group_id)
    return STATE_DEAD if group is None else group.state
