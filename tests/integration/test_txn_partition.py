"""The partition side of transactions on a real broker process over the wire
(docs/transactions.md, "Partition wiring"): a transactional produce nobody verifies appends
nothing, WriteTxnMarkers is an inter-broker API, a marker for a producer that never wrote
indexes nothing, read_committed fetches carry the LSO and the aborted list."""

from __future__ import annotations

import time

import pytest
from rillet.logstore.batch import BatchBuilder, iter_batches
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import ProtocolError
from rillet.transport.security import load_keyfile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
E = P.ErrorCode


@pytest.fixture
def cluster(shared_cluster):
    """One broker for the tests that take ``cluster``: each uses topics of its own."""
    return shared_cluster


def txn_batch(pid: int, seq: int, values) -> bytes:
    b = BatchBuilder(producer_id=pid, producer_epoch=0, base_sequence=seq, is_transactional=True)
    for v in values:
        b.append(int(time.time() * 1000), None, v)
    return b.build()


def plain_batch(values) -> bytes:
    b = BatchBuilder()
    for v in values:
        b.append(int(time.time() * 1000), None, v)
    return b.build()


def produce_txn(wire, topic: str, records: bytes, tid: str = "app-1"):
    part = P.ProducePartition(partition=0, records=records)
    request = P.ProduceRequest(
        acks=-1,
        transactional_id=tid,
        topics=(P.ProduceTopic(name=topic, partitions=(part,)),),
    )
    return wire.call(request).topics[0].partitions[0]


def fetch_committed(wire, topic: str, offset: int = 0):
    part = P.FetchPartition(partition=0, fetch_offset=offset)
    request = P.FetchRequest(
        max_wait_ms=0,
        isolation_level=P.READ_COMMITTED,
        topics=(P.FetchTopic(name=topic, partitions=(part,)),),
    )
    return wire.call(request).topics[0].partitions[0]


def list_latest(wire, topic: str, isolation: int) -> int:
    part = P.ListOffsetsPartition(partition=0, timestamp=P.LATEST_TIMESTAMP)
    request = P.ListOffsetsRequest(
        isolation_level=isolation, topics=(P.ListOffsetsTopic(name=topic, partitions=(part,)),)
    )
    return wire.call(request).topics[0].partitions[0].offset


def markers(pid: int, topic: str, committed: bool, partitions=(0,)) -> P.WriteTxnMarkersRequest:
    return P.WriteTxnMarkersRequest(
        markers=(
            P.WritableTxnMarker(
                producer_id=pid,
                producer_epoch=0,
                transaction_result=committed,
                topics=(P.TxnTopic(name=topic, partitions=tuple(partitions)),),
                coordinator_epoch=0,
            ),
        )
    )


def test_an_unverified_transactional_produce_appends_nothing(cluster_factory, wire_factory) -> None:
    # a broker of its own: this test needs one without a __transaction_state topic at first
    wire = wire_factory(cluster_factory())
    assert wire.create_topic("tx").error_code == E.NONE
    answer = produce_txn(wire, "tx", txn_batch(4000, 0, [b"a", b"b"]))
    # no transaction coordinator verifies it: nothing may open a transaction here
    assert answer.error_code in (E.COORDINATOR_NOT_AVAILABLE, E.INVALID_TXN_STATE), answer
    assert list_latest(wire, "tx", P.READ_UNCOMMITTED) == 0

    # with a __transaction_state topic the leader asks its leader over the wire
    # (AddPartitionsToTxn verify_only); it does not know the transaction either
    assert wire.create_topic("__transaction_state").error_code == E.NONE
    answer = produce_txn(wire, "tx", txn_batch(4000, 0, [b"a"]))
    assert answer.error_code in (E.COORDINATOR_NOT_AVAILABLE, E.INVALID_TXN_STATE), answer
    assert list_latest(wire, "tx", P.READ_UNCOMMITTED) == 0

    # non-transactional produces are not asked anything
    assert wire.produce("tx", 0, plain_batch([b"p"])).error_code == E.NONE
    assert list_latest(wire, "tx", P.READ_UNCOMMITTED) == 1


def test_write_txn_markers_is_inter_broker_only(cluster, wire) -> None:
    assert wire.create_topic("tx-markers").error_code == E.NONE
    with pytest.raises(ProtocolError) as refused:
        wire.call(markers(4001, "tx-markers", committed=False))
    assert refused.value.code == E.CLUSTER_AUTHORIZATION_FAILED
    assert list_latest(wire, "tx-markers", P.READ_UNCOMMITTED) == 0  # nothing written

    broker = ClientEndpoint(curve=load_keyfile(cluster.keyfile))  # the cluster's key pair
    try:
        address = cluster.internal_address(1)
        answer = broker.request(address, markers(4001, "tx-markers", False), 10_000).result(15)
        ((result,),) = [m.topics for m in answer.markers]
        assert answer.markers[0].producer_id == 4001
        assert (result.name, [(p.partition, p.error_code) for p in result.partitions]) == (
            "tx-markers",
            [(0, E.NONE)],
        )
        gone = broker.request(address, markers(4001, "nope", True, (0, 3)), 10_000).result(15)
        assert [p.error_code for p in gone.markers[0].topics[0].partitions] == [
            E.UNKNOWN_TOPIC_OR_PARTITION
        ] * 2
    finally:
        broker.close()
    # the marker of a producer that never wrote here completes and indexes nothing
    response = fetch_committed(wire, "tx-markers")
    assert response.error_code == E.NONE
    assert response.last_stable_offset == response.high_watermark == 1
    assert response.aborted_transactions == ()
    headers = [h for h, _ in iter_batches(response.records)]
    assert [(h.is_control, h.producer_id) for h in headers] == [(True, 4001)]


def test_read_committed_without_transactions_reads_up_to_the_high_watermark(cluster, wire) -> None:
    assert wire.create_topic("tx-plain").error_code == E.NONE
    assert wire.produce("tx-plain", 0, plain_batch([b"a", b"b", b"c"])).error_code == E.NONE
    response = fetch_committed(wire, "tx-plain")
    assert response.last_stable_offset == response.high_watermark == 3
    assert response.aborted_transactions == ()
    assert len(list(iter_batches(response.records))) == 1
    plain = wire.fetch("tx-plain", 0, 0)
    assert plain.last_stable_offset == 3 and plain.aborted_transactions is None
    assert list_latest(wire, "tx-plain", P.READ_COMMITTED) == 3


def test_an_unknown_isolation_level_is_refused(cluster, wire) -> None:
    assert wire.create_topic("tx-isolation").error_code == E.NONE
    part = P.FetchPartition(partition=0, fetch_offset=0)
    request = P.FetchRequest(
        max_wait_ms=0,
        isolation_level=2,
        topics=(P.FetchTopic(name="tx-isolation", partitions=(part,)),),
    )
    with pytest.raises(ProtocolError) as refused:
        wire.call(request)
    assert refused.value.code == E.INVALID_REQUEST
    assert wire.fetch("tx-isolation", 0, 0).error_code == E.NONE  # the session carries on
