"""Forged inter-broker requests against a real three-broker cluster (issue #11).

An attacker here is a raw ZeroMQ client (a bare ClientEndpoint, no rillet client code) that
speaks the wire protocol. On today's main one Raft VoteRequest with term 2**63-1 sent to a
client port ended the controller quorum for good. Now inter-broker APIs are served only on
the inter-broker listener, which admits only holders of the cluster's CURVE key pair; on the
client listener they are refused (CLUSTER_AUTHORIZATION_FAILED) and counted.
"""

from __future__ import annotations

import re
import time

import cbor2
import pytest
from cluster_helpers import wait_until
from rillet.logstore.batch import BatchBuilder, records
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import ProtocolError, TransportError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
E = P.ErrorCode
ELECTION_MS = 300  # conftest.FAST_CLUSTER_CONFIGS
MAX_INT64 = (1 << 63) - 1


def call(endpoint: ClientEndpoint, address: str, request, timeout_ms: int = 5000):
    return endpoint.request(address, request, timeout_ms).result(timeout_ms / 1000 + 5)


def metadata(cluster, broker_id: int, topics=None):
    with ClientEndpoint() as endpoint:
        try:
            return call(
                endpoint, cluster.address(broker_id), P.MetadataRequest(topics=topics), 1000
            )
        except (TransportError, TimeoutError):
            return None


def agreed_controller(cluster) -> int | None:
    seen = set()
    for b in cluster.broker_ids:
        meta = metadata(cluster, b, ())
        if meta is None:
            return None
        seen.add(meta.controller_id)
    return seen.pop() if len(seen) == 1 and -1 not in seen else None


def vote(src: int, dst: int, term: int, pre_vote: bool = False) -> P.RaftRequest:
    """A Raft VoteRequest as the wire carries it, claiming a log nobody can beat."""
    body = {
        "type": "VoteRequest",
        "src": src,
        "dst": dst,
        "term": term,
        "last_log_index": MAX_INT64,
        "last_log_term": term,
        "pre_vote": pre_vote,
    }
    return P.RaftRequest(message=cbor2.dumps(body))


def batch(values: list[bytes]) -> bytes:
    b = BatchBuilder()
    for v in values:
        b.append(int(time.time() * 1000), None, v)
    return b.build()


def topic_layout(cluster, broker_id: int, name: str):
    meta = metadata(cluster, broker_id, (name,))
    if meta is None or not meta.topics or meta.topics[0].error_code:
        return None
    part = meta.topics[0].partitions[0]
    return part if part.leader >= 0 and len(part.isr) == 3 else None


def setup_topic(cluster, name: str, values: list[bytes]) -> P.PartitionMetadata:
    with ClientEndpoint() as ep:
        topic = P.CreatableTopic(name=name, num_partitions=1, replication_factor=3)
        created = call(ep, cluster.address(1), P.CreateTopicsRequest(topics=(topic,)), 15000)
        assert created.topics[0].error_code == 0, created
    part = wait_until(lambda: topic_layout(cluster, 1, name), 15, f"{name} with a full ISR")
    produce_and_read(cluster, name, values)
    return part


def produce_and_read(cluster, name: str, values: list[bytes]) -> None:
    """acks=all produce to the leader, then read everything back up to the HW."""

    def attempt():
        part = topic_layout(cluster, 1, name)
        if part is None:
            return False
        leader = cluster.address(part.leader)
        with ClientEndpoint() as ep:
            produce = P.ProduceRequest(
                acks=-1,
                timeout_ms=5000,
                topics=(
                    P.ProduceTopic(
                        name=name,
                        partitions=(P.ProducePartition(partition=0, records=batch(values)),),
                    ),
                ),
            )
            try:
                r = call(ep, leader, produce).topics[0].partitions[0]
            except (TransportError, TimeoutError):
                return False
            if r.error_code:
                return False
            got: list[bytes] = []
            offset = 0
            while True:
                fetch = P.FetchRequest(
                    max_wait_ms=0,
                    min_bytes=1,
                    topics=(
                        P.FetchTopic(
                            name=name,
                            partitions=(
                                P.FetchPartition(
                                    partition=0, fetch_offset=offset, partition_max_bytes=1 << 20
                                ),
                            ),
                        ),
                    ),
                )
                fp = call(ep, leader, fetch).topics[0].partitions[0]
                assert fp.error_code == 0, fp
                batch_records = [x for x in records(fp.records) if x.offset >= offset]
                if not batch_records:
                    break
                got.extend(x.value for x in batch_records)
                offset = batch_records[-1].offset + 1
            return got[-len(values) :] == values

    wait_until(attempt, 20, f"a produce/consume round trip on {name}")


def refused_count(error: ProtocolError) -> int:
    m = re.search(r"\((\d+) refused", error.message)
    assert m, error.message
    return int(m.group(1))


def expect_refused(futures) -> list[ProtocolError]:
    errors = []
    for f in futures:
        with pytest.raises(ProtocolError) as info:
            f.result(15)
        assert info.value.code == E.CLUSTER_AUTHORIZATION_FAILED, info.value
        errors.append(info.value)
    return errors


