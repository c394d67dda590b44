"""The share-state coordinator (actors/share_state.py) on real brokers (3 brokers, RF=3), driven
by the real ShareStateClient (actors/share_state_client.py) as a partition leader drives it,
over the brokers' CURVE inter-broker listeners: write/read round trip, fencing, group commit,
the state surviving kill -9 of the coordinator's broker, and the two APIs refused on the
client listener.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest
from rillet.actors.share_state_client import ShareStateClient
from rillet.actors.share_state_wire import SHARE_STATE_TOPIC, state_partition
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import ProtocolError
from rillet.transport.security import load_keyfile

from tests.integration.cluster_helpers import batch, call, partition_meta
from tests.support import FAST_REPLICATION_CONFIGS, wait_until

E = P.ErrorCode
PARTITIONS = 3
CONFIGS = {**FAST_REPLICATION_CONFIGS,
           "share.coordinator.state.topic.num.partitions": str(PARTITIONS)}


class Leader:
    """A partition leader's view: the real ShareStateClient, finding coordinators through
    any live broker's client listener and talking to their inter-broker listeners with the
    cluster's CURVE key pair."""

    def __init__(self, cluster, deadline_ms: int = 30_000) -> None:
        self.cluster = cluster
        self.peers = ClientEndpoint(curve=load_keyfile(cluster.keyfile))
        self.client = ShareStateClient(self.find, self.address_of, self.peers.request,
                                       self.schedule, deadline_ms=deadline_ms)
        self.timers: list[threading.Timer] = []
        self.found: dict[str, tuple[float, P.FindCoordinatorResponse]] = {}

    def find(self, key: str) -> P.FindCoordinatorResponse:
        """FindCoordinator through a live broker; an answer is kept for 0.5 s (a broker
        answers from its metadata image, without a round trip: so must the test, or its
        lookups would serialise the writes)."""
        cached = self.found.get(key)
        if cached is not None and time.monotonic() - cached[0] < 0.5:
            return cached[1]
        for b in self.cluster.broker_ids:
            if self.cluster.pid(b) is None:
                continue
            r = call(self.cluster, b, P.FindCoordinatorRequest(key=key, key_type=2), 1000)
            if r is not None:
                if r.error_code == E.NONE:
                    self.found[key] = (time.monotonic(), r)
                return r
        return P.FindCoordinatorResponse(error_code=E.COORDINATOR_NOT_AVAILABLE)

    def address_of(self, broker_id: int) -> str | None:
        return self.cluster.internal_address(broker_id) if broker_id in self.cluster.ports \
            else None

    def schedule(self, delay_s: float, fn) -> None:
        timer = threading.Timer(delay_s, fn)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def read(self, group: str, topic: str, partition: int, leader_epoch: int = 1,
             timeout_s: float = 40):
        answered: Future = Future()
        self.client.read(group, topic, partition, leader_epoch, answered.set_result)
        return answered.result(timeout_s)

    def write_async(self, group: str, topic: str, partition: int, *batches, state_epoch=0,
                    leader_epoch=1, start=0, **kw) -> Future:
        answered: Future = Future()
        self.client.write(P.WriteShareGroupStateRequest(
            group_id=group, topic=topic, partition=partition, state_epoch=state_epoch,
            leader_epoch=leader_epoch, start_offset=start, state_batches=tuple(batches), **kw),
            answered.set_result)
        return answered

    def write(self, *args, timeout_s: float = 40, **kw):
        return self.write_async(*args, **kw).result(timeout_s)

    def close(self) -> None:
        for t in self.timers:
            t.cancel()
        self.peers.close()


def B(first, last, state=P.RECORD_ACKNOWLEDGED, count=1, at=0, reason=""):
    return P.ShareStateBatch(first_offset=first, last_offset=last, delivery_state=state,
                             delivery_count=count, available_at_ms=at, reason=reason)


@pytest.fixture
def leader_factory():
    made: list[Leader] = []

    def make(cluster, **kw) -> Leader:
        made.append(Leader(cluster, **kw))
        return made[-1]

    yield make
    for leader in made:
        leader.close()


