"""Kafka's classic group APIs on the KAFKA listener (docs/kafka-compat.md): FindCoordinator,
JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups, DescribeGroups, DeleteGroups.

Each handler turns kio's request into a message of the group coordinator actor
(actors/group_classic.py for the classic protocol; the native DeleteGroups for deletion),
``tell``s it and returns None; the actor's answer (from its thread, possibly much later: a
JoinGroup is parked until the rebalance completes) is turned into kio's response for the
request's version and sent with ``call.respond``. One handler serves every version: fields
a version lacks are dropped by :func:`build`. The offset APIs are in actors/kafka_offsets.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pykka
from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from loguru import logger
from rillet.transport import protocol as P

from . import group_classic as CL
from . import group_coordinator as GC
from .kafka_auth import find_coordinator_denied, gate_group
from .kafka_dispatch import Call, api
from .kafka_metadata import build
from .kafka_schemas import load_response_schema

E = P.ErrorCode
FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 10, 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS = 15, 16, 42
_NO_THROTTLE = i32Timedelta.parse(timedelta(0))
_NO_OPERATIONS = -(2**31)  # authorized_operations not asked for / not computed


def code(value: int) -> ErrorCode:
    """Kafka's error code as kio's enum (an unknown one: UNKNOWN_SERVER_ERROR)."""
    try:
        return ErrorCode(int(value))
    except ValueError:
        return ErrorCode.unknown_server_error


def ms(value: Any) -> int:
    """kio's i32Timedelta (a timedelta) in milliseconds."""
    return int(value / timedelta(milliseconds=1))


def schema(call: Call) -> tuple[type, Any]:
    """The response class of this request's version and its module (for nested classes)."""
    cls = load_response_schema(call.request.api_key, call.request.api_version)
    return cls, sys.modules[cls.__module__]


def reply(cls: type, **values: Any) -> Any:
    return build(cls, throttle_time=_NO_THROTTLE, **values)


def ask(call: Call, message: Any, convert: Callable[[Any], Any],
        send: Callable[[Any], None] | None = None) -> None:
    """Tell the group coordinator actor ``message``; its answer (any thread) goes to the
    client as ``convert(answer)`` (or to ``send``, which then answers the client). No actor:
    COORDINATOR_NOT_AVAILABLE."""
    send = send or call.respond

    def respond(answer: Any) -> None:
        try:
            response = convert(answer)
        except Exception:  # noqa: BLE001 - a bug here must not leave the client waiting
            logger.exception("kafka api {}: could not shape the answer", call.request.api_key)
            response = convert(CL.Failure(E.UNKNOWN_SERVER_ERROR, "internal error"))
        send(response)

    message, respond = gate_group(call, message, respond)  # ACLs (actors/kafka_auth.py)
    if message is None:
        return
    ref = getattr(call.broker, "group_coordinator", None)
    if ref is None:
        respond(CL.Failure(E.COORDINATOR_NOT_AVAILABLE, "the group coordinator is starting"))
        return
    try:
        ref.tell(GC.GroupRequest(message, respond))
    except pykka.ActorDeadError:
        respond(CL.Failure(E.COORDINATOR_NOT_AVAILABLE, "the group coordinator stopped"))


# ---------------------------------------------------------------------- FindCoordinator


def _locate(call: Call, key: str, key_type: int) -> tuple[int, int, str, int, str]:
    """(error, node id, host, port, message) of ``key``'s coordinator at its KAFKA address."""
    from . import txn_coordinator as TC

    ctx = call.broker
    refused = find_coordinator_denied(call, key, key_type)  # ACLs (actors/kafka_auth.py)
    if refused is not None:
        return refused[0], -1, "", -1, refused[1]
    if key_type == 0:
        found = GC.find_coordinator(ctx, P.FindCoordinatorRequest(key=key, key_type=0))
    elif key_type == 1:
        found = TC.find_coordinator(ctx, P.FindCoordinatorRequest(key=key, key_type=1))
    else:
        found = P.FindCoordinatorResponse(error_code=E.INVALID_REQUEST,
                                          error_message=f"key type {key_type} not served here")
    if found.error_code:
        return found.error_code, -1, "", -1, found.error_message or ""
    if found.node_id == ctx.broker_id:
        return 0, found.node_id, call.endpoint.host, call.endpoint.port, ""
    broker = ctx.image.brokers.get(found.node_id)
    if broker is None or not broker.kafka_port:
        return E.COORDINATOR_NOT_AVAILABLE, -1, "", -1, "the coordinator has no KAFKA listener"
    return 0, found.node_id, broker.kafka_host, broker.kafka_port, ""


