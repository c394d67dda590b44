"""TxnOffsetCommit (KIP-447) against a real broker over the wire, from a raw client: the
offsets of an open transaction are invisible to OffsetFetch, answer UNSTABLE_OFFSET_COMMIT
with require_stable, stay pending across a restart of the broker (replayed from the
transactional batch in ``__consumer_offsets``), and a zombie generation is refused.
The end-to-end test completes the transaction with a real coordinator's markers.
"""

from __future__ import annotations

import time

import pytest
from rillet.transport import protocol as P

E = P.ErrorCode
CONFIGS = {"offsets.topic.num.partitions": "1", "offsets.topic.replication.factor": "1"}


def until(call, ok, what: str, timeout_s: float = 30.0):
    """Repeat ``call()`` until ``ok(answer)``; the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = call()
        except Exception as exc:  # noqa: BLE001 - the broker may be (re)starting
            answer = exc
        if not isinstance(answer, Exception) and ok(answer):
            return answer
        assert time.monotonic() < deadline, f"{what}: last answer {answer!r}"
        time.sleep(0.1)


def topics(**by_partition: int) -> tuple[P.OffsetCommitTopic, ...]:
    return (P.OffsetCommitTopic(name="t", partitions=tuple(
        P.OffsetCommitPartition(partition=int(p[1:]), committed_offset=o)
        for p, o in by_partition.items())),)


def txn_commit(group: str, generation: int = -1, member: str = "", **by_partition: int):
    return P.TxnOffsetCommitRequest(
        transactional_id="app-1", group_id=group, producer_id=4242, producer_epoch=0,
        generation_id=generation, member_id=member, topics=topics(**by_partition))


def fetch(wire, group: str, require_stable: bool = False) -> dict[int, tuple[int, int]]:
    """partition -> (committed offset, error code) of t-0 and t-1."""
    r = wire.call(P.OffsetFetchRequest(
        group_id=group, require_stable=require_stable,
        topics=(P.GroupTopicPartitions(topic="t", partitions=(0, 1)),)))
    assert r.error_code == 0, r
    return {p.partition: (p.committed_offset, p.error_code)
            for t in r.topics for p in t.partitions}


def errors(response) -> set[int]:
    return {p.error_code for t in response.topics for p in t.partitions}


def ready(wire, group: str) -> None:
    until(lambda: wire.call(P.FindCoordinatorRequest(key=group)), lambda r: r.error_code == 0,
          "a coordinator")
    until(lambda: wire.call(P.OffsetFetchRequest(group_id=group)), lambda r: r.error_code == 0,
          "the group coordinator to load")


@pytest.mark.timeout(120)
def test_pending_offsets_are_invisible_unstable_and_survive_a_restart(
    cluster_factory, wire_factory
) -> None:
    cluster = cluster_factory(configs=CONFIGS)
    wire = wire_factory(cluster)
    assert wire.create_topic("t", 2).error_code == 0
    ready(wire, "g")
    served = wire.call(P.ApiVersionsRequest())
    assert "TxnOffsetCommit" in {v.api for v in served.api_versions}

    assert errors(wire.call(P.OffsetCommitRequest(group_id="g", topics=topics(p0=5)))) == {0}
    r = wire.call(txn_commit("g", p0=10, p1=20))
    assert r.error_code == 0 and errors(r) == {0}, r
    assert fetch(wire, "g") == {0: (5, 0), 1: (-1, 0)}  # the last committed value
    unstable = E.UNSTABLE_OFFSET_COMMIT
    assert fetch(wire, "g", require_stable=True) == {0: (-1, unstable), 1: (-1, unstable)}

    # the transactional batch is in __consumer_offsets: a restart replays it as pending
    before = cluster.pid(1)
    cluster.stop()
    cluster.start(timeout_s=30)
    assert cluster.pid(1) not in (None, before)
    wire = wire_factory(cluster)
    ready(wire, "g")
    assert fetch(wire, "g") == {0: (5, 0), 1: (-1, 0)}
    assert fetch(wire, "g", require_stable=True) == {0: (-1, unstable), 1: (-1, unstable)}
    # the same producer goes on after the restart (its batch sequence follows the log's)
    assert errors(wire.call(txn_commit("g", p1=21))) == {0}


@pytest.mark.timeout(120)
def test_a_zombie_generation_is_refused(cluster_factory, wire_factory) -> None:
    cluster = cluster_factory(configs=CONFIGS)
    wire = wire_factory(cluster)
    assert wire.create_topic("t", 2).error_code == 0
    ready(wire, "g")
    joined = until(
        lambda: wire.call(P.ConsumerGroupHeartbeatRequest(
            group_id="g", member_id="m-1", member_epoch=0, rebalance_timeout_ms=10_000,
            subscribed_topic_names=("t",))),
        lambda r: r.error_code == 0, "a member to join")
    epoch = joined.member_epoch
    assert epoch >= 1
    # a second member joins: the group moves on, m-1's next epoch is not its old one
    wire.call(P.ConsumerGroupHeartbeatRequest(
        group_id="g", member_id="m-2", member_epoch=0, rebalance_timeout_ms=10_000,
        subscribed_topic_names=("t",)))
    zombie = wire.call(txn_commit("g", generation=epoch - 1, member="m-1", p0=7))
    assert zombie.error_code == E.ILLEGAL_GENERATION and errors(zombie) == {E.ILLEGAL_GENERATION}
    gone = wire.call(txn_commit("g", generation=epoch, member="m-9", p0=7))
    assert gone.error_code == E.UNKNOWN_MEMBER_ID
    unknown_group = wire.call(txn_commit("nope", generation=3, member="m-1", p0=7))
    assert unknown_group.error_code == E.ILLEGAL_GENERATION
    current = wire.call(txn_commit("g", generation=epoch, member="m-1", p0=7))
    assert current.error_code == 0 and errors(current) == {0}
    assert fetch(wire, "g", require_stable=True)[0] == (-1, E.UNSTABLE_OFFSET_COMMIT)
    assert fetch(wire, "g") == {0: (-1, 0), 1: (-1, 0)}


@pytest.mark.timeout(120)
def test_offsets_sent_to_a_transaction_are_visible_on_commit_only(cluster_factory) -> None:
    from rillet.admin import Admin
    from rillet.producer import Producer
    from rillet.records import NewTopic, TopicPartition

    cluster = cluster_factory(configs=CONFIGS)
    bs = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": bs}) as admin:
        admin.create_topics([NewTopic("t", 2)])
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    with Producer({"bootstrap.servers": bs, "transactional.id": "app-1"}) as producer:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send_offsets_to_transaction({tp0: 3, tp1: 4}, "g")
        producer.abort_transaction()
        producer.begin_transaction()
        producer.send_offsets_to_transaction({tp0: 10, tp1: 20}, "g")
        with Admin({"bootstrap.servers": bs}) as admin:
            assert admin.list_consumer_group_offsets("g") == {}
        producer.commit_transaction()

    deadline = time.monotonic() + 30
    while True:
        with Admin({"bootstrap.servers": bs}) as admin:
            got = admin.list_consumer_group_offsets("g")
        if got == {tp0: 10, tp1: 20}:
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
