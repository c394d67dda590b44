"""Classic groups (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) in the group coordinator
actor, beside its KIP-848 groups. See docs/groups.md ("The classic protocol").

The protocol itself is the pure :class:`~rillet.coordinator.groups.classic.ClassicGroup`;
this module is the part of the actor that carries its decisions out, run only on the
GroupCoordinatorActor's thread (``handle``, ``tick``, ``loaded``, ``drop`` are called from
its message handlers):

* Each loaded shard has a :class:`ClassicHost`: its classic groups (rebuilt with
  ``ClassicGroup.from_record`` from the replayed ``classic_group`` records when the shard
  loads) and the requests parked in them, ``(group id, member id) -> respond`` (a JoinGroup
  until the rebalance completes, a follower's SyncGroup until the leader's).
* A group's record (Kafka's GroupMetadataValue) is written to ``__consumer_offsets`` through
  the shard's queue whenever the group settles (``Stable``: the leader's assignment is in;
  ``Empty``) with something new; the replies its change released (every member's SyncGroup)
  are sent once that write is durable, as Kafka's coordinator does, or answered with the
  write's error.
* Sessions and rebalance deadlines expire on the actor's tick.
* Offsets of a classic group are the shard's ordinary offset records: ``commit_request``
  checks a classic member's generation (``classic_commit``) in the OffsetCommit path.

Replies go to ``respond`` as the core's values (``JoinResponse``, ``SyncResponse``, ``None``
for an accepted heartbeat, the per-member errors of a leave) or as :class:`Failure`; the
Kafka listener (actors/kafka_groups.py) turns them into Kafka's responses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rillet.coordinator import groups as G
from rillet.coordinator.groups import classic_records as CR
from rillet.coordinator.groups.classic import (
    ClassicConfig,
    ClassicGroup,
    ClassicState,
    check_kind,
    classic_commit,
)
from rillet.coordinator.groups.errors import GroupError, NonEmptyGroupError
from rillet.transport import protocol as P

from rillet.frozen import frozen

from . import share_group as S
from .configs import BrokerConfig
from .consumer_protocol import assignment_partitions, subscription_topics

E = P.ErrorCode
Respond = Callable[[Any], None]


# ---------------------------------------------------------------------------- messages


@frozen
class Failure:
    """A request's error answer (Kafka's error code and a message)."""

    code: int
    message: str = ""


@frozen(kw_only=True)
class ClassicJoin:
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    require_known_member_id: bool  # JoinGroup v4+: MEMBER_ID_REQUIRED first


@frozen(kw_only=True)
class ClassicSync:
    group_id: str
    member_id: str
    group_instance_id: str | None
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    assignments: tuple[tuple[str, bytes], ...]


@frozen(kw_only=True)
class ClassicHeartbeat:
    group_id: str
    member_id: str
    group_instance_id: str | None
    generation_id: int


@frozen(kw_only=True)
class ClassicLeave:
    group_id: str
    members: tuple[tuple[str, str | None], ...]  # (member id, group instance id)


@frozen(kw_only=True)
class ClassicDescribe:
    """DescribeGroups: each group as ``ClassicGroup.describe()`` shapes it (KIP-848 groups
    too, with protocol type "consumer"), or a Failure of its coordinator."""

    group_ids: tuple[str, ...]


@frozen(kw_only=True)
class ClassicList:
    """Kafka's ListGroups: every group of the loaded shards, classic and KIP-848, as
    ``(group id, protocol type, state, type)``."""


ClassicRequest = ClassicJoin | ClassicSync | ClassicHeartbeat | ClassicLeave
REQUESTS = (ClassicJoin, ClassicSync, ClassicHeartbeat, ClassicLeave)
ALL = (*REQUESTS, ClassicDescribe, ClassicList)


def classic_config(broker_configs: Any) -> ClassicConfig:
    c = BrokerConfig.of(broker_configs)
    return ClassicConfig(
        min_session_timeout_ms=c.int("group.min.session.timeout.ms"),
        max_session_timeout_ms=c.int("group.max.session.timeout.ms"),
        initial_rebalance_delay_ms=c.int("group.initial.rebalance.delay.ms"),
        max_size=c.int("group.max.size"),
    )


@dataclass(slots=True)
class ClassicHost:
    """One shard's classic groups and their parked requests (actor thread only)."""

    config: ClassicConfig
    groups: dict[str, ClassicGroup] = field(default_factory=dict)
    waiting: dict[tuple[str, str], Respond] = field(default_factory=dict)