@api(FIND_COORDINATOR, 0, 6)
def find_coordinator(call: Call):
    req, version = call.request.body, call.request.api_version
    cls, mod = schema(call)
    key_type = getattr(req, "key_type", 0)
    if version >= 4:
        coordinators = []
        for key in req.coordinator_keys:
            err, node, host, port, message = _locate(call, key, key_type)
            coordinators.append(build(mod.Coordinator, key=key, node_id=node, host=host,
                                      port=port, error_code=code(err),
                                      error_message=message or None))
        return reply(cls, coordinators=tuple(coordinators))
    err, node, host, port, message = _locate(call, req.key, key_type)
    return reply(cls, error_code=code(err), error_message=message or None, node_id=node,
                 host=host, port=port)


# ---------------------------------------------------------------- JoinGroup, SyncGroup


@api(JOIN_GROUP, 0, 9)
def join_group(call: Call):
    req, version = call.request.body, call.request.api_version
    cls, mod = schema(call)
    session = ms(req.session_timeout)
    rebalance = ms(req.rebalance_timeout) if version >= 1 else session
    message = CL.ClassicJoin(
        group_id=req.group_id, member_id=req.member_id,
        group_instance_id=getattr(req, "group_instance_id", None),
        client_id=call.request.client_id or "", client_host="",
        session_timeout_ms=session, rebalance_timeout_ms=rebalance,
        protocol_type=req.protocol_type,
        protocols=tuple((p.name, bytes(p.metadata)) for p in req.protocols),
        require_known_member_id=version >= 4)

    def convert(a: Any):
        if isinstance(a, CL.Failure):
            return reply(cls, error_code=code(a.code), generation_id=-1, protocol_type=None,
                         protocol_name=None if version >= 7 else "", leader="",
                         member_id=req.member_id, members=())
        members = tuple(build(mod.JoinGroupResponseMember, member_id=mid,
                              group_instance_id=iid, metadata=md) for mid, iid, md in a.members)
        return reply(cls, error_code=code(a.error), generation_id=a.generation_id,
                     protocol_type=a.protocol_type or None,
                     protocol_name=a.protocol_name or (None if version >= 7 else ""),
                     leader=a.leader, skip_assignment=a.skip_assignment,
                     member_id=a.member_id, members=members)

    ask(call, message, convert)


@api(SYNC_GROUP, 0, 5)
def sync_group(call: Call):
    req = call.request.body
    cls, _mod = schema(call)
    message = CL.ClassicSync(
        group_id=req.group_id, member_id=req.member_id,
        group_instance_id=getattr(req, "group_instance_id", None),
        generation_id=int(req.generation_id),
        protocol_type=getattr(req, "protocol_type", None),
        protocol_name=getattr(req, "protocol_name", None),
        assignments=tuple((a.member_id, bytes(a.assignment)) for a in req.assignments))

    def convert(a: Any):
        if isinstance(a, CL.Failure):
            return reply(cls, error_code=code(a.code), protocol_type=None, protocol_name=None,
                         assignment=b"")
        return reply(cls, error_code=code(a.error), protocol_type=a.protocol_type or None,
                     protocol_name=a.protocol_name or None, assignment=a.assignment)

    ask(call, message, convert)


# ------------------------------------------------------------- Heartbeat, LeaveGroup