def coordinator_of(cluster, key: str) -> int:
    def found():
        for b in cluster.broker_ids:
            if cluster.pid(b) is None:
                continue
            r = call(cluster, b, P.FindCoordinatorRequest(key=key, key_type=2), 1000)
            if r is not None and r.error_code == E.NONE:
                return r.node_id
        return None

    return wait_until(found, 30, f"the share-state coordinator of {key}", 0.1)


@pytest.mark.timeout(120)
def test_write_read_round_trip_fencing_and_group_commit(cluster_factory, leader_factory):
    cluster = cluster_factory(3, CONFIGS)
    first = call(cluster, 1, P.FindCoordinatorRequest(key="g:orders:0", key_type=2))
    assert first.error_code == E.COORDINATOR_NOT_AVAILABLE  # the topic is created on first use
    coordinator_of(cluster, "g:orders:0")
    meta = partition_meta(cluster, SHARE_STATE_TOPIC, 0)
    assert len(meta.replicas) == 3  # RF 3: the state survives the loss of a broker

    leader = leader_factory(cluster)
    nothing = leader.read("g", "orders", 0)
    assert (nothing.error_code, nothing.state_epoch, nothing.start_offset) == (E.NONE, 0, -1)

    w = leader.write("g", "orders", 0, B(10, 19), B(20, 24, P.RECORD_AVAILABLE, 2, 9_999),
                     B(25, 25, P.RECORD_DEAD_LETTER_PENDING, 5, reason="poison"), start=10,
                     leader_epoch=3)
    assert (w.error_code, w.state_epoch) == (E.NONE, 0)
    r = leader.read("g", "orders", 0, leader_epoch=3)
    assert (r.error_code, r.state_epoch, r.leader_epoch, r.start_offset) == (E.NONE, 0, 3, 10)
    assert r.state_batches == (B(10, 19), B(20, 24, P.RECORD_AVAILABLE, 2, 9_999),
                               B(25, 25, P.RECORD_DEAD_LETTER_PENDING, 5, reason="poison"))

    # a delta: the dead letter confirmed, the start offset moves past the acknowledged prefix
    assert leader.write("g", "orders", 0, B(25, 25, P.RECORD_ARCHIVED, 5), start=20,
                        leader_epoch=3).error_code == E.NONE
    r = leader.read("g", "orders", 0, leader_epoch=3)
    assert r.start_offset == 20
    assert r.state_batches == (B(20, 24, P.RECORD_AVAILABLE, 2, 9_999),
                               B(25, 25, P.RECORD_ARCHIVED, 5))

    # fencing: an older leader epoch; the state epoch of before a reset
    old = leader.write("g", "orders", 0, B(20, 20), leader_epoch=2)
    assert old.error_code == E.FENCED_LEADER_EPOCH
    assert leader.read("g", "orders", 0, leader_epoch=2).error_code == E.FENCED_LEADER_EPOCH
    reset = leader.write("g", "orders", 0, start=100, replace=True, leader_epoch=3)
    assert (reset.error_code, reset.state_epoch) == (E.NONE, 1)
    stale = leader.write("g", "orders", 0, B(100, 100), leader_epoch=3, state_epoch=0)
    assert (stale.error_code, stale.state_epoch) == (E.FENCED_STATE_EPOCH, 1)
    r = leader.read("g", "orders", 0, leader_epoch=3)
    assert (r.state_epoch, r.start_offset, r.state_batches) == (1, 100, ())

    # group commit: concurrent writes of one share-partition, fewer appends than writes
    p = state_partition("g", "orders", 0, PARTITIONS)
    before = partition_meta(cluster, SHARE_STATE_TOPIC, p)
    assert before is not None
    futures = [leader.write_async("g", "orders", 0, B(o, o), start=100, leader_epoch=3,
                                  state_epoch=1) for o in range(100, 400)]
    assert {f.result(40).error_code for f in futures} == {E.NONE}
    r = leader.read("g", "orders", 0, leader_epoch=3)
    assert r.state_batches == (B(100, 399),)  # each offset acknowledged, joined in one range
    latest = _log_end(cluster, coordinator_of(cluster, "g:orders:0"), p)
    assert latest < 100, f"{latest} records for 300 concurrent writes: no group commit"


