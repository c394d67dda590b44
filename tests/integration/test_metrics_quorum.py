"""The second half of the broker metrics (docs/metrics.md), scraped over HTTP from a real
three-broker cluster (one per module): the controller quorum (Raft commit latency, voter
lag), purgatory sizes, consumer group lag per partition, ISR shrinks and expands around a
follower's death and return."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from cluster_helpers import batch, call, partition_meta, produce, produce_once_led, wait_until
from conftest import TEST_BROKER_CONFIGS
from prometheus_client.parser import text_string_to_metric_families
from rillet.transport import protocol as P

from rillet import Admin, Consumer, NewTopic, TopicPartition
from rillet.launcher import LocalCluster
from tests.support import FAST_REPLICATION_CONFIGS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

# ISR shrinks 5-6 s after a follower's last fetch, before the controller fences the dead
# broker (9 s): the acks=all produce waits that long in the purgatory, so a scrape sees it even
# on a loaded CI machine (with 2 s, the produce once arrived after the shrink and never waited)
CONFIGS = {
    **TEST_BROKER_CONFIGS,
    **FAST_REPLICATION_CONFIGS,
    "replica.lag.time.max.ms": "5000",
    "broker.session.timeout.ms": "9000",
}


@pytest.fixture(scope="module")
def c3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("metrics-quorum"), 3, dict(CONFIGS))
    try:
        cluster.start(timeout_s=45)
        yield cluster
    finally:
        cluster.stop(timeout_s=10)


def scrape(cluster, broker_id: int) -> dict[tuple[str, tuple], float]:
    import urllib.request

    with urllib.request.urlopen(cluster.metrics_url(broker_id), timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def produce_waiting(cluster, broker_id: int, topic: str, value: bytes):
    """An acks=all produce that may wait up to 20 s for the ISR (``produce`` gives 5 s)."""
    req = P.ProduceRequest(acks=-1, timeout_ms=20_000, topics=(P.ProduceTopic(
        name=topic, partitions=(P.ProducePartition(partition=0, records=batch([value])),)),))
    r = call(cluster, broker_id, req, 25_000)
    return None if r is None else r.topics[0].partitions[0]


def create(cluster, name: str, partitions: int = 1, rf: int = 3) -> None:
    with Admin({"bootstrap.servers": cluster.bootstrap_servers, "request.timeout.ms": 15000}) as a:
        a.create_topics([NewTopic(name, partitions, rf)])


def full_isr(cluster, topic: str):
    return wait_until(
        lambda: (m := partition_meta(cluster, topic, 0)) and len(m.isr) == 3 and m, 30, "full ISR"
    )


def test_raft_metrics_show_the_quorum_its_commit_latency_and_voter_lag(c3):
    create(c3, "raft-m")  # at least one metadata entry proposed and committed
    full_isr(c3, "raft-m")

    def quorum():
        s = {b: scrape(c3, b) for b in c3.broker_ids}
        leaders = {value(s[b], "rillet_raft_current_leader") for b in s}
        if len(leaders) != 1 or None in leaders:
            return None
        return s, int(leaders.pop())

    s, leader = wait_until(quorum, 30, "all voters to agree on the leader")
    assert value(s[leader], "rillet_active_controller") == 1
    create(c3, "raft-m2")  # proposed by the leader we know (a loaded machine may re-elect)
    s, leader = wait_until(
        lambda: (q := quorum())
        and value(q[0][q[1]], "rillet_raft_commit_latency_seconds_count") >= 1
        and q,
        30,
        "the leader to time a commit",
    )
    assert 0 < value(s[leader], "rillet_raft_commit_latency_seconds_sum") < 30
    epochs = {value(s[b], "rillet_raft_current_epoch") for b in s}
    assert len(epochs) == 1 and epochs.pop() >= 1
    others = [b for b in c3.broker_ids if b != leader]
    # the leader reports each other voter's lag; heartbeats bring both to 0
    wait_until(
        lambda: all(
            value(scrape(c3, leader), "rillet_raft_voter_lag", voter=str(b)) == 0 for b in others
        ),
        30,
        "the voters to catch up",
    )
    for b in others:  # only the leader reports voters' lag
        assert value(s[b], "rillet_raft_voter_lag", voter=str(leader)) is None
        assert value(s[b], "rillet_raft_current_leader") == leader
    # the high watermark never passes the log end offset, and followers reach the leader's
    hw = value(s[leader], "rillet_raft_high_watermark")
    assert 0 < hw <= value(s[leader], "rillet_raft_log_end_offset")
    wait_until(
        lambda: all(value(scrape(c3, b), "rillet_raft_high_watermark") >= hw for b in others),
        30,
        "the followers' high watermark",
    )


def test_fetch_purgatory_and_group_lag_per_partition(c3):
    create(c3, "lag-m")
    meta = full_isr(c3, "lag-m")
    leader = meta.leader
    for i in range(10):
        r = produce_once_led(c3, leader, "lag-m", 0, [b"r%d" % i], acks=-1)
        assert r is not None and r.error_code == 0, r
    # five consumer fetches parked at the end of the log (a follower adds at most one poll
    # per follower broker, so 5 or more means the consumer fetches are counted)
    answers: list = []
    fetch = P.FetchRequest(
        max_wait_ms=20_000, min_bytes=1,
        topics=(P.FetchTopic(name="lag-m", partitions=(
            P.FetchPartition(partition=0, fetch_offset=10),)),),
    )
    threads = [
        threading.Thread(target=lambda: answers.append(call(c3, leader, fetch, 30_000)))
        for _ in range(5)
    ]
    for t in threads:
        t.start()
    try:
        wait_until(
            lambda: value(scrape(c3, leader), "rillet_purgatory_size", delayed_operation="Fetch")
            >= 5,
            30,
            "five parked fetches in the Fetch purgatory",
        )
    finally:
        produce(c3, leader, "lag-m", 0, [b"wake"], acks=-1)  # answers them all
        for t in threads:
            t.join(30)
    assert len(answers) == 5 and all(a is not None for a in answers)
    assert value(scrape(c3, leader), "rillet_purgatory_size", delayed_operation="Fetch") <= 2
    # a consumer group's lag per partition, on the broker that coordinates the group
    tp = TopicPartition("lag-m", 0)
    config = {"bootstrap.servers": c3.bootstrap_servers, "group.id": "lag-g",
              "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "heartbeat.interval.ms": 200}
    with Consumer(config) as consumer:
        consumer.subscribe(["lag-m"])
        got: list = []
        wait_until(lambda: got.extend(consumer.poll(500).get(tp, [])) or len(got) >= 11, 30,
                   "the consumer to read every record")
        consumer.commit({tp: 4})
        # records out (Kafka has only bytes): at least the 11 the consumer read
        assert value(scrape(c3, leader), "rillet_topic_messages_out_total", topic="lag-m") >= 11

        def lag() -> dict[int, float]:
            out = {}
            for b in c3.broker_ids:
                v = value(scrape(c3, b), "rillet_consumer_group_lag", group="lag-g",
                          topic="lag-m", partition="0")
                if v is not None:
                    out[b] = v
            return out

        # exactly one broker (the group's coordinator) reports it: high watermark 10 - 4
        wait_until(lambda: list(lag().values()) == [7], 30, "lag 7 on the group's coordinator")
        consumer.commit()  # its position: every record
        wait_until(lambda: list(lag().values()) == [0], 30, "lag 0 after the commit")
    # a produce moves the lag of the (now idle) group
    produce(c3, leader, "lag-m", 0, [b"x", b"y"], acks=-1)
    wait_until(lambda: list(lag().values()) == [2], 30, "lag 2 after two more records")


def test_group_lag_of_partitions_the_coordinator_does_not_host(c3):
    """Three partitions of replication factor 1 on three brokers: the group's coordinator
    hosts at most one; the others' high watermarks come from their leaders."""
    create(c3, "lag-r", partitions=3, rf=1)
    leaders = wait_until(
        lambda: (ms := [partition_meta(c3, "lag-r", p) for p in range(3)])
        and all(m and m.leader >= 0 for m in ms) and [m.leader for m in ms],
        30, "leaders of lag-r",
    )
    assert len(set(leaders)) == 3  # spread over the brokers
    for p, leader in enumerate(leaders):
        values = [b"v"] * (p + 2)  # 2, 3 and 4 records
        r = produce_once_led(c3, leader, "lag-r", p, values, acks=-1)
        assert r is not None and r.error_code == 0, r
    with Admin({"bootstrap.servers": c3.bootstrap_servers, "request.timeout.ms": 15000}) as a:
        a.alter_consumer_group_offsets("lag-r-g", {TopicPartition("lag-r", p): 1 for p in range(3)})

    def lags() -> dict[str, float]:
        out = {}
        for b in c3.broker_ids:
            for (name, labels), v in scrape(c3, b).items():
                if name == "rillet_consumer_group_lag" and ("group", "lag-r-g") in labels:
                    out[dict(labels)["partition"]] = v
        return out

    wait_until(lambda: lags() == {"0": 1, "1": 2, "2": 3}, 30, "lag 1, 2, 3 of the partitions")