@api(HEARTBEAT, 0, 4)
def heartbeat(call: Call):
    req = call.request.body
    cls, _mod = schema(call)
    message = CL.ClassicHeartbeat(group_id=req.group_id, member_id=req.member_id,
                                  group_instance_id=getattr(req, "group_instance_id", None),
                                  generation_id=int(req.generation_id))
    ask(call, message, lambda a: reply(
        cls, error_code=code(a.code if isinstance(a, CL.Failure) else 0)))


@api(LEAVE_GROUP, 0, 5)
def leave_group(call: Call):
    req, version = call.request.body, call.request.api_version
    cls, mod = schema(call)
    if version >= 3:
        members = tuple((m.member_id, m.group_instance_id) for m in req.members)
    else:
        members = ((req.member_id, None),)
    message = CL.ClassicLeave(group_id=req.group_id, members=members)

    def convert(a: Any):
        if isinstance(a, CL.Failure):
            return reply(cls, error_code=code(a.code), members=())
        errors = [0 if e is None else e.code for e in a]
        if version < 3:
            return reply(cls, error_code=code(errors[0]))
        return reply(cls, error_code=ErrorCode.none, members=tuple(
            build(mod.MemberResponse, member_id=mid, group_instance_id=iid, error_code=code(e))
            for (mid, iid), e in zip(members, errors, strict=True)))

    ask(call, message, convert)


# ------------------------------------------------ ListGroups, DescribeGroups, DeleteGroups


@api(LIST_GROUPS, 0, 5)
def list_groups(call: Call):
    req = call.request.body
    cls, mod = schema(call)
    states = {s.lower() for s in getattr(req, "states_filter", ())}
    types = {t.lower() for t in getattr(req, "types_filter", ())}

    def convert(a: Any):
        if isinstance(a, CL.Failure):
            return reply(cls, error_code=code(a.code), groups=())
        rows = [r for r in a if (not states or r[2].lower() in states)
                and (not types or r[3] in types)]
        return reply(cls, error_code=ErrorCode.none, groups=tuple(
            build(mod.ListedGroup, group_id=gid, protocol_type=ptype, group_state=state,
                  group_type=kind) for gid, ptype, state, kind in rows))

    ask(call, CL.ClassicList(), convert)


@api(DESCRIBE_GROUPS, 0, 5)
def describe_groups(call: Call):
    req = call.request.body
    cls, mod = schema(call)
    ids = tuple(req.groups)

    def convert(a: Any):
        out = []
        for gid, d in zip(ids, a if isinstance(a, list) else [a] * len(ids), strict=True):
            if isinstance(d, CL.Failure):
                out.append(build(mod.DescribedGroup, error_code=code(d.code), group_id=gid,
                                 group_state="", protocol_type="", protocol_data="",
                                 members=(), authorized_operations=_NO_OPERATIONS))
                continue
            members = tuple(build(
                mod.DescribedGroupMember, member_id=m["member_id"],
                group_instance_id=m["group_instance_id"], client_id=m["client_id"],
                client_host=m["client_host"], member_metadata=m["metadata"],
                member_assignment=m["assignment"]) for m in d["members"])
            out.append(build(mod.DescribedGroup, error_code=ErrorCode.none, group_id=gid,
                             group_state=d["state"], protocol_type=d["protocol_type"],
                             protocol_data=d["protocol"], members=members,
                             authorized_operations=_NO_OPERATIONS))
        return reply(cls, groups=tuple(out))

    ask(call, CL.ClassicDescribe(group_ids=ids), convert)


@api(DELETE_GROUPS, 0, 2)
def delete_groups(call: Call):
    names = tuple(call.request.body.groups_names)
    cls, mod = schema(call)

    def convert(a: Any):
        if isinstance(a, CL.Failure):
            results = [(g, a.code) for g in names]
        else:
            results = [(r.group_id, r.error_code) for r in a.results]
        return reply(cls, results=tuple(build(mod.DeletableGroupResult, group_id=g,
                                              error_code=code(c)) for g, c in results))

    ask(call, P.DeleteGroupsRequest(groups_names=names), convert)
