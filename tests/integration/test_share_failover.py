"""A share-partition's leader killed (kill -9) on a 3-broker cluster, RF=3: the new leader
loads the state from the share-state coordinator; accepted records are never delivered again;
a delayed release still waits; records the dead leader had handed out are offered again with
their delivery count; and a dead letter the old leader had persisted as DEAD_LETTER_PENDING
but could not write (its dead-letter topic refused the batch) is written by the new leader."""

from __future__ import annotations

import time

import pytest
from rillet.logstore.batch import records
from rillet.transport import protocol as P

from tests.integration.cluster_helpers import partition_meta
from tests.integration.share_helpers import (
    ack,
    acquired,
    describe,
    share_ack,
    share_fetch,
    values_batch,
)
from tests.support import FAST_REPLICATION_CONFIGS, wait_until

E = P.ErrorCode
CONFIGS = {**FAST_REPLICATION_CONFIGS, "share.coordinator.state.topic.num.partitions": "3"}


def led_by(cluster, wire_factory, topic: str, not_broker: int = -1):
    def leader():
        meta = partition_meta(cluster, topic, 0)
        if meta is None or meta.leader <= 0 or meta.leader == not_broker:
            return None
        return meta.leader

    broker = wait_until(leader, 30, f"a leader of {topic}")
    return broker, wire_factory(cluster, broker)


@pytest.mark.timeout(120)
def test_killed_leader_new_leader_loads_state_and_redrives_dead_letters(
    cluster_factory, wire_factory
):
    cluster = cluster_factory(3, CONFIGS)
    admin = wire_factory(cluster)
    assert admin.create_topic("q", rf=3).error_code == E.NONE
    # the dead-letter topic refuses every batch for now: the dead letter stays pending
    assert admin.create_topic("q.dlq", rf=3, configs={"max.message.bytes": "64"}).error_code == 0
    leader, lw = led_by(cluster, wire_factory, "q")
    follower = next(b for b in cluster.broker_ids if b != leader)
    part = share_fetch(wire_factory(cluster, follower), "g", "a", "q")
    assert part.error_code == E.NOT_LEADER_OR_FOLLOWER and not part.acquired_records
    wait_until(lambda: share_fetch(lw, "g", "init", "q").error_code == E.NONE, 30,
               "the share-partition initialised")
    assert lw.produce("q", 0, values_batch([b"r%d" % i for i in range(10)]),
                      acks=-1).error_code == E.NONE
    got = wait_until(lambda: acquired(share_fetch(lw, "g", "a", "q")), 10, "records")
    assert [o for o, _, _ in got] == list(range(10))
    assert share_ack(lw, "g", "a", "q", [
        ack(0, 3, P.ACK_ACCEPT), ack(4, 4, P.ACK_REJECT, reason="poison"),
        ack(5, 5, P.ACK_RELEASE, delay_ms=60_000)]) == E.NONE
    d = describe(lw, "g", "q")
    assert (d.start_offset, d.dead_lettered, d.delayed, d.acquired) == (4, 1, 1, 4)
    time.sleep(1.0)  # the scenario: the old leader's dead-letter attempts are refused a while
    assert describe(lw, "g", "q").dead_lettered == 1  # still pending on the old leader

    cluster.kill(leader)
    new_leader, nw = led_by(cluster, wire_factory, "q", not_broker=leader)
    change = P.AlterConfigsRequest(resources=(P.AlterConfigsResource(
        resource_type=P.ConfigResourceType.TOPIC, resource_name="q.dlq",
        configs=(P.AlterableConfig(name="max.message.bytes", value="1048588"),)),))
    answer = wire_factory(cluster, new_leader).call(change)
    assert answer.results[0].error_code == E.NONE, answer

    # a's records 6..9 come back (delivery 2); 0..3 (accepted) and 5 (delayed 60 s) do not
    def redelivered():
        part = share_fetch(nw, "g", "b", "q", max_wait_ms=200)
        return acquired(part) if part.error_code == E.NONE else None

    got = wait_until(redelivered, 30, "the new leader's redelivery")
    assert got == [(o, b"r%d" % o, 2) for o in range(6, 10)]
    assert share_ack(nw, "g", "b", "q", [ack(6, 9, P.ACK_ACCEPT)]) == E.NONE
    assert acquired(share_fetch(nw, "g", "c", "q", max_wait_ms=300)) == []

    _, dlq = led_by(cluster, wire_factory, "q.dlq", not_broker=leader)

    def dead_letters():
        part = dlq.fetch("q.dlq", 0, 0)
        return list(records(part.records)) if part.error_code == E.NONE else []

    dead = wait_until(dead_letters, 30, "the re-driven dead letter")
    assert {(r.value, dict(r.headers)["rillet.dlq.offset"], dict(r.headers)["rillet.dlq.reason"])
            for r in dead} == {(b"r4", b"4", b"poison")}  # at least once, only that record
    d = wait_until(lambda: (lambda d: d if d.dead_lettered == 0 else None)(
        describe(nw, "g", "q")), 10, "the dead letter archived")
    assert (d.start_offset, d.delayed, d.acquired, d.high_watermark) == (5, 1, 0, 10)
