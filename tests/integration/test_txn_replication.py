"""Three real brokers: followers build the same transaction state as the leader
(docs/transactions.md, "Partition wiring"): after transactions are written, aborted,
committed and left open on a partition with three replicas, every follower's ``.txnindex``
files and producer-state snapshot are byte-identical to the leader's.

The brokers run ``tests/integration/txn_trusting_broker.py`` (the real broker with a verifier
that accepts every transactional produce): the transaction coordinator is another part of
issue #14. Markers are written as a coordinator would, with WriteTxnMarkers on the leader's
inter-broker listener."""

from __future__ import annotations

import subprocess
import time

import pytest
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.security import load_keyfile

from rillet import launcher
from tests.support import FAST_CLUSTER_CONFIGS, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
E = P.ErrorCode


def batch(values, pid: int = -1, seq: int = -1, transactional: bool = False) -> bytes:
    b = BatchBuilder(
        producer_id=pid,
        producer_epoch=0 if pid >= 0 else -1,
        base_sequence=seq,
        is_transactional=transactional,
    )
    for v in values:
        b.append(int(time.time() * 1000), None, v)
    return b.build()


@pytest.fixture
def trusting_brokers(monkeypatch):
    """LocalCluster launches txn_trusting_broker instead of rillet.actors.node."""
    real = subprocess.Popen

    def popen(cmd, *args, **kwargs):
        if "rillet.actors.node" in cmd:
            # without the launcher's -P: this module is found from the working directory
            cmd = [
                c if c != "rillet.actors.node" else "tests.integration.txn_trusting_broker"
                for c in cmd if c != "-P"
            ]
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(launcher.subprocess, "Popen", popen)


def test_followers_have_the_leaders_txnindex_and_producer_state(
    trusting_brokers, cluster_factory, wire_factory
) -> None:
    cluster = cluster_factory(3, FAST_CLUSTER_CONFIGS)
    wire = wire_factory(cluster)
    assert wire.create_topic("tx", rf=3, configs={"min.insync.replicas": "3"}).error_code == E.NONE

    def info():
        meta = wire.call(P.MetadataRequest(topics=("tx",)))
        parts = meta.topics[0].partitions
        return parts[0] if parts and parts[0].leader > 0 and len(parts[0].isr) == 3 else None

    leader = wait_until(info, 30, "a leader and a full ISR").leader
    lead = wire_factory(cluster, leader)

    def produce(records, tid=None):
        part = P.ProducePartition(partition=0, records=records)
        request = P.ProduceRequest(
            acks=-1,
            transactional_id=tid,
            topics=(P.ProduceTopic(name="tx", partitions=(part,)),),
        )
        # the leader's own replica may take its leadership a moment after the metadata
        # said so: NOT_LEADER_OR_FOLLOWER appended nothing, and a client retries it
        answer = wait_until(
            lambda: (a := lead.call(request).topics[0].partitions[0]).error_code
            != E.NOT_LEADER_OR_FOLLOWER and a, 30, "the leader taking the produce")
        assert answer.error_code == E.NONE, answer
        return answer.base_offset

    with ClientEndpoint(curve=load_keyfile(cluster.keyfile)) as broker:

        def marker(pid: int, committed: bool) -> None:
            request = P.WriteTxnMarkersRequest(
                markers=(
                    P.WritableTxnMarker(
                        producer_id=pid,
                        producer_epoch=1,  # the coordinator bumps at the end (KIP-890 p2)
                        transaction_result=committed,
                        topics=(P.TxnTopic(name="tx", partitions=(0,)),),
                        coordinator_epoch=3,
                    ),
                )
            )
            answer = broker.request(cluster.internal_address(leader), request, 15_000).result(20)
            assert answer.markers[0].topics[0].partitions[0].error_code == E.NONE, answer

        produce(batch([b"a1", b"a2"], 100, 0, True), "app-a")
        produce(batch([b"p"]))
        produce(batch([b"c1"], 200, 0, True), "app-c")
        produce(batch([b"a3"], 100, 2, True), "app-a")
        marker(100, committed=False)
        marker(200, committed=True)
        produce(batch([b"o1"], 300, 0, True), "app-o")  # left open
        produce(batch([b"a4"], 400, 0, True), "app-b")
        marker(400, committed=False)
        last = produce(batch([b"end"], 500, 0))  # idempotent, acks=all: every ISR member has it

    committed = P.FetchRequest(
        max_wait_ms=0,
        isolation_level=P.READ_COMMITTED,
        topics=(
            P.FetchTopic(name="tx", partitions=(P.FetchPartition(partition=0, fetch_offset=0),)),
        ),
    )
    response = lead.call(committed).topics[0].partitions[0]
    assert response.high_watermark == last + 1
    assert [(a.producer_id, a.first_offset) for a in response.aborted_transactions] == [(100, 0)]
    cluster.stop(timeout_s=20)  # clean: every replica writes its index and a snapshot

    def files(broker_id: int, pattern: str) -> dict[str, bytes]:
        directory = cluster.broker_dir(broker_id) / "tx-0"
        return {f.name: f.read_bytes() for f in sorted(directory.glob(pattern))}

    index = files(leader, "*.txnindex")
    assert index and any(index.values()), "the leader indexed its aborts"
    newest = max(files(leader, "*.snapshot"))
    for follower in (b for b in (1, 2, 3) if b != leader):
        assert files(follower, "*.txnindex") == index, follower
        assert files(follower, "*.snapshot")[newest] == files(leader, "*.snapshot")[newest]