# --------------------------------------------------------------------- shard lifecycle


def loaded(shard: Any, config: ClassicConfig, now: int) -> ClassicHost:
    """The classic groups of a shard that has just replayed its log: members keep their
    assignment and get a fresh session (clients that moved on rejoin and are told so)."""
    host = ClassicHost(config)
    for gid, record in shard.state.classic.items():
        host.groups[gid] = ClassicGroup.from_record(gid, record, config, now)
    return host


def drop(host: ClassicHost | None, code: int, message: str) -> None:
    """The shard is no longer ours: every parked request gets ``code`` (clients re-find
    the coordinator)."""
    if host is None:
        return
    waiting, host.waiting = host.waiting, {}
    for respond in waiting.values():
        respond(Failure(code, message))


def blocks_consumer_heartbeat(host: ClassicHost | None, group_id: str) -> bool:
    """A KIP-848 ConsumerGroupHeartbeat on a classic group with members: GROUP_ID_NOT_FOUND."""
    g = host.groups.get(group_id) if host is not None else None
    if g is None:
        return False
    try:
        check_kind(classic_exists=bool(g.members), consumer_exists=False, classic_request=False)
    except GroupError:
        return True
    return False


def commit_request(host: ClassicHost | None, req: G.OffsetCommitRequest) -> G.OffsetCommitRequest:
    """An OffsetCommit to a classic group with members: its member and generation checked
    here, then stored as the shared offset path's simple commit (raises a GroupError). Any
    other goes the native way (a simple commit, or a KIP-848 member's: an id may be used by
    KIP-848 members once its classic group is empty)."""
    g = host.groups.get(req.group_id) if host is not None else None
    if g is None or not g.members:
        return req
    return classic_commit(g, req)


def txn_commit_request(host: ClassicHost | None, req: Any) -> Any:
    """A TxnOffsetCommit (coordinator/groups/messages.py) to a classic group with members
    (a Kafka client's consume-transform-produce, KIP-447): its member and generation checked
    here against the classic group (raises a GroupError), then passed on without them, as
    ``commit_request`` does for OffsetCommit. Without group metadata (generation -1, no
    member: an older client naming the group alone) nothing is checked, as natively."""
    g = host.groups.get(req.group_id) if host is not None else None
    if g is None or not g.members or (req.generation_id < 0 and not req.member_id):
        return req
    g.check_commit(member_id=req.member_id, group_instance_id=req.instance_id,
                   generation_id=req.generation_id)
    return replace(req, member_id="", generation_id=-1, instance_id=None)


# ----------------------------------------------------------------------------- requests