def test_isr_shrink_with_an_acks_all_produce_in_purgatory_then_expand(c3):
    """Also the issue's "kill a follower and the under-replicated gauge rises, then falls
    after restart"."""
    create(c3, "isr-m")

    def settled():  # every broker's image: the full ISR and the same leader (one broker's
        # image alone may be behind a leader change, and a produce to the old leader is
        # answered at once with NOT_LEADER, never waiting)
        metas = [partition_meta(c3, "isr-m", 0, via=[b]) for b in c3.broker_ids]
        if all(m is not None and len(m.isr) == 3 for m in metas) and len(
                {m.leader for m in metas}) == 1:
            return metas[0]
        return None

    meta = wait_until(settled, 30, "a full ISR and one leader in every broker's image")
    leader = meta.leader
    wait_until(lambda: value(scrape(c3, leader), "rillet_under_replicated_partitions") == 0,
               30, "no under-replicated partition")
    before = scrape(c3, leader)
    follower = next(b for b in meta.replicas if b not in (leader, c3.controller_id()))
    c3.kill(follower)
    answer: list = []
    waiting = threading.Thread(
        target=lambda: answer.append(produce_waiting(c3, leader, "isr-m", b"a")))
    waiting.start()
    try:
        seen = wait_until(
            lambda: (value(scrape(c3, leader), "rillet_purgatory_size",
                           delayed_operation="Produce") >= 1) or (
                not waiting.is_alive() and "answered first"),
            30,
            "the acks=all produce in the Produce purgatory",
        )
    finally:
        waiting.join(30)
    assert seen is True, (f"the produce was answered ({answer}) before a scrape saw it wait; "
                          f"partition now {partition_meta(c3, 'isr-m', 0)}")
    assert answer and answer[0] is not None and answer[0].error_code == 0, answer
    after = scrape(c3, leader)
    assert value(after, "rillet_isr_shrinks_total") >= value(before, "rillet_isr_shrinks_total") + 1
    assert value(after, "rillet_purgatory_size", delayed_operation="Produce") == 0
    assert len(partition_meta(c3, "isr-m", 0, via=[leader]).isr) == 2  # the leader's image
    urp = ("rillet_partition_under_replicated", (("partition", "0"), ("topic", "isr-m")))
    assert after.get(urp) == 1 and value(after, "rillet_under_replicated_partitions") >= 1
    c3.start_broker(follower)
    c3.wait_ready(45, broker_ids=[follower])
    full_isr(c3, "isr-m")
    wait_until(
        lambda: value(scrape(c3, leader), "rillet_isr_expands_total")
        >= value(before, "rillet_isr_expands_total") + 1,
        30,
        "the ISR expand to be counted",
    )
    wait_until(lambda: value(scrape(c3, leader), "rillet_under_replicated_partitions") == 0,
               30, "the under-replicated gauge to fall")
    assert urp not in scrape(c3, leader)
