"""ShareGroupHeartbeat (key 76, v1), ShareGroupDescribe (key 77, v1) and
ConsumerGroupDescribe (key 69, v0-v1) on the KAFKA listener: Kafka clients join rillet's
native share groups (coordinator/share/group.py, the groups rillet's ``ShareConsumer``
joins) and describe share groups and KIP-848 consumer groups.

Each request becomes the native one and goes to the group coordinator actor through
actors/kafka_groups.py ``ask`` (ACLs: READ on the GROUP and DESCRIBE on the subscribed
topics for a heartbeat, DESCRIBE on each GROUP for the describes). Kafka names partitions by
topic id, rillet by name: assignments are turned into ids through the metadata image (a
topic the image no longer has is left out, as a deleted topic's partitions are).

The member id of a share group member is the client's (KIP-1082: the client makes a UUID and
keeps it for its lifetime), as in rillet's native protocol.

ConsumerGroupDescribe answers GROUP_ID_NOT_FOUND for an id that is not a KIP-848 consumer
group (unknown, a classic group, a share group), as Kafka's broker does; librdkafka's
``describe_consumer_groups`` then falls back to DescribeGroups for it.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from rillet.transport import protocol as P

from .kafka_consumer_groups import heartbeat_reply
from .kafka_dispatch import Call, api
from .kafka_groups import ask, code, reply, schema
from .kafka_metadata import build, topic_uuid

CONSUMER_GROUP_DESCRIBE, SHARE_GROUP_HEARTBEAT, SHARE_GROUP_DESCRIBE = 69, 76, 77
_NO_OPERATIONS = -(2**31)  # authorized_operations not computed
MEMBER_TYPE_CONSUMER = 1  # ConsumerGroupDescribe v1: a KIP-848 member


def _topic_partitions(call: Call, cls: type, tps, with_names: bool = False) -> tuple:
    topics = call.broker.image.topics
    out = []
    for tp in tps or ():
        topic = topics.get(tp.topic)
        tid = topic_uuid(topic.topic_id) if topic is not None else None
        if tid is None:
            continue
        fields = {"topic_id": tid, "partitions": tuple(tp.partitions)}
        if with_names:
            fields["topic_name"] = tp.topic
        out.append(build(cls, **fields))
    return tuple(out)


# ------------------------------------------------------------------ ShareGroupHeartbeat


@api(SHARE_GROUP_HEARTBEAT, 1, 1)
def share_group_heartbeat(call: Call):
    req = call.request.body
    cls, mod = schema(call)
    session = call.session
    native = P.ShareGroupHeartbeatRequest(
        group_id=req.group_id, member_id=req.member_id, member_epoch=int(req.member_epoch),
        rack_id=req.rack_id,
        subscribed_topic_names=(None if req.subscribed_topic_names is None
                                else tuple(req.subscribed_topic_names)),
        client_id=call.request.client_id or "",
        client_host=getattr(session, "host", None) or "")

    def convert(a: Any):
        if not isinstance(a, P.ShareGroupHeartbeatResponse):  # CL.Failure, ErrorResponse
            a = P.ShareGroupHeartbeatResponse(
                error_code=getattr(a, "code", getattr(a, "error_code",
                                                      P.ErrorCode.UNKNOWN_SERVER_ERROR)),
                error_message=getattr(a, "message", getattr(a, "error_message", None)))
        assignment = None
        if a.error_code == 0 and a.assignment is not None:
            assignment = build(mod.Assignment, topic_partitions=_topic_partitions(
                call, mod.TopicPartitions, a.assignment))
        return heartbeat_reply(cls, a, assignment)

    ask(call, native, convert)


# ------------------------------------------------- ShareGroupDescribe, ConsumerGroupDescribe


def _described(call: Call, mod: Any, g: P.DescribedGroup, share: bool) -> Any:
    err, message = g.error_code, g.error_message
    if not share and not err and (g.group_state == "Dead" or any(
            m.member_state == "classic" for m in g.members)):
        err = P.ErrorCode.GROUP_ID_NOT_FOUND
        message = f"group {g.group_id!r} is not a consumer group"
    elif err == P.ErrorCode.INCONSISTENT_GROUP_PROTOCOL:  # a group of the other kind
        err = P.ErrorCode.GROUP_ID_NOT_FOUND  # Kafka's answer
    if err:
        return build(mod.DescribedGroup, error_code=code(err), error_message=message,
                     group_id=g.group_id, group_state="Dead" if share else "", group_epoch=-1,
                     assignment_epoch=-1, assignor_name="", members=(),
                     authorized_operations=_NO_OPERATIONS)

    def assignment(tps):
        return build(mod.Assignment, topic_partitions=_topic_partitions(
            call, mod.TopicPartitions, tps, with_names=True))

    members = tuple(build(
        mod.Member, member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id,
        member_epoch=m.member_epoch, client_id=m.client_id, client_host=m.client_host,
        subscribed_topic_names=tuple(m.subscribed_topic_names),
        subscribed_topic_regex=m.subscribed_topic_regex, assignment=assignment(m.assignment),
        target_assignment=assignment(m.target_assignment or m.assignment),
        member_type=MEMBER_TYPE_CONSUMER) for m in g.members)
    return build(mod.DescribedGroup, error_code=ErrorCode.none, group_id=g.group_id,
                 group_state=g.group_state, group_epoch=g.group_epoch,
                 assignment_epoch=g.assignment_epoch, assignor_name=g.assignor_name,
                 members=members, authorized_operations=_NO_OPERATIONS)


def _describe(call: Call, share: bool):
    ids = tuple(call.request.body.group_ids)
    cls, mod = schema(call)
    native = (P.ShareGroupDescribeRequest(group_ids=ids) if share
              else P.ConsumerGroupDescribeRequest(group_ids=ids))

    def convert(a: Any):
        if isinstance(a, P.ShareGroupDescribeResponse | P.ConsumerGroupDescribeResponse):
            groups = a.groups
        else:  # refused (CL.Failure) or failed as a whole
            err = getattr(a, "code", getattr(a, "error_code", P.ErrorCode.UNKNOWN_SERVER_ERROR))
            groups = tuple(P.DescribedGroup(group_id=g, error_code=err,
                                            error_message=getattr(a, "message", None))
                           for g in ids)
        return reply(cls, groups=tuple(_described(call, mod, g, share) for g in groups))

    if not ids:
        return reply(cls, groups=())
    ask(call, native, convert)
    return None


@api(SHARE_GROUP_DESCRIBE, 1, 1)
def share_group_describe(call: Call):
    return _describe(call, share=True)


@api(CONSUMER_GROUP_DESCRIBE, 0, 1)
def consumer_group_describe(call: Call):
    return _describe(call, share=False)