def handle(actor: Any, shard: Any, req: ClassicRequest, respond: Respond) -> None:
    """One classic request of a group of ``shard`` (loaded)."""
    host: ClassicHost = shard.classic
    gid = req.group_id
    now = actor.clock()
    if S.is_share_group(shard.state, gid):
        respond(Failure(E.INCONSISTENT_GROUP_PROTOCOL, f"{gid!r} is a share group"))
        return
    consumer = shard.state.groups.get(gid)
    g = host.groups.get(gid)
    try:
        check_kind(classic_exists=g is not None and bool(g.members),
                   consumer_exists=consumer is not None and bool(consumer.members),
                   classic_request=True)
    except GroupError as e:
        respond(Failure(e.code, str(e)))
        return
    if isinstance(req, ClassicJoin):
        if g is None:
            g = ClassicGroup(gid, host.config)
        new_id = f"{req.client_id or 'member'}-{uuid.uuid4()}"
        me = req.member_id or new_id
        _park(host, gid, me, respond)
        try:
            replies = g.join(member_id=req.member_id, group_instance_id=req.group_instance_id,
                             client_id=req.client_id, client_host=req.client_host,
                             session_timeout_ms=req.session_timeout_ms,
                             rebalance_timeout_ms=req.rebalance_timeout_ms,
                             protocol_type=req.protocol_type, protocols=req.protocols,
                             require_known_member_id=req.require_known_member_id,
                             new_member_id=new_id, now_ms=now)
        except GroupError as e:
            host.waiting.pop((gid, me), None)
            respond(Failure(e.code, str(e)))
            return
        host.groups[gid] = g
        _deliver(actor, shard, g, replies)
        return
    if g is None:
        if isinstance(req, ClassicLeave):
            respond([Failure(E.UNKNOWN_MEMBER_ID, "no such group") for _ in req.members])
        else:
            respond(Failure(E.UNKNOWN_MEMBER_ID, f"no classic group {gid!r}"))
        return
    try:
        if isinstance(req, ClassicSync):
            _park(host, gid, req.member_id, respond)
            try:
                replies = g.sync(member_id=req.member_id,
                                 group_instance_id=req.group_instance_id,
                                 generation_id=req.generation_id,
                                 protocol_type=req.protocol_type,
                                 protocol_name=req.protocol_name,
                                 assignments=req.assignments, now_ms=now)
            except GroupError:
                host.waiting.pop((gid, req.member_id), None)
                raise
        elif isinstance(req, ClassicHeartbeat):
            g.heartbeat(member_id=req.member_id, group_instance_id=req.group_instance_id,
                        generation_id=req.generation_id, now_ms=now)
            respond(None)
            return
        else:
            ids = [mid or g.static_members.get(iid or "", "") for mid, iid in req.members]
            errors, replies = g.leave(req.members, now)
            for mid, err in zip(ids, errors, strict=True):
                if err is None:
                    parked = host.waiting.pop((gid, mid), None)
                    if parked is not None:
                        parked(Failure(E.UNKNOWN_MEMBER_ID, "the member left"))
            respond([None if e is None else Failure(e.code, str(e)) for e in errors])
    except GroupError as e:
        respond(Failure(e.code, str(e)))
        return
    _deliver(actor, shard, g, replies)


def _park(host: ClassicHost, gid: str, member_id: str, respond: Respond) -> None:
    old = host.waiting.pop((gid, member_id), None)
    if old is not None:  # the member asked again: its older request is over
        old(Failure(E.REBALANCE_IN_PROGRESS, "superseded by a newer request"))
    host.waiting[(gid, member_id)] = respond


def tick(actor: Any, shard: Any, now: int) -> None:
    """Expire sessions, pending member ids and rebalance deadlines that are due."""
    host: ClassicHost | None = shard.classic
    if host is None:
        return
    for gid, g in list(host.groups.items()):
        due = g.next_deadline_ms()
        if due is not None and due <= now:
            _deliver(actor, shard, g, g.tick(now))
        if (g.state is ClassicState.EMPTY and not g.members and not g.pending_members
                and gid not in shard.state.classic):
            del host.groups[gid]  # never settled: nothing to remember


def next_due(shard: Any, now: int) -> int | None:
    """When :func:`tick` next has something to do for ``shard`` (None: nothing)."""
    host: ClassicHost | None = shard.classic
    if host is None:
        return None
    due = None
    for gid, g in host.groups.items():
        if (g.state is ClassicState.EMPTY and not g.members and not g.pending_members
                and gid not in shard.state.classic):
            return now  # to forget
        t = g.next_deadline_ms()
        if t is not None and (due is None or t < due):
            due = t
    return due


