"""Which requests only brokers may send (served on the inter-broker listener only)."""

from __future__ import annotations

import pytest
from rillet.transport import protocol as P

FETCH_TOPICS = (
    P.FetchTopic(name="t", partitions=(P.FetchPartition(partition=0, fetch_offset=0),)),
)


@pytest.mark.parametrize(
    "request_, inter_broker",
    [
        (P.RaftRequest(message=b""), True),
        (P.BrokerHeartbeatRequest(broker_id=1, host="h", port=1), True),
        (P.MetadataFetchRequest(start_index=1), True),
        (
            P.AlterPartitionRequest(
                broker_id=1, topic="t", partition=0, leader_epoch=0, partition_epoch=0, new_isr=(1,)
            ),
            True,
        ),
        (P.FetchRequest(replica_id=2, topics=FETCH_TOPICS), True),
        (P.FetchRequest(replica_id=0, topics=FETCH_TOPICS), True),
        (P.FetchRequest(topics=FETCH_TOPICS), False),  # a consumer
        (P.FetchRequest(replica_id=-7, topics=FETCH_TOPICS), False),  # read as a consumer
        (P.ListOffsetsRequest(replica_id=3, topics=()), True),
        (P.ListOffsetsRequest(topics=()), False),
        (P.OffsetForLeaderEpochRequest(replica_id=3, topics=()), True),
        (P.OffsetForLeaderEpochRequest(topics=()), False),
        (P.MetadataRequest(), False),
        (P.ApiVersionsRequest(), False),
        (P.CreateTopicsRequest(topics=()), False),  # forwarded by brokers, but a client API first
        (P.ElectLeadersRequest(), False),
        (P.InitProducerIdRequest(), False),
    ],
)
def test_is_inter_broker(request_, inter_broker) -> None:
    assert P.is_inter_broker(request_) is inter_broker
