"""Follower fetch sessions (KIP-227) on real broker processes: an idle 3-broker cluster with a
few hundred partitions keeps every ISR full, and its followers' long polls reach no partition
actor (the leaders' ``replica_fetch_partition_reads`` counter stays put while
``replica_fetch_polls`` grows); new records still reach idle followers at once (acks=all
needs them). Counters come from the BrokerCounters API; every wait polls."""

from __future__ import annotations

import pytest
from cluster_helpers import FAST, call, produce, wait_until
from rillet.transport import protocol as P

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

PARTITIONS = 240


def counters(cluster, broker_id: int) -> dict[str, int] | None:
    r = call(cluster, broker_id, P.BrokerCountersRequest())
    if not isinstance(r, P.BrokerCountersResponse):
        return None
    return {c.name: c.value for c in r.counters}


def full_isrs(cluster, topic: str) -> int:
    m = call(cluster, 1, P.MetadataRequest(topics=(topic,)), 10_000)
    if m is None or not m.topics or not m.topics[0].partitions:
        return 0
    return sum(1 for p in m.topics[0].partitions if p.leader >= 0 and len(p.isr) == 3)


@pytest.mark.slow  # 3 brokers x 240 partitions RF 3: CI time; run it with -m slow
def test_idle_followers_poll_without_touching_partitions_and_isrs_stay_full(cluster_factory):
    c = cluster_factory(3, FAST)
    create = P.CreateTopicsRequest(
        topics=(
            P.CreatableTopic(
                name="many",
                num_partitions=PARTITIONS,
                replication_factor=3,
                configs={"min.insync.replicas": "2"},
            ),
        )
    )
    r = call(c, 1, create, 30_000)
    assert r is not None and r.topics[0].error_code == 0, r
    wait_until(lambda: full_isrs(c, "many") == PARTITIONS, 60, "full ISRs after creation")
    # some data, so the sessions have watched partitions with records and high watermarks
    m = call(c, 1, P.MetadataRequest(topics=("many",)))
    leaders = {p.partition: p.leader for p in m.topics[0].partitions}
    for p in range(0, PARTITIONS, 40):
        # on a loaded machine a follower can fall out of the ISR for a moment right after
        # creation (NOT_ENOUGH_REPLICAS[_AFTER_APPEND], retriable): an extra "warm" record
        # changes nothing here
        wait_until(
            lambda p=p: (r := produce(c, leaders[p], "many", p, [b"warm"])) is not None
            and r.error_code == 0,
            60,
            f"a warm-up record on partition {p}",
        )

    window: list = []

    def quiet_counters():
        """Counters of every broker once 5 follower polls in a row on every leader read no
        partition (the warm-up's high watermarks have reached the followers)."""
        now = {b: counters(c, b) for b in c.broker_ids}
        if any(v is None for v in now.values()):
            return None
        if window and any(
            now[b].get("replica_fetch_partition_reads", 0)
            != window[0][b].get("replica_fetch_partition_reads", 0)
            for b in c.broker_ids
        ):
            window.clear()  # reads still happen: start the window again from here
        if not window:
            window.append(now)
            return None
        settled = all(
            now[b]["replica_fetch_polls"] - window[0][b]["replica_fetch_polls"] >= 5
            for b in c.broker_ids
        )
        return now if settled else None

    before = wait_until(quiet_counters, 60, "the followers to settle")

    def polled_enough():
        now = {b: counters(c, b) for b in c.broker_ids}
        if any(v is None for v in now.values()):
            return None
        grown = all(
            now[b]["replica_fetch_polls"] - before[b]["replica_fetch_polls"] >= 20
            for b in c.broker_ids
        )
        return now if grown else None

    after = wait_until(polled_enough, 60, "20 more follower polls on every leader")
    for b in c.broker_ids:
        polls = after[b]["replica_fetch_polls"] - before[b]["replica_fetch_polls"]
        reads = (
            after[b]["replica_fetch_partition_reads"] - before[b]["replica_fetch_partition_reads"]
        )
        # without sessions every poll names every followed partition (~160 per poll here);
        # with them an idle poll reads none. A loaded machine may still see a few (an ISR
        # that flapped, a late high watermark): at most one per poll, 160 times fewer.
        assert reads <= polls, f"broker {b}: {reads} partition reads in {polls} idle polls"
    assert full_isrs(c, "many") == PARTITIONS  # nothing shrank while idle

    # idle followers are woken by new records: acks=all with min.insync.replicas=2 needs
    # a follower to fetch them, and both do before the HW covers them
    for p in range(5, PARTITIONS, 24):
        r = produce(c, leaders[p], "many", p, [b"after-idle"])
        assert r is not None and r.error_code == 0, (p, r)
    wait_until(lambda: full_isrs(c, "many") == PARTITIONS, 30, "full ISRs after producing")
