"""Sample replication messages for the codec round-trip tests (tests/unit/transport)."""

from rillet.transport import protocol as P

REPLICATION_SAMPLES = [
    P.AlterPartitionRequest(
        broker_id=1, topic="t", partition=0, leader_epoch=2, partition_epoch=5, new_isr=(1, 3)
    ),
    P.AlterPartitionResponse(error_code=95, error_message="stale"),
    P.ReplicaDamageRequest(broker_id=2, topic="t", partition=0, offset=450, leader_epoch=3),
    P.ReplicaDamageResponse(error_code=42, error_message="broker 9 is not a replica"),
    P.OffsetForLeaderEpochRequest(
        replica_id=2,
        topics=(
            P.OffsetForLeaderEpochTopic(
                name="t",
                partitions=(
                    P.OffsetForLeaderEpochPartition(
                        partition=0, current_leader_epoch=3, leader_epoch=2
                    ),
                ),
            ),
        ),
    ),
    P.OffsetForLeaderEpochResponse(
        topics=(
            P.OffsetForLeaderEpochTopicResponse(
                name="t", partitions=(P.EpochEndOffset(partition=0, leader_epoch=2, end_offset=9),)
            ),
        )
    ),
    P.ElectLeadersRequest(topics=(P.GroupTopicPartitions(topic="t", partitions=(0, 1)),)),
    P.ElectLeadersResponse(results=(P.ElectLeadersResult(topic="t", partition=0, error_code=84),)),
    P.AlterPartitionReassignmentsRequest(
        partitions=(
            P.ReassignPartition(topic="t", partition=0, replicas=(2, 3)),
            P.ReassignPartition(topic="t", partition=1, replicas=None),
        )
    ),
    P.AlterPartitionReassignmentsResponse(results=(P.ElectLeadersResult(topic="t", partition=0),)),
    P.InitProducerIdRequest(),
    P.InitProducerIdResponse(producer_id=1000, producer_epoch=0),
]
