"""Round-trip samples of the transaction APIs (docs/transactions.md)."""

from rillet.transport import protocol as P

_TOPICS = (P.TxnTopic(name="t", partitions=(0, 2)),)
_ERRORS = (P.TopicPartitionErrors(name="t", partitions=(P.PartitionError(partition=0),)),)

TXN_SAMPLES = [
    P.InitProducerIdRequest(
        transactional_id="app-1", transaction_timeout_ms=60000, producer_id=7, producer_epoch=3
    ),
    P.AddPartitionsToTxnRequest(
        transactional_id="app-1", producer_id=7, producer_epoch=3, topics=_TOPICS
    ),
    P.AddPartitionsToTxnRequest(
        transactional_id="app-1", producer_id=7, producer_epoch=3, topics=_TOPICS, verify_only=True
    ),
    P.AddPartitionsToTxnResponse(error_code=0, results=_ERRORS),
    P.AddOffsetsToTxnRequest(
        transactional_id="app-1", producer_id=7, producer_epoch=3, group_id="g"
    ),
    P.AddOffsetsToTxnResponse(error_code=P.ErrorCode.PRODUCER_FENCED, error_message="newer"),
    P.EndTxnRequest(transactional_id="app-1", producer_id=7, producer_epoch=3, committed=True),
    P.EndTxnResponse(producer_id=7, producer_epoch=4),
    P.TxnOffsetCommitRequest(
        transactional_id="app-1",
        group_id="g",
        producer_id=7,
        producer_epoch=3,
        generation_id=5,
        member_id="m-1",
        topics=(
            P.OffsetCommitTopic(
                name="t", partitions=(P.OffsetCommitPartition(partition=0, committed_offset=42),)
            ),
        ),
    ),
    P.TxnOffsetCommitResponse(topics=_ERRORS),
    P.WriteTxnMarkersRequest(
        markers=(
            P.WritableTxnMarker(
                producer_id=7,
                producer_epoch=4,
                transaction_result=False,
                topics=_TOPICS,
                coordinator_epoch=2,
            ),
        )
    ),
    P.WriteTxnMarkersResponse(markers=(P.WritableTxnMarkerResult(producer_id=7, topics=_ERRORS),)),
    P.FetchResponse(
        topics=(
            P.FetchTopicResponse(
                name="t",
                partitions=(
                    P.FetchPartitionResponse(
                        partition=0,
                        high_watermark=10,
                        last_stable_offset=4,
                        aborted_transactions=(P.AbortedTransaction(producer_id=7, first_offset=2),),
                    ),
                ),
            ),
        )
    ),
    P.OffsetFetchRequest(group_id="g", require_stable=True),
    P.ListTransactionsRequest(state_filters=("Ongoing",), duration_filter_ms=60000),
    P.ListTransactionsResponse(
        transaction_states=(
            P.ListedTransaction(
                transactional_id="app-1", producer_id=7, transaction_state="Ongoing"
            ),
        )
    ),
    P.DescribeTransactionsRequest(transactional_ids=("app-1",)),
    P.DescribeTransactionsResponse(
        transaction_states=(
            P.DescribedTransaction(
                transactional_id="app-1",
                transaction_state="Ongoing",
                transaction_timeout_ms=60000,
                transaction_start_time_ms=1700000000000,
                producer_id=7,
                producer_epoch=3,
                topics=_TOPICS,
            ),
        )
    ),
]
