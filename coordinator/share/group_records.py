"""Share-group records of the ``__consumer_offsets`` topic (beside the consumer groups' of
coordinator/groups/records.py, which delegates to this module). Pure.

=====================  ======================  ==============================================
type                   key fields              value fields
=====================  ======================  ==============================================
share_group_metadata   group_id                epoch, topics: [[name, partitions], ...]
share_member           group_id, member_id     member_epoch, previous_member_epoch, rack_id,
                                               client_id, client_host, subscribed_topic_names
=====================  ======================  ==============================================

Every value also carries ``"version": 0``; a ``None`` value is a tombstone. The assignment
is not stored: the assignor is deterministic, so it is recomputed from the members and the
subscribed topics after a replay (``ShareGroupCoordinator.on_loaded``). Members are stored
so a coordinator failover keeps the group's epoch and subscriptions; a member whose session
lapses meanwhile is fenced as usual and rejoins (UNKNOWN_MEMBER_ID / FENCED_MEMBER_EPOCH).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from rillet.frozen import frozen

from .group_model import ShareGroup, ShareGroupMember, ShareGroups

VERSION = 0
TYPES = ("share_group_metadata", "share_member")


@frozen(kw_only=True)
class ShareGroupMetadataRecord:
    group_id: str
    epoch: int
    topics: tuple[tuple[str, int], ...]


@frozen(kw_only=True)
class ShareMemberRecord:
    group_id: str
    member_id: str
    member_epoch: int
    previous_member_epoch: int
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]


@frozen(kw_only=True)
class ShareTombstone:
    """Deletes the key of ``type`` (``member_id`` "" for the group metadata)."""

    type: str
    group_id: str
    member_id: str = ""


ShareRecord = ShareGroupMetadataRecord | ShareMemberRecord | ShareTombstone
RECORD_CLASSES = (ShareGroupMetadataRecord, ShareMemberRecord, ShareTombstone)


def member_record(group_id: str, m: ShareGroupMember) -> ShareMemberRecord:
    return ShareMemberRecord(
        group_id=group_id, member_id=m.member_id, member_epoch=m.member_epoch,
        previous_member_epoch=m.previous_member_epoch, rack_id=m.rack_id,
        client_id=m.client_id, client_host=m.client_host,
        subscribed_topic_names=m.subscribed_topic_names,
    )


def to_kv(record: ShareRecord) -> tuple[dict[str, Any], dict[str, Any] | None]:
    match record:
        case ShareTombstone():
            key = {"type": record.type, "group_id": record.group_id}
            if record.type == "share_member":
                key["member_id"] = record.member_id
            return key, None
        case ShareGroupMetadataRecord():
            return ({"type": "share_group_metadata", "group_id": record.group_id},
                    {"version": VERSION, "epoch": record.epoch,
                     "topics": [[t, n] for t, n in record.topics]})
        case ShareMemberRecord():
            return ({"type": "share_member", "group_id": record.group_id,
                     "member_id": record.member_id},
                    {"version": VERSION, "member_epoch": record.member_epoch,
                     "previous_member_epoch": record.previous_member_epoch,
                     "rack_id": record.rack_id, "client_id": record.client_id,
                     "client_host": record.client_host,
                     "subscribed_topic_names": list(record.subscribed_topic_names)})
    raise TypeError(f"not a share-group record: {record!r}")


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {type(v).__name__}")
    return v


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"expected an integer, got {type(v).__name__}")
    return v


def _list(v: Any) -> list:
    if not isinstance(v, list | tuple):
        raise ValueError(f"expected a list, got {type(v).__name__}")
    return list(v)


def from_kv(key: Mapping[str, Any], value: Mapping[str, Any] | None) -> ShareRecord:
    """Decode what :func:`to_kv` produced; ``ValueError`` on anything malformed."""
    try:
        kind, gid = _str(key["type"]), _str(key["group_id"])
        if kind not in TYPES:
            raise ValueError(f"unknown share record type {kind!r}")
        mid = _str(key["member_id"]) if kind == "share_member" else ""
        if value is None:
            return ShareTombstone(type=kind, group_id=gid, member_id=mid)
        if kind == "share_group_metadata":
            topics = tuple((_str(t), _int(n)) for t, n in _list(value["topics"]))
            return ShareGroupMetadataRecord(group_id=gid, epoch=_int(value["epoch"]),
                                            topics=topics)
        rack = value["rack_id"]
        return ShareMemberRecord(
            group_id=gid, member_id=mid, member_epoch=_int(value["member_epoch"]),
            previous_member_epoch=_int(value["previous_member_epoch"]),
            rack_id=None if rack is None else _str(rack),
            client_id=_str(value["client_id"]), client_host=_str(value["client_host"]),
            subscribed_topic_names=tuple(_str(t) for t in _list(value["subscribed_topic_names"])),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed share-group record: {exc!r}") from exc


def apply_one(group: ShareGroup | None, record: ShareRecord) -> ShareGroup | None:
    """The group after ``record`` (None: no trace of it left). The derived assignment is
    left as it was; the coordinator recomputes it."""
    group = group or ShareGroup(group_id=record.group_id)
    match record:
        case ShareGroupMetadataRecord():
            group = replace(group, group_epoch=record.epoch,
                            subscribed_topics=dict(record.topics))
        case ShareMemberRecord():
            members = dict(group.members)
            members[record.member_id] = ShareGroupMember(
                member_id=record.member_id, member_epoch=record.member_epoch,
                previous_member_epoch=record.previous_member_epoch, rack_id=record.rack_id,
                client_id=record.client_id, client_host=record.client_host,
                subscribed_topic_names=record.subscribed_topic_names,
            )
            group = replace(group, members=members)
        case ShareTombstone(type="share_member"):
            members = {k: v for k, v in group.members.items() if k != record.member_id}
            assignment = {k: v for k, v in group.assignment.items() if k != record.member_id}
            group = replace(group, members=members, assignment=assignment)
        case ShareTombstone():
            if not group.members:
                return None
            group = replace(group, group_epoch=0, subscribed_topics={})
    return group


def apply(state: ShareGroups, records: Iterable[ShareRecord]) -> ShareGroups:
    """The share groups after ``records``, in order (timers carried over)."""
    groups = dict(state.groups)
    touched = False
    for record in records:
        touched = True
        group = apply_one(groups.get(record.group_id), record)
        if group is None:
            groups.pop(record.group_id, None)
        else:
            groups[record.group_id] = group
    return replace(state, groups=groups) if touched else state
