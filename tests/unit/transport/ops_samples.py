"""Sample operations messages (DeleteRecords, ...) for the codec round-trip tests."""

from rillet.transport import protocol as P

OPS_SAMPLES = [
    P.DeleteRecordsRequest(
        topics=(
            P.DeleteRecordsTopic(
                name="t",
                partitions=(
                    P.DeleteRecordsPartition(partition=0, offset=120),
                    P.DeleteRecordsPartition(partition=1, offset=-1),
                ),
            ),
        ),
        timeout_ms=5000,
    ),
    P.DeleteRecordsResponse(
        topics=(
            P.DeleteRecordsTopicResponse(
                name="t",
                partitions=(
                    P.DeleteRecordsPartitionResponse(partition=0, low_watermark=120),
                    P.DeleteRecordsPartitionResponse(
                        partition=1, error_code=1, error_message="above the high watermark 7"
                    ),
                ),
            ),
        )
    ),
]

OPS_SAMPLES += [
    P.DescribeLogDirsRequest(),
    P.DescribeLogDirsRequest(topics=("t", "u")),
    P.DescribeLogDirsResponse(
        broker_id=2,
        results=(
            P.DescribeLogDir(
                log_dir="/var/lib/rillet",
                topics=(
                    P.DescribeLogDirsTopic(
                        name="t",
                        partitions=(
                            P.DescribeLogDirsPartition(
                                partition=0, size=4096, log_start_offset=3, log_end_offset=90
                            ),
                        ),
                    ),
                ),
                total_bytes=10**12,
                usable_bytes=10**11,
            ),
        ),
    ),
    P.ListPartitionReassignmentsRequest(),
    P.ListPartitionReassignmentsRequest(
        topics=(P.GroupTopicPartitions(topic="t", partitions=(0, 2)),), timeout_ms=1000
    ),
    P.ListPartitionReassignmentsResponse(
        topics=(
            P.OngoingTopicReassignment(
                name="t",
                partitions=(
                    P.OngoingPartitionReassignment(
                        partition=0, replicas=(1, 2, 3), adding_replicas=(3,),
                        removing_replicas=(1,),
                    ),
                ),
            ),
        )
    ),
    P.ListPartitionReassignmentsResponse(error_code=3, error_message="unknown topic(s): x"),
]
