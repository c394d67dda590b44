"""Share groups (KIP-932) in the group coordinator actor: the operations that
actors/group_coordinator.py queues on a shard for ShareGroupHeartbeat and DeleteGroups of a
share group, the session tick, metadata and load hooks, and the wire views
(ShareGroupDescribe, ListGroups entries). The decisions are coordinator/share/group.py's;
share groups live in ``CoordinatorState.share`` and their records go to
``__consumer_offsets`` in the shard's batches with the consumer groups'. Docs: docs/queues.md.

Everything here runs on the group coordinator actor's thread (the functions returned are
queue entries ``fn(state) -> Result`` and ``done(result, error)``, as the actor's own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from rillet.coordinator import groups as G
from rillet.coordinator.share import group as SG
from rillet.coordinator.share.config import ShareGroupConfig, group_config
from rillet.coordinator.share.group_model import STATE_DEAD, ShareGroups
from rillet.transport import protocol as P

from .group_wire import tps_out

E = P.ErrorCode
PROTOCOL_TYPE = "share"


def config_of(ctx: Any, image: Any) -> Callable[[str], ShareGroupConfig]:
    """group id -> its effective share-group config under the metadata ``image``."""
    return lambda gid: group_config(image, gid, ctx.broker_configs)


def _wrap(state: G.CoordinatorState, r: SG.ShareResult) -> G.Result:
    return G.Result(replace(state, share=r.state), r.records, r.response)


def heartbeat_op(req: P.ShareGroupHeartbeatRequest, topics: Mapping[str, int],
                 clock: Callable[[], int], config: ShareGroupConfig,
                 respond: Callable[[object], None]) -> tuple[Callable, Callable]:
    core = SG.ShareHeartbeat(
        group_id=req.group_id, member_id=req.member_id, member_epoch=req.member_epoch,
        rack_id=req.rack_id, subscribed_topic_names=req.subscribed_topic_names,
        client_id=req.client_id, client_host=req.client_host)

    def fn(state: G.CoordinatorState) -> G.Result:
        return _wrap(state, SG.heartbeat(state.share, core, topics, clock(), config,
                                         consumer_groups=state.groups))

    def done(result: G.Result | None, error: tuple[int, str] | None) -> None:
        if error is not None:
            respond(P.ShareGroupHeartbeatResponse(error_code=int(error[0]),
                                                  error_message=error[1]))
            return
        a = result.response
        respond(P.ShareGroupHeartbeatResponse(
            member_id=a.member_id, member_epoch=a.member_epoch,
            heartbeat_interval_ms=a.heartbeat_interval_ms,
            assignment=None if a.assignment is None else tps_out(a.assignment)))

    return fn, done


def delete_fn(group_id: str) -> Callable[[G.CoordinatorState], G.Result]:
    return lambda state: _wrap(state, SG.delete_group(state.share, group_id))


def tick_fn(clock: Callable[[], int]) -> Callable[[G.CoordinatorState], G.Result]:
    def fn(state: G.CoordinatorState) -> G.Result:
        return _wrap(state, SG.tick(state.share, clock()))

    fn.is_share_tick = True  # type: ignore[attr-defined]
    return fn


def metadata_fn(topics: Mapping[str, int]) -> Callable[[G.CoordinatorState], G.Result]:
    return lambda state: _wrap(state, SG.on_metadata(state.share, topics))


def tick_due(state: G.CoordinatorState, queue: Iterable, now: int) -> bool:
    """A share session expired and no share tick is queued yet."""
    deadline = state.share.next_deadline_ms()
    return deadline is not None and deadline <= now and not any(
        getattr(fn, "is_share_tick", False) for fn, _ in queue)


def loaded(state: G.CoordinatorState, now: int,
           config: Callable[[str], ShareGroupConfig]) -> G.CoordinatorState:
    return replace(state, share=SG.on_loaded(state.share, now, config))


def is_share_group(state: G.CoordinatorState, group_id: str) -> bool:
    return group_id in state.share.groups


def describe(share: ShareGroups, group_id: str) -> P.DescribedGroup:
    group = share.groups.get(group_id)
    if group is None:
        return P.DescribedGroup(group_id=group_id, error_code=E.GROUP_ID_NOT_FOUND,
                                error_message=f"share group {group_id!r} does not exist",
                                group_state=STATE_DEAD)
    return P.DescribedGroup(
        group_id=group_id, group_state=group.state, group_epoch=group.group_epoch,
        assignment_epoch=group.assignment_epoch, assignor_name="simple",
        members=tuple(
            P.DescribedGroupMember(
                member_id=m.member_id, rack_id=m.rack_id, member_epoch=m.member_epoch,
                member_state="stable", client_id=m.client_id, client_host=m.client_host,
                subscribed_topic_names=m.subscribed_topic_names,
                assignment=tps_out(group.assignment.get(m.member_id, ())))
            for m in sorted(group.members.values(), key=lambda m: m.member_id)))


def inconsistent(group_id: str, kind: str) -> P.DescribedGroup:
    return P.DescribedGroup(group_id=group_id, error_code=E.INCONSISTENT_GROUP_PROTOCOL,
                            error_message=f"{group_id!r} is a {kind} group")


def listed(share: ShareGroups, states: frozenset[str]) -> list[P.ListedGroup]:
    """ListGroups entries of the shard's share groups (``states`` empty: all)."""
    return [P.ListedGroup(group_id=gid, group_state=g.state, protocol_type=PROTOCOL_TYPE)
            for gid, g in share.groups.items() if not states or g.state in states]
