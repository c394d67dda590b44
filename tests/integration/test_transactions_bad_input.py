"""Bad input around transactions (issue #14) against a real broker: a control batch sent by a
client is refused and appends nothing; EndTxn from a stale epoch is refused; a transaction
that names an unknown topic fails cleanly and leaves no hanging transaction."""

from __future__ import annotations

import time

import pytest
from rillet.logstore.txn_markers import ControlType, EndTxnMarker, build_marker_batch
from rillet.transport import protocol as P

from rillet import Admin, Consumer, Producer, TopicPartition
from rillet.errors import UnknownTopicOrPartitionError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
E = P.ErrorCode


@pytest.fixture
def cluster(shared_cluster):
    """One broker for the whole module: the tests use distinct topics and transactional ids."""
    return shared_cluster


def test_a_control_batch_from_a_client_is_refused(cluster, wire) -> None:
    assert wire.create_topic("t").error_code == 0
    forged = build_marker_batch(
        EndTxnMarker(producer_id=7, producer_epoch=0, control_type=ControlType.COMMIT,
                     coordinator_epoch=0), int(time.time() * 1000))
    r = wire.produce("t", 0, forged)
    assert r.error_code == E.INVALID_RECORD
    assert wire.fetch_all("t", 0) == []


def test_end_txn_from_a_stale_epoch_is_refused(cluster, wire) -> None:
    def coordinator_call(request):
        deadline = time.monotonic() + 20
        while True:
            r = wire.call(request)
            if r.error_code not in (E.COORDINATOR_NOT_AVAILABLE, E.COORDINATOR_LOAD_IN_PROGRESS,
                                    E.NOT_COORDINATOR, E.CONCURRENT_TRANSACTIONS):
                return r
            assert time.monotonic() < deadline, r
            time.sleep(0.05)  # retry backoff, as clients do

    coordinator_call(P.FindCoordinatorRequest(key="stale", key_type=P.COORDINATOR_TRANSACTION))
    first = coordinator_call(P.InitProducerIdRequest(transactional_id="stale"))
    coordinator_call(P.InitProducerIdRequest(transactional_id="stale"))
    third = coordinator_call(P.InitProducerIdRequest(transactional_id="stale"))
    assert third.producer_epoch == first.producer_epoch + 2
    for commit in (True, False):
        r = coordinator_call(P.EndTxnRequest(
            transactional_id="stale", producer_id=first.producer_id,
            producer_epoch=first.producer_epoch, committed=commit))
        assert r.error_code == E.PRODUCER_FENCED, r
    # the current instance is untouched: its (empty) abort is accepted
    r = coordinator_call(P.EndTxnRequest(transactional_id="stale", producer_id=third.producer_id,
                                         producer_epoch=third.producer_epoch, committed=False))
    assert r.error_code == E.NONE, r


def test_a_transaction_naming_an_unknown_topic_fails_cleanly(cluster) -> None:
    bootstrap = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        from rillet import NewTopic

        admin.create_topics([NewTopic("known", 1, 1)])
    with Producer({"bootstrap.servers": bootstrap, "transactional.id": "unknown-topic",
                   "max.block.ms": 2000}) as producer:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("known", b"kept")
        with pytest.raises(UnknownTopicOrPartitionError):
            producer.send("no-such-topic", b"lost")
        producer.commit_transaction()
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        assert admin.list_transactions(states=["Ongoing"]) == []
    tp = TopicPartition("known", 0)
    with Consumer({"bootstrap.servers": bootstrap, "isolation.level": "read_committed",
                   "auto.offset.reset": "earliest"}) as reader:
        reader.assign([tp])
        end = reader.end_offsets([tp])[tp]  # the LSO: not held by a hanging transaction
        got = []
        deadline = time.monotonic() + 10
        while reader.position(tp) < end:
            assert time.monotonic() < deadline
            got.extend(r.value for rs in reader.poll(200).values() for r in rs)
    assert got == [b"kept"]
