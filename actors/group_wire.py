"""Wire messages (transport/protocol.py) <-> the group coordinator core's own types
(coordinator/groups/messages.py), for actors/group_coordinator.py. Pure conversions."""

from __future__ import annotations

from typing import Any

from rillet.coordinator import groups as G
from rillet.transport import protocol as P


def tps_in(items: Any) -> frozenset[G.TopicPartition]:
    return frozenset(G.TopicPartition(t.topic, p) for t in items for p in t.partitions)


def tps_out(tps: Any) -> tuple[P.GroupTopicPartitions, ...]:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(tps):
        by_topic.setdefault(tp[0], []).append(tp[1])
    return tuple(P.GroupTopicPartitions(topic=t, partitions=tuple(ps))
                 for t, ps in by_topic.items())


def heartbeat_request(req: P.ConsumerGroupHeartbeatRequest) -> G.ConsumerGroupHeartbeatRequest:
    return G.ConsumerGroupHeartbeatRequest(
        group_id=req.group_id,
        member_id=req.member_id,
        member_epoch=req.member_epoch,
        instance_id=req.instance_id,
        rack_id=req.rack_id,
        rebalance_timeout_ms=req.rebalance_timeout_ms,
        subscribed_topic_names=req.subscribed_topic_names,
        subscribed_topic_regex=req.subscribed_topic_regex,
        server_assignor=req.server_assignor,
        owned_partitions=None if req.owned_partitions is None else tps_in(req.owned_partitions),
        client_id=req.client_id,
        client_host=req.client_host,
        max_wait_ms=req.max_wait_ms,
    )


def heartbeat_response(r: G.ConsumerGroupHeartbeatResponse) -> P.ConsumerGroupHeartbeatResponse:
    return P.ConsumerGroupHeartbeatResponse(
        member_id=r.member_id,
        member_epoch=r.member_epoch,
        heartbeat_interval_ms=r.heartbeat_interval_ms,
        assignment=None if r.assignment is None else tps_out(r.assignment),
    )


def commit_offsets(topics) -> dict:
    """The offsets of an OffsetCommit / TxnOffsetCommit, for the core."""
    return {
        G.TopicPartition(t.name, p.partition): G.CommitOffset(
            offset=p.committed_offset,
            leader_epoch=p.committed_leader_epoch,
            metadata=p.committed_metadata,
        )
        for t in topics
        for p in t.partitions
    }


def commit_request(req: P.OffsetCommitRequest) -> G.OffsetCommitRequest:
    return G.OffsetCommitRequest(
        group_id=req.group_id,
        member_id=req.member_id,
        member_epoch=req.member_epoch,
        instance_id=req.group_instance_id,
        offsets=commit_offsets(req.topics),
    )


def txn_commit_request(req: P.TxnOffsetCommitRequest) -> G.TxnOffsetCommitRequest:
    return G.TxnOffsetCommitRequest(
        transactional_id=req.transactional_id,
        group_id=req.group_id,
        producer_id=req.producer_id,
        producer_epoch=req.producer_epoch,
        generation_id=req.generation_id,
        member_id=req.member_id,
        instance_id=req.group_instance_id,
        offsets=commit_offsets(req.topics),
    )


def txn_commit_response(r: G.TxnOffsetCommitResponse) -> P.TxnOffsetCommitResponse:
    return P.TxnOffsetCommitResponse(topics=partition_errors(r.errors))


def partition_errors(errors: Any) -> tuple[P.TopicPartitionErrors, ...]:
    by_topic: dict[str, list[P.PartitionError]] = {}
    for tp in sorted(errors):
        by_topic.setdefault(tp[0], []).append(
            P.PartitionError(partition=tp[1], error_code=int(errors[tp])))
    return tuple(P.TopicPartitionErrors(name=t, partitions=tuple(ps))
                 for t, ps in by_topic.items())


def commit_response(r: G.OffsetCommitResponse) -> P.OffsetCommitResponse:
    return P.OffsetCommitResponse(topics=partition_errors(r.errors))


def delete_offsets_response(r: G.OffsetDeleteResponse) -> P.OffsetDeleteResponse:
    return P.OffsetDeleteResponse(topics=partition_errors(r.errors))


