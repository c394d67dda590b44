"""ConsumerGroupHeartbeat (key 68, KIP-848) on the KAFKA listener: Kafka clients that run
the new consumer protocol (librdkafka's ``group.protocol=consumer``, the Java client's) are
members of rillet's native server-side-assigned groups (actors/group_coordinator.py), the
same groups rillet's own consumers join.

The request becomes the native heartbeat; Kafka names partitions by topic id, rillet by
topic name, so both ways go through the metadata image (a topic id the image does not know
is left out of the member's owned partitions, as a deleted topic's are). v0 lets the
coordinator choose a joining member's id: this handler makes one (a UUID), as Kafka does.
The native coordinator's long poll is not used (``max_wait_ms`` 0): Kafka clients expect an
immediate answer and heartbeat on the interval they are given.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from kio.static.primitive import i32Timedelta
from rillet.transport import protocol as P

from .kafka_dispatch import Call, api
from .kafka_groups import ask, code, ms, reply, schema
from .kafka_metadata import build, topic_uuid

CONSUMER_GROUP_HEARTBEAT = 68


@api(CONSUMER_GROUP_HEARTBEAT, 0, 1)
def consumer_group_heartbeat(call: Call):
    req = call.request.body
    cls, mod = schema(call)
    topics = call.broker.image.topics
    by_id = {topic_uuid(t.topic_id): name for name, t in topics.items()
             if topic_uuid(t.topic_id) is not None}
    owned = None
    if req.topic_partitions is not None:
        owned = tuple(P.GroupTopicPartitions(topic=by_id[tp.topic_id],
                                             partitions=tuple(int(p) for p in tp.partitions))
                      for tp in req.topic_partitions if tp.topic_id in by_id)
    member_id = req.member_id or (str(uuid.uuid4()) if int(req.member_epoch) == 0 else "")
    rebalance = ms(req.rebalance_timeout)
    native = P.ConsumerGroupHeartbeatRequest(
        group_id=req.group_id, member_id=member_id, member_epoch=int(req.member_epoch),
        instance_id=req.instance_id, rack_id=req.rack_id, rebalance_timeout_ms=rebalance,
        subscribed_topic_names=(None if req.subscribed_topic_names is None
                                else tuple(req.subscribed_topic_names)),
        subscribed_topic_regex=getattr(req, "subscribed_topic_regex", None),
        server_assignor=req.server_assignor, owned_partitions=owned,
        client_id=call.request.client_id or "", max_wait_ms=0)

    def convert(a: Any):
        if not isinstance(a, P.ConsumerGroupHeartbeatResponse):
            a = P.ConsumerGroupHeartbeatResponse(
                error_code=getattr(a, "code", P.ErrorCode.UNKNOWN_SERVER_ERROR),
                error_message=getattr(a, "message", None))
        assignment = None
        if a.error_code == 0 and a.assignment is not None:
            assignment = build(mod.Assignment, topic_partitions=tuple(
                build(mod.TopicPartitions, topic_id=topic_uuid(topics[t.topic].topic_id),
                      partitions=tuple(t.partitions))
                for t in a.assignment if t.topic in topics))
        return heartbeat_reply(cls, a, assignment)

    ask(call, native, convert)


def heartbeat_reply(cls, a: Any, assignment: Any):
    """A KIP-848 (or KIP-932 share) group heartbeat's Kafka answer from the native one."""
    return reply(cls, error_code=code(a.error_code), error_message=a.error_message,
                 member_id=a.member_id or None, member_epoch=a.member_epoch,
                 heartbeat_interval=i32Timedelta.parse(
                     timedelta(milliseconds=max(a.heartbeat_interval_ms, 0))),
                 assignment=assignment)
