"""Sample share-group messages (KIP-932) for the codec round-trip tests."""

from rillet.transport import protocol as P

_TP = (P.GroupTopicPartitions(topic="orders", partitions=(0, 1)),)
_ACKS = (
    P.AcknowledgementBatch(first_offset=10, last_offset=12, acknowledge_types=(P.ACK_ACCEPT,)),
    P.AcknowledgementBatch(first_offset=13, last_offset=14,
                           acknowledge_types=(P.ACK_RELEASE, P.ACK_REJECT), delay_ms=250,
                           reason="HTTP 503"),
)
_STATE = (
    P.ShareStateBatch(first_offset=5, last_offset=9, delivery_state=P.RECORD_AVAILABLE,
                      delivery_count=2, available_at_ms=1_700_000_000_000),
    P.ShareStateBatch(first_offset=10, last_offset=10,
                      delivery_state=P.RECORD_DEAD_LETTER_PENDING, delivery_count=5,
                      reason="too many attempts"),
)

SHARE_SAMPLES = [
    P.ShareGroupHeartbeatRequest(group_id="crawlers", member_id="m1", member_epoch=0,
                                 subscribed_topic_names=("orders",), client_id="c"),
    P.ShareGroupHeartbeatResponse(member_id="m1", member_epoch=3, heartbeat_interval_ms=5000,
                                  assignment=_TP),
    P.ShareGroupDescribeRequest(group_ids=("crawlers",)),
    P.ShareGroupDescribeResponse(groups=(P.DescribedGroup(group_id="crawlers",
                                                          group_state="Stable"),)),
    P.ShareFetchRequest(group_id="crawlers", member_id="m1", max_records=100, topics=(
        P.ShareFetchTopic(name="orders", partitions=(
            P.ShareFetchPartition(partition=0, acknowledgement_batches=_ACKS),)),)),
    P.ShareFetchResponse(acquisition_lock_timeout_ms=30000, topics=(
        P.ShareFetchTopicResponse(name="orders", partitions=(
            P.ShareFetchPartitionResponse(partition=0, records=b"\x00\x01", leader_id=1,
                                          leader_epoch=2, acquired_records=(
                                              P.AcquiredRecords(first_offset=0, last_offset=9,
                                                                delivery_count=1),)),)),)),
    P.ShareAcknowledgeRequest(group_id="crawlers", member_id="m1", topics=(
        P.ShareAcknowledgeTopic(name="orders", partitions=(
            P.ShareFetchPartition(partition=1, acknowledgement_batches=_ACKS),)),)),
    P.ShareAcknowledgeResponse(results=(P.TopicPartitionErrors(name="orders", partitions=(
        P.PartitionError(partition=1, error_code=P.ErrorCode.INVALID_RECORD_STATE),)),)),
    P.DescribeShareGroupOffsetsRequest(group_id="crawlers", topics=_TP),
    P.DescribeShareGroupOffsetsResponse(partitions=(
        P.DescribedSharePartition(topic="orders", partition=0, start_offset=5, end_offset=20,
                                  high_watermark=30, lag=25, available=3, acquired=10,
                                  delivery_counts=(P.DeliveryCount(delivery_count=1,
                                                                   records=13),)),)),
    P.AlterShareGroupOffsetsRequest(group_id="crawlers", topics=(
        P.ShareOffsetTopic(name="orders", partitions=(P.ShareOffset(partition=0,
                                                                    start_offset=-2),)),)),
    P.AlterShareGroupOffsetsResponse(),
    P.DeleteShareGroupOffsetsRequest(group_id="crawlers", topics=_TP),
    P.DeleteShareGroupOffsetsResponse(),
    P.ReadShareGroupStateRequest(group_id="crawlers", topic="orders", partition=0,
                                 leader_epoch=4),
    P.ReadShareGroupStateResponse(state_epoch=1, leader_epoch=4, start_offset=5,
                                  state_batches=_STATE),
    P.WriteShareGroupStateRequest(group_id="crawlers", topic="orders", partition=0,
                                  state_epoch=1, leader_epoch=4, start_offset=5,
                                  state_batches=_STATE),
    P.WriteShareGroupStateResponse(state_epoch=1),
]