def _deliver(actor: Any, shard: Any, g: ClassicGroup, replies: list) -> None:
    """Answer the parked requests ``replies`` release, after writing the group's record
    if it settled with something new (the replies then wait for that write)."""
    host: ClassicHost = shard.classic
    answers = []
    for mid, reply in replies:
        respond = host.waiting.pop((g.group_id, mid), None)
        if respond is not None:
            answers.append((respond, Failure(reply.code, str(reply))
                            if isinstance(reply, GroupError) else reply))
    record = _settled_record(shard, g)
    if record is None:
        for respond, reply in answers:
            respond(reply)
        return
    gid = g.group_id

    def fn(state: G.CoordinatorState) -> G.Result:
        rec = CR.ClassicGroupRecord(group_id=gid, value=record)
        return G.Result(replace(state, classic=CR.apply(state.classic, [rec])), (rec,), None)

    def done(_result: Any, error: tuple[int, str] | None) -> None:
        for respond, reply in answers:
            respond(reply if error is None else Failure(*error))

    actor._mutate(shard, fn, done)


def _settled_record(shard: Any, g: ClassicGroup) -> dict | None:
    """The group's record to write now, or None: only a settled group (Stable, Empty) is
    written, and only when it differs from the last one written."""
    if g.state not in (ClassicState.STABLE, ClassicState.EMPTY):
        return None
    durable = shard.state.classic.get(g.group_id)
    if durable is None and not g.members:
        return None
    record = {k: v for k, v in g.to_record().items() if k in CR._FIELDS}
    return None if durable is not None and dict(durable) == record else record


# ------------------------------------------------------------------------------- views


def describe(shard: Any, gid: str) -> dict:
    """DescribeGroups' view of ``gid``: a classic group's own; a KIP-848 group's members
    (no client-side metadata); Empty for a group with only offsets; Dead when unknown."""
    host: ClassicHost | None = shard.classic
    g = host.groups.get(gid) if host is not None else None
    consumer = shard.state.groups.get(gid)
    if g is not None and (g.members or consumer is None):
        return g.describe()
    if consumer is None:
        return {"group_id": gid, "state": "Dead", "protocol_type": "", "protocol": "",
                "members": []}
    return {
        "group_id": gid, "state": "Empty" if not consumer.members else str(consumer.state),
        "protocol_type": "consumer", "protocol": "",
        "members": [{"member_id": m.member_id, "group_instance_id": m.instance_id,
                     "client_id": m.client_id, "client_host": m.client_host,
                     "metadata": b"", "assignment": b""}
                    for _, m in sorted(consumer.members.items())],
    }


def listed(shard: Any) -> list[tuple[str, str, str, str]]:
    """Kafka's ListGroups rows of a loaded shard: ``(group id, protocol type, state, type)``
    (type "classic", "consumer" or "share"; a group with only offsets is a classic Empty
    one)."""
    host: ClassicHost | None = shard.classic
    classic = host.groups if host is not None else {}
    rows = []
    for gid in sorted(set(classic) | set(shard.state.groups)):
        g = classic.get(gid)
        consumer = shard.state.groups.get(gid)
        if consumer is not None and consumer.members:
            rows.append((gid, "consumer", str(consumer.state), "consumer"))
        elif g is not None:
            rows.append((gid, g.protocol_type or "consumer", g.state.value, "classic"))
        else:
            rows.append((gid, "consumer", "Empty", "classic"))
    # share groups (KIP-932): protocol type and group type "share", as Kafka lists them
    share = shard.state.share.groups
    rows += [(gid, "share", share[gid].state, "share") for gid in sorted(share)]
    return rows


def is_classic(host: ClassicHost | None, gid: str) -> bool:
    return host is not None and gid in host.groups


