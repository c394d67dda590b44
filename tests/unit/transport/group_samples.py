"""Sample consumer-group messages for the codec round-trip tests (tests/unit/transport)."""

from rillet.transport import protocol as P

_TPS = (P.GroupTopicPartitions(topic="t", partitions=(0, 2)),)

GROUP_SAMPLES = [
    P.FindCoordinatorRequest(key="g"),
    P.FindCoordinatorResponse(node_id=1, host="127.0.0.1", port=9092),
    P.ConsumerGroupHeartbeatRequest(
        group_id="g", member_id="m", member_epoch=0, rebalance_timeout_ms=1000,
        subscribed_topic_names=("t",), owned_partitions=(), instance_id="i",
    ),
    P.ConsumerGroupHeartbeatResponse(member_id="m", member_epoch=3, assignment=_TPS),
    P.OffsetCommitRequest(
        group_id="g", member_id="m", member_epoch=3,
        topics=(P.OffsetCommitTopic(name="t", partitions=(
            P.OffsetCommitPartition(partition=0, committed_offset=5, committed_metadata="x"),)),),
    ),
    P.OffsetCommitResponse(topics=(P.TopicPartitionErrors(
        name="t", partitions=(P.PartitionError(partition=0, error_code=25),)),)),
    P.OffsetFetchRequest(group_id="g", topics=_TPS),
    P.OffsetFetchResponse(topics=(P.OffsetFetchTopic(
        name="t", partitions=(P.OffsetFetchPartition(partition=0, committed_offset=7),)),)),
    P.OffsetDeleteRequest(group_id="g", topics=_TPS),
    P.OffsetDeleteResponse(error_code=16, error_message="moved"),
    P.ListGroupsRequest(states_filter=("Stable",)),
    P.ListGroupsResponse(groups=(P.ListedGroup(group_id="g", group_state="Stable"),)),
    P.ConsumerGroupDescribeRequest(group_ids=("g",)),
    P.ConsumerGroupDescribeResponse(groups=(P.DescribedGroup(
        group_id="g", group_state="Stable", members=(P.DescribedGroupMember(
            member_id="m", assignment=_TPS, subscribed_topic_regex="t.*"),)),)),
    P.DeleteGroupsRequest(groups_names=("g",)),
    P.DeleteGroupsResponse(results=(P.DeletableGroupResult(group_id="g", error_code=68),)),
]