def _log_end(cluster, broker: int, partition: int) -> int:
    r = call(cluster, broker, P.ListOffsetsRequest(topics=(P.ListOffsetsTopic(
        name=SHARE_STATE_TOPIC, partitions=(P.ListOffsetsPartition(
            partition=partition, timestamp=-1),)),)))
    return r.topics[0].partitions[0].offset


@pytest.mark.timeout(150)
def test_the_state_survives_kill_9_of_the_coordinators_broker(cluster_factory, leader_factory):
    cluster = cluster_factory(3, CONFIGS)
    leader = leader_factory(cluster)
    keys = [("g", "orders", p) for p in range(6)] + [("other", "t", 0)]
    for i, (g, t, p) in enumerate(keys):
        w = leader.write(g, t, p, B(i, i + 9), B(i + 10, i + 10, P.RECORD_AVAILABLE, 3, 12_345),
                         start=i, leader_epoch=5)
        assert w.error_code == E.NONE, w
    victim = coordinator_of(cluster, "g:orders:0")
    p = state_partition("g", "orders", 0, PARTITIONS)
    cluster.kill(victim)

    def new_leader():
        m = partition_meta(cluster, SHARE_STATE_TOPIC, p)
        return m is not None and m.leader not in (victim, -1) and m.leader

    wait_until(new_leader, 30, f"a new leader of {SHARE_STATE_TOPIC}-{p}", 0.1)
    for i, (g, t, part) in enumerate(keys):  # every state, wherever its coordinator went
        r = leader.read(g, t, part, leader_epoch=5)
        assert r.error_code == E.NONE, r
        assert (r.start_offset, r.leader_epoch) == (i, 5)
        assert r.state_batches == (B(i, i + 9), B(i + 10, i + 10, P.RECORD_AVAILABLE, 3, 12_345))
    assert coordinator_of(cluster, "g:orders:0") != victim
    # the new coordinator takes writes, and a new partition leader fences the old one
    assert leader.read("g", "orders", 0, leader_epoch=6).leader_epoch == 6
    assert leader.write("g", "orders", 0, B(0, 0, P.RECORD_ARCHIVED), leader_epoch=5
                        ).error_code == E.FENCED_LEADER_EPOCH
    assert leader.write("g", "orders", 0, start=10, leader_epoch=6).error_code == E.NONE
    r = leader.read("g", "orders", 0, leader_epoch=6)
    assert (r.start_offset, r.state_batches[0]) == (10, B(10, 10, P.RECORD_AVAILABLE, 3, 12_345))


def test_share_state_apis_are_refused_on_the_client_listener(cluster_factory, leader_factory):
    cluster = cluster_factory(1, {"share.coordinator.state.topic.num.partitions": "1"})
    leader = leader_factory(cluster)
    assert leader.write("g", "t", 0, B(0, 4), start=0).error_code == E.NONE
    with ClientEndpoint() as client:
        for request in (
            P.WriteShareGroupStateRequest(group_id="g", topic="t", partition=0, state_epoch=0,
                                          leader_epoch=1, start_offset=0, delete=True),
            P.ReadShareGroupStateRequest(group_id="g", topic="t", partition=0, leader_epoch=9),
        ):
            with pytest.raises(ProtocolError) as refused:
                client.request(cluster.address(1), request, 5000).result(10)
            assert refused.value.code == E.CLUSTER_AUTHORIZATION_FAILED
        # nor can a client write the topic itself
        forged = P.ProduceRequest(acks=-1, timeout_ms=5000, topics=(P.ProduceTopic(
            name=SHARE_STATE_TOPIC, partitions=(P.ProducePartition(
                partition=0, records=batch([b"forged"])),)),))
        answer = client.request(cluster.address(1), forged, 5000).result(10)
        assert answer.topics[0].partitions[0].error_code == E.INVALID_TOPIC_EXCEPTION
    r = leader.read("g", "t", 0)  # neither the delete nor the leader epoch 9 took effect
    assert (r.error_code, r.leader_epoch, r.state_batches) == (E.NONE, 1, (B(0, 4),))
    counters = call(cluster, 1, P.BrokerCountersRequest())
    assert {c.name: c.value for c in counters.counters}["refused_inter_broker"] == 2