def delete_fn(core: G.GroupCoordinator, shard: Any, gid: str) -> Callable:
    """DeleteGroups of a classic group (a queue operation): NON_EMPTY_GROUP while it has
    members; else its offsets and its record are tombstoned and the group forgotten."""

    def fn(state: G.CoordinatorState) -> G.Result:
        g = shard.classic.groups.get(gid)
        if g is not None and (g.members or g.pending_members):
            raise NonEmptyGroupError(f"the group has {len(g.members)} members", group_id=gid)
        records: list = []
        if gid in state.groups:
            result = core.delete_group(state, gid)
            state, records = result.state, list(result.records)
        if gid in state.classic:
            rec = CR.ClassicGroupRecord(group_id=gid, value=None)
            state = replace(state, classic=CR.apply(state.classic, [rec]))
            records.append(rec)
        shard.classic.groups.pop(gid, None)
        return G.Result(state, tuple(records), None)

    return fn


def subscribed_topics(host: ClassicHost | None, gid: str) -> frozenset[str]:
    """The topics a classic ``consumer`` group's members subscribe to (their metadata for
    the group's protocol, or their first protocol's before one is chosen)."""
    g = host.groups.get(gid) if host is not None else None
    if g is None or g.protocol_type != "consumer":
        return frozenset()
    return frozenset(t for m in g.members.values() for t in subscription_topics(
        m.metadata(g.protocol_name) if g.protocol_name else m.protocols[0][1]))


def delete_offsets(core: G.GroupCoordinator, host: ClassicHost | None,
                   state: G.CoordinatorState, gid: str, tps: list) -> G.Result:
    """OffsetDelete: as the core's, and GROUP_SUBSCRIBED_TO_TOPIC for the partitions of
    topics a classic group's members subscribe to (Kafka refuses those too)."""
    blocked = subscribed_topics(host, gid)
    result = core.delete_offsets(state, gid, [tp for tp in tps if tp.topic not in blocked])
    if not blocked:
        return result
    errors = {**result.response.errors, **{tp: E.GROUP_SUBSCRIBED_TO_TOPIC for tp in tps
                                           if tp.topic in blocked}}
    return replace(result, response=G.OffsetDeleteResponse(errors=errors))


# ------------------------------------------------------------- the native tools' view


def native_described(host: ClassicHost | None, gid: str) -> P.DescribedGroup | None:
    """``rillet group describe``'s view of a classic group with members (None otherwise):
    its state, protocol (as the assignor), generation (as the epochs) and each member's
    partitions when the protocol type is ``consumer``."""
    g = host.groups.get(gid) if host is not None else None
    if g is None or not g.members:
        return None
    consumer = g.protocol_type == "consumer" and g.state is ClassicState.STABLE
    return P.DescribedGroup(
        group_id=gid, group_state=g.state.value, group_epoch=g.generation_id,
        assignment_epoch=g.generation_id, assignor_name=g.protocol_name or "",
        members=tuple(P.DescribedGroupMember(
            member_id=m.member_id, instance_id=m.group_instance_id,
            member_epoch=g.generation_id, member_state="classic", client_id=m.client_id,
            client_host=m.client_host,
            assignment=tuple(P.GroupTopicPartitions(topic=t, partitions=ps) for t, ps in
                             assignment_partitions(m.assignment).items()) if consumer else ())
            for m in g.members.values()))


def native_listed(host: ClassicHost | None, groups: list[P.ListedGroup],
                  states: tuple[str, ...] = ()) -> list[P.ListedGroup]:
    """``rillet group list``: ``groups`` (the shard's consumer groups) with each classic
    group that has members listed in its classic state (filtered by ``states``)."""
    live = {gid: g for gid, g in (host.groups.items() if host is not None else ())
            if g.members}
    out = [g for g in groups if g.group_id not in live]
    out += [P.ListedGroup(group_id=gid, group_state=g.state.value) for gid, g in live.items()
            if not states or g.state.value in states]
    return out