def fetch_request(req: P.OffsetFetchRequest) -> G.OffsetFetchRequest:
    return G.OffsetFetchRequest(
        group_id=req.group_id,
        member_id=req.member_id,
        member_epoch=req.member_epoch,
        partitions=None if req.topics is None else tuple(sorted(tps_in(req.topics))),
        require_stable=req.require_stable,
    )


def fetch_response(req: P.OffsetFetchRequest, r: G.OffsetFetchResponse) -> P.OffsetFetchResponse:
    wanted = (sorted(set(r.offsets) | set(r.errors)) if req.topics is None
              else sorted(tps_in(req.topics)))
    by_topic: dict[str, list[P.OffsetFetchPartition]] = {}
    for tp in wanted:
        o = r.offsets.get(tp)
        if o is None:  # nothing committed, or (an error) not answered
            part = P.OffsetFetchPartition(partition=tp[1], error_code=r.errors.get(tp, 0))
        else:
            part = P.OffsetFetchPartition(
                partition=tp[1], committed_offset=o.offset, committed_leader_epoch=o.leader_epoch,
                metadata=o.metadata, commit_timestamp_ms=o.commit_timestamp_ms)
        by_topic.setdefault(tp[0], []).append(part)
    return P.OffsetFetchResponse(topics=tuple(
        P.OffsetFetchTopic(name=t, partitions=tuple(ps)) for t, ps in by_topic.items()))


def described(d: G.GroupDescription) -> P.DescribedGroup:
    return P.DescribedGroup(
        group_id=d.group_id,
        group_state=str(d.state),
        group_epoch=d.group_epoch,
        assignment_epoch=d.assignment_epoch,
        assignor_name=d.assignor,
        members=tuple(
            P.DescribedGroupMember(
                member_id=m.member_id,
                instance_id=m.instance_id,
                rack_id=m.rack_id,
                member_epoch=m.member_epoch,
                member_state=str(m.member_state),
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=tuple(m.subscribed_topic_names),
                subscribed_topic_regex=m.subscribed_topic_regex,
                assignment=tps_out(m.assignment),
                target_assignment=tps_out(m.target_assignment),
                pending_revocation=tps_out(m.pending_revocation),
            )
            for m in d.members
        ),
    )


def error_response(req: Any, code: int, message: str) -> object:
    """The typed reply of ``req`` carrying error ``code`` (whole-request failure)."""
    code = int(code)
    match req:
        case P.ConsumerGroupHeartbeatRequest():
            return P.ConsumerGroupHeartbeatResponse(error_code=code, error_message=message)
        case P.OffsetCommitRequest():
            errors = {(t.name, p.partition): code for t in req.topics for p in t.partitions}
            return P.OffsetCommitResponse(error_code=code, error_message=message,
                                          topics=partition_errors(errors))
        case P.TxnOffsetCommitRequest():
            errors = {(t.name, p.partition): code for t in req.topics for p in t.partitions}
            return P.TxnOffsetCommitResponse(error_code=code, error_message=message,
                                             topics=partition_errors(errors))
        case P.OffsetFetchRequest():
            return P.OffsetFetchResponse(error_code=code, error_message=message)
        case P.OffsetDeleteRequest():
            return P.OffsetDeleteResponse(error_code=code, error_message=message)
        case P.ListGroupsRequest():
            return P.ListGroupsResponse(error_code=code)
        case P.ShareGroupHeartbeatRequest():
            return P.ShareGroupHeartbeatResponse(error_code=code, error_message=message)
        case P.ShareGroupDescribeRequest():
            return P.ShareGroupDescribeResponse(groups=tuple(
                P.DescribedGroup(group_id=g, error_code=code, error_message=message)
                for g in req.group_ids))
        case P.ConsumerGroupDescribeRequest():
            return P.ConsumerGroupDescribeResponse(groups=tuple(
                P.DescribedGroup(group_id=g, error_code=code, error_message=message)
                for g in req.group_ids))
        case P.DeleteGroupsRequest():
            return P.DeleteGroupsResponse(results=tuple(
                P.DeletableGroupResult(group_id=g, error_code=code, error_message=message)
                for g in req.groups_names))
    return P.ErrorResponse(error_code=code, error_message=message)
