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