def stays(condition, seconds: float, what: str) -> None:
    """``condition`` holds at every poll for ``seconds`` (an observation window)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert condition(), what
        time.sleep(0.05)


def test_forged_raft_votes_on_the_client_port_are_refused_and_the_quorum_survives(cluster3):
    c = cluster3
    values = [f"v{i}".encode() for i in range(20)]
    setup_topic(c, "guarded", values)
    controller = wait_until(lambda: agreed_controller(c), 10, "a controller")

    with ClientEndpoint() as attacker:
        for b in c.broker_ids:
            src = next(v for v in c.voters if v != b)
            forged = [vote(src, b, MAX_INT64), vote(src, b, MAX_INT64 - 1)]
            forged += [vote(src, b, term) for term in range(1, 40)]  # term + 1, repeatedly
            forged += [vote(src, b, term, pre_vote=True) for term in range(1, 10)]
            futures = [attacker.request(c.address(b), m, 5000) for m in forged]
            errors = expect_refused(futures)
            assert max(refused_count(e) for e in errors) >= len(forged)  # each one counted

    # the quorum never noticed: same controller for many election timeouts
    stays(lambda: agreed_controller(c) == controller, 10 * ELECTION_MS / 1000, "same controller")
    assert topic_layout(c, 1, "guarded") is not None
    produce_and_read(c, "guarded", [b"after-1", b"after-2"])

    # and the metadata log on disk still elects a controller after a full restart
    c.stop(timeout_s=15)
    c.start(timeout_s=45)
    wait_until(lambda: agreed_controller(c), 20, "a controller after restarting every broker")
    wait_until(lambda: topic_layout(c, 1, "guarded"), 20, "the topic after the restart")
    produce_and_read(c, "guarded", [b"after-restart"])


def test_inter_broker_apis_on_the_client_port_are_refused(cluster3):
    c = cluster3
    part = setup_topic(c, "isr", [b"a", b"b"])
    follower = next(b for b in part.replicas if b != part.leader)
    before = {b.broker_id: (b.host, b.port) for b in metadata(c, 1).brokers}
    forged = [
        P.AlterPartitionRequest(
            broker_id=part.leader,
            topic="isr",
            partition=0,
            leader_epoch=part.leader_epoch,
            partition_epoch=0,
            new_isr=(part.leader,),
        ),
        P.BrokerHeartbeatRequest(
            broker_id=follower,
            host="10.255.255.1",
            port=1,
        ),
        P.MetadataFetchRequest(start_index=1),
        P.FetchRequest(
            replica_id=follower,
            max_wait_ms=0,
            topics=(
                P.FetchTopic(
                    name="isr",
                    partitions=(P.FetchPartition(partition=0, fetch_offset=0),),
                ),
            ),
        ),
        P.OffsetForLeaderEpochRequest(
            replica_id=follower,
            topics=(
                P.OffsetForLeaderEpochTopic(
                    name="isr",
                    partitions=(
                        P.OffsetForLeaderEpochPartition(
                            partition=0, current_leader_epoch=part.leader_epoch, leader_epoch=0
                        ),
                    ),
                ),
            ),
        ),
        P.ListOffsetsRequest(
            replica_id=follower,
            topics=(
                P.ListOffsetsTopic(
                    name="isr", partitions=(P.ListOffsetsPartition(partition=0, timestamp=-1),)
                ),
            ),
        ),
    ]
    with ClientEndpoint() as attacker:
        for b in c.broker_ids:
            counts = []
            for request in forged:
                (error,) = expect_refused([attacker.request(c.address(b), request, 5000)])
                counts.append(refused_count(error))
            assert counts == list(range(1, len(forged) + 1))  # each broker counts each one

    # nothing changed: the ISR is whole, the follower keeps its addresses, data flows
    stays(lambda: topic_layout(c, 1, "isr") is not None, 5 * ELECTION_MS / 1000, "full ISR")
    assert {b.broker_id: (b.host, b.port) for b in metadata(c, 1).brokers} == before
    produce_and_read(c, "isr", [b"c"])


def test_the_inter_broker_port_admits_only_holders_of_the_cluster_key(cluster3):
    from rillet.transport.security import load_keyfile

    c = cluster3
    assert c.keyfile is not None and c.keyfile.exists()
    controller = wait_until(lambda: agreed_controller(c), 10, "a controller")
    with ClientEndpoint() as attacker:
        futures = []
        for b in c.broker_ids:
            src = next(v for v in c.voters if v != b)
            for m in (vote(src, b, MAX_INT64), vote(src, b, 100), P.ApiVersionsRequest()):
                futures.append(attacker.request(c.internal_address(b), m, 1500))
        for f in futures:
            with pytest.raises(TransportError):  # no CURVE handshake: nothing gets through
                f.result(10)
    with ClientEndpoint(curve=load_keyfile(c.keyfile)) as broker_like:
        for b in c.broker_ids:
            r = call(broker_like, c.internal_address(b), P.ApiVersionsRequest())
            assert r.broker_id == b
    stays(lambda: agreed_controller(c) == controller, 5 * ELECTION_MS / 1000, "same controller")
