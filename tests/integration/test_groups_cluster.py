"""Consumer groups on a 3-broker cluster: each group is coordinated by the leader of its
``__consumer_offsets`` partition (Kafka's hash rule), clients find it from any bootstrap
broker, and ListGroups gathers the groups of every broker.

Kill -9 of the coordinator's broker: the ``__consumer_offsets`` partition is replicated, a
new leader becomes the coordinator and the group carries on from its committed offsets.
"""

from __future__ import annotations

import time

import pytest
from rillet.actors.group_coordinator import partition_for

from rillet.admin import Admin
from rillet.consumer import Consumer
from rillet.producer import Producer
from rillet.records import NewTopic, TopicPartition


@pytest.mark.timeout(120)
def test_groups_are_coordinated_by_the_leader_of_their_offsets_partition(cluster_factory):
    cluster = cluster_factory(brokers=3, configs={"group.consumer.heartbeat.interval.ms": "200",
                                                  "offsets.topic.num.partitions": "6"})
    bs = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": bs}) as admin:
        admin.create_topics([NewTopic("t", 3)])
    with Producer({"bootstrap.servers": bs}) as producer:
        for i in range(30):
            producer.send("t", value=b"%d" % i, partition=i % 3)
        producer.flush()
    groups = ["g1", "g2", "g3", "g4", "g5"]
    coordinators = {}
    for g in groups:
        consumer = Consumer({"bootstrap.servers": cluster.address(3), "group.id": g,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            consumer.subscribe(["t"])
            n, deadline = 0, time.monotonic() + 30
            while n < 30:
                assert time.monotonic() < deadline, n
                n += sum(len(r) for r in consumer.poll(100).values())
            consumer.commit()
            coordinators[g] = consumer._membership.locator._address
        finally:
            consumer.close()
    with Admin({"bootstrap.servers": cluster.address(1)}) as admin:
        layout = admin.describe_topics(["__consumer_offsets"])["__consumer_offsets"]
        assert layout.is_internal and len(layout.partitions) == 6
        assert "__consumer_offsets" not in admin.list_topics()
        for g in groups:
            leader = layout.partitions[partition_for(g, 6)].leader
            assert coordinators[g] == cluster.address(leader)
            assert admin.list_consumer_group_offsets(g) == {
                TopicPartition("t", p): 10 for p in range(3)}
        assert len(set(coordinators.values())) > 1  # spread over brokers
        assert [(x.group_id, x.state) for x in admin.list_groups()] == [
            (g, "Empty") for g in groups]
        assert admin.describe_groups(["g3"])["g3"].coordinator == coordinators["g3"]


@pytest.mark.slow  # ~35 s: coordinator failover runs with -m slow (docs in README)
@pytest.mark.timeout(120)
def test_the_group_carries_on_after_its_coordinators_broker_is_killed(cluster_factory):
    cluster = cluster_factory(brokers=3, configs={
        "group.consumer.heartbeat.interval.ms": "200", "offsets.topic.num.partitions": "3",
        "controller.quorum.election.timeout.ms": "300", "broker.heartbeat.interval.ms": "200",
        "controller.quorum.fetch.timeout.ms": "600",
        "broker.session.timeout.ms": "1500", "replica.lag.time.max.ms": "1500"})
    bs = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": bs}) as admin:
        admin.create_topics([NewTopic("t", 3, 3)])

    def produce(tag: bytes) -> None:
        with Producer({"bootstrap.servers": bs}) as producer:
            for i in range(30):
                producer.send("t", value=tag + b"%d" % i, partition=i % 3)
            producer.flush()

    def consume_all(expected: int) -> tuple[list[bytes], str]:
        consumer = Consumer({"bootstrap.servers": bs, "group.id": "g",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            consumer.subscribe(["t"])
            got, deadline = [], time.monotonic() + 40
            while len(got) < expected:
                assert time.monotonic() < deadline, len(got)
                for records in consumer.poll(100).values():
                    got += [r.value for r in records]
            consumer.commit()
            return got, consumer._membership.locator._address
        finally:
            consumer.close()

    produce(b"a")
    first, coordinator = consume_all(30)
    assert sorted(first) == sorted(b"a%d" % i for i in range(30))
    victim = next(b for b in cluster.broker_ids if cluster.address(b) == coordinator)
    cluster.kill(victim)
    produce(b"b")
    second, new_coordinator = consume_all(30)
    assert new_coordinator != coordinator
    assert sorted(second) == sorted(b"b%d" % i for i in range(30))  # not the old ones again
    live = next(b for b in cluster.broker_ids if b != victim)
    with Admin({"bootstrap.servers": cluster.address(live)}) as admin:
        assert admin.list_consumer_group_offsets("g") == {
            TopicPartition("t", p): 20 for p in range(3)}
