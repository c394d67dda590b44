"""The sources of the second half of the broker metrics (actors/metrics_sources.py) and their
exposition (actors/metrics_families.py): Raft stats from real Raft cores, ISR shrinks and
expands from real image changes, the purgatories, consumer group lag from real coordinator
states; then all of them through a real MetricsServer scrape."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families
from rillet.actors import fetch_session as FS
from rillet.actors import metrics_sources as MS
from rillet.actors.metrics import BrokerMetrics, MetricsServer
from rillet.actors.session import SessionState
from rillet.coordinator.control.delta import local_changes
from rillet.coordinator.groups.model import ConsumerGroup, CoordinatorState, OffsetAndMetadata
from rillet.coordinator.metadata import BrokerInfo, MetadataImage, PartitionInfo, TopicInfo

from tests.sim.raft_harness import Harness
from tests.unit.actors.test_fetch_session import Timers, answer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_raft_stats_follow_a_real_quorum_and_time_each_commit_once() -> None:
    h = Harness(3)
    leader = h.elect(1)
    clock = FakeClock()
    stats = MS.RaftStats(clock)
    h.blocked.add(3)  # voter 3 hears nothing: it falls behind
    index = h.propose(1, b"a")
    stats.proposed(index)
    clock.now += 0.004
    h.deliver_all()  # voter 2 acknowledges: committed with a majority
    h.heartbeat()
    stats.observe(leader, leader.applied_index)
    assert stats.role == "leader" and stats.leader == 1 and stats.epoch == leader.term
    assert stats.log_end_offset == leader.log.last_index == index
    assert stats.high_watermark == leader.commit_index == index
    assert stats.voter_lag[2] == 0
    assert stats.voter_lag[3] == index - leader.state.progress[3].match_index >= 1
    buckets, total = stats.histogram()
    assert sum(buckets) == 1 and abs(total - 0.004) < 1e-9
    assert buckets[MS.RAFT_BUCKETS.index(0.005)] == 1  # 4 ms lands in the 5 ms bucket
    stats.observe(leader, leader.applied_index)  # observed once, not per call
    assert sum(stats.histogram()[0]) == 1
    h.blocked.clear()
    h.heartbeat()
    h.heartbeat()
    stats.observe(leader, leader.applied_index)
    assert stats.voter_lag == {2: 0, 3: 0}
    follower = h.nodes[2]
    stats2 = MS.RaftStats(clock)
    stats2.observe(follower, follower.applied_index)
    assert stats2.role == "follower" and stats2.leader == 1 and stats2.voter_lag == {}


def _image(isr: tuple[int, ...], leader: int = 1, epoch: int = 5) -> MetadataImage:
    parts = {0: PartitionInfo(0, replicas=(1, 2, 3), isr=isr, leader=leader, leader_epoch=epoch)}
    brokers = {b: BrokerInfo(b, "h", 1, fenced=False) for b in (1, 2, 3)}
    return MetadataImage(brokers=brokers, topics={"t": TopicInfo("t", "id", parts)})


def _isr_change(old: MetadataImage, new: MetadataImage, me: int = 1) -> tuple[int, int]:
    changed = local_changes(old, new, me, {("t", 0)}).changed
    return MS.count_isr_changes(old, new, changed, me)


def test_isr_shrinks_and_expands_are_counted_on_the_leader_only() -> None:
    full, shrunk = _image((1, 2, 3)), _image((1, 3))
    assert _isr_change(full, shrunk) == (1, 0)
    assert _isr_change(shrunk, full) == (0, 1)
    assert _isr_change(full, shrunk, me=2) == (0, 0)  # a follower does not count it
    # a new leader (a new leader epoch) with a smaller ISR is an election, not a shrink
    assert _isr_change(full, _image((2, 3), leader=2, epoch=6), me=2) == (0, 0)
    assert _isr_change(full, full) == (0, 0)
    sources = MS.MetricSources()
    old, new = full, shrunk
    sources.isr_changed(old, new, local_changes(old, new, 1, {("t", 0)}).changed, 1)
    sources.isr_changed(new, old, local_changes(new, old, 1, {("t", 0)}).changed, 1)
    assert (sources.isr_shrinks, sources.isr_expands) == (1, 1)


def test_produce_purgatory_counts_acks_all_requests_until_answered_once() -> None:
    sources = MS.MetricSources()
    got: list = []
    a = sources.delaying(got.append)
    b = sources.delaying(got.append)
    assert sources.delayed_produce == 2
    a("answer")
    a("again")  # a second answer is passed on but not counted twice
    assert sources.delayed_produce == 1 and got == ["answer", "again"]
    b("answer")
    assert sources.delayed_produce == 0


def test_fetch_purgatory_counts_parked_sessions_and_follower_polls() -> None:
    states = [SessionState(), SessionState()]
    states[0].parked.update({object(), object()})
    router = SimpleNamespace(session_states=lambda: [(None, s) for s in states])
    timers = Timers()
    sessions = FS.FetchSessions(FS.Counters(), timers.call_later)
    s = sessions.open(2)
    assert MS.parked_fetches([router], sessions) == 2
    poll, gens = s.begin(0, [("a", 0)], [], lambda _r: None, 1000,
                         min_bytes=1, max_bytes=1 << 20, max_wait_ms=500)
    assert MS.parked_fetches([router], sessions) == 2  # waiting for its partition: not parked
    s.immediate(poll, ("a", 0), gens[("a", 0)], answer(0, 5))
    assert MS.parked_fetches([router], sessions) == 3  # nothing new: parked
    timers.fire()
    assert MS.parked_fetches([router], sessions) == 2


def _shard(groups: dict, loaded: bool = True):
    return SimpleNamespace(loaded=loaded, state=CoordinatorState(groups=groups))


def test_group_lag_is_high_watermark_minus_committed_where_the_broker_knows_it() -> None:
    g = ConsumerGroup(group_id="g", offsets={
        ("t", 0): OffsetAndMetadata(offset=4), ("t", 1): OffsetAndMetadata(offset=9),
        ("other", 0): OffsetAndMetadata(offset=1)})
    hidden = ConsumerGroup(group_id="loading", offsets={("t", 0): OffsetAndMetadata(offset=0)})
    shards = {0: _shard({"g": g}), 1: _shard({"loading": hidden}, loaded=False)}
    offsets = sorted(MS.committed_offsets(shards))
    assert offsets == [("g", "other", 0, 1), ("g", "t", 0, 4), ("g", "t", 1, 9)]
    lag = sorted(MS.group_lag(offsets, {("t", 0): 10, ("t", 1): 9}))
    assert lag == [("g", "t", 0, 6), ("g", "t", 1, 0)]  # ("other", 0): no HW known here


def _scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_every_new_family_is_served_in_the_prometheus_format() -> None:
    parts = {0: PartitionInfo(0, replicas=(1, 2), isr=(1, 2), leader=1, leader_epoch=0),
             1: PartitionInfo(1, replicas=(2, 1), isr=(2, 1), leader=2, leader_epoch=0)}
    image = MetadataImage(brokers={b: BrokerInfo(b, "h", 1, fenced=False) for b in (1, 2)},
                          topics={"t": TopicInfo("t", "id", parts)})
    ctx = SimpleNamespace(broker_id=1, image=image, controller_id=1,
                          broker_configs={}, describe_stats=None, counter_values=dict)
    m = BrokerMetrics()
    src = m.sources
    h = Harness(3)
    leader = h.elect(1)
    src.raft.proposed(h.propose(1, b"x"))
    h.deliver_all()
    h.heartbeat()
    src.raft.observe(leader, leader.applied_index)
    src.isr_shrinks, src.isr_expands = 2, 1
    src.delaying(lambda _r: None)
    src.parked_fetches = lambda: 3
    src.high_watermarks = {("t", 0): 10, ("t", 1): 7, ("gone", 0): 99}
    src.group_shards = {0: _shard({"g": ConsumerGroup(group_id="g", offsets={
        ("t", 0): OffsetAndMetadata(offset=4), ("t", 1): OffsetAndMetadata(offset=7)})})}
    server = MetricsServer(ctx, m, "127.0.0.1", 0)
    try:
        s = _scrape(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()

    def v(name, **labels):
        return s[(name, tuple(sorted(labels.items())))]

    assert v("rillet_broker_info", broker_id="1") == 1
    assert v("rillet_raft_commit_latency_seconds_count") == 1
    assert v("rillet_raft_current_leader") == 1
    assert v("rillet_raft_current_epoch") == leader.term
    assert v("rillet_raft_high_watermark") == v("rillet_raft_log_end_offset") == leader.log.last_index
    assert v("rillet_raft_voter_lag", voter="2") == v("rillet_raft_voter_lag", voter="3") == 0
    assert v("rillet_isr_shrinks_total") == 2 and v("rillet_isr_expands_total") == 1
    assert v("rillet_purgatory_size", delayed_operation="Produce") == 1
    assert v("rillet_purgatory_size", delayed_operation="Fetch") == 3
    assert v("rillet_partition_high_watermark", topic="t", partition="0") == 10
    assert ("rillet_partition_high_watermark", (("partition", "1"), ("topic", "t"))) not in s
    assert v("rillet_consumer_group_committed_offset", group="g", topic="t", partition="0") == 4
    assert v("rillet_consumer_group_lag", group="g", topic="t", partition="0") == 6
    assert v("rillet_consumer_group_lag", group="g", topic="t", partition="1") == 0  # a follower's HW


def test_observers_export_no_raft_families() -> None:
    ctx = SimpleNamespace(broker_id=4, image=MetadataImage(), controller_id=1,
                          broker_configs={}, describe_stats=None, counter_values=dict)
    server = MetricsServer(ctx, BrokerMetrics(), "127.0.0.1", 0)
    try:
        s = _scrape(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()
    assert not any(name.startswith("rillet_raft_") for name, _ in s)
    assert s[("rillet_purgatory_size", (("delayed_operation", "Fetch"),))] == 0


def test_records_out_are_counted_from_the_batch_headers_of_fetch_responses_only() -> None:
    from rillet.logstore.batch import BatchBuilder
    from rillet.transport import protocol as P

    def batch(n: int) -> bytes:
        b = BatchBuilder()
        for i in range(n):
            b.append(1000 + i, None, b"v%d" % i)
        return b.build()

    m = BrokerMetrics()
    records = batch(3) + batch(4)
    m.responded(P.FetchResponse(topics=(P.FetchTopicResponse(name="t", partitions=(
        P.FetchPartitionResponse(partition=0, records=records),
        P.FetchPartitionResponse(partition=1, records=batch(2)),
    )),)))
    snap = m.snapshot()
    assert snap["messages_out"] == {"t": 9}
    assert snap["bytes_out"] == {"t": len(records) + len(batch(2))}


def test_remote_high_watermarks_ask_each_leader_once_and_keep_answers_a_while() -> None:
    from concurrent.futures import Future

    from rillet.actors.metrics_lag import RemoteHighWatermarks
    from rillet.transport import protocol as P

    parts = {p: PartitionInfo(p, replicas=(p + 1,), isr=(p + 1,), leader=p + 1, leader_epoch=0)
             for p in range(3)}
    image = MetadataImage(brokers={b: BrokerInfo(b, "h", 1, fenced=False) for b in (1, 2, 3)},
                          topics={"t": TopicInfo("t", "id", parts)})
    now = [0.0]
    asked: list = []
    dead = {"b3"}

    def request(address, req, timeout_ms):
        asked.append((address, [(t.name, p.partition) for t in req.topics for p in t.partitions]))
        f: Future = Future()
        if address not in dead:  # the dead one never answers: the wait ends at the timeout
            f.set_result(P.ListOffsetsResponse(topics=tuple(
                P.ListOffsetsTopicResponse(name=t.name, partitions=tuple(
                    P.ListOffsetsPartitionResponse(partition=p.partition, offset=10 * (p.partition + 1))
                    for p in t.partitions)) for t in req.topics)))
        return f

    r = RemoteHighWatermarks(request, lambda b: f"b{b}", timeout_ms=50, ttl_s=5.0,
                             clock=lambda: now[0])
    wanted = {("t", 0), ("t", 1), ("t", 2), ("gone", 0)}
    assert r.get(wanted, image) == {("t", 0): 10, ("t", 1): 20}
    assert sorted(asked) == [("b1", [("t", 0)]), ("b2", [("t", 1)]), ("b3", [("t", 2)])]
    asked.clear()
    now[0] = 1.0  # answers are fresh, and the dead leader was asked a moment ago
    assert r.get(wanted, image) == {("t", 0): 10, ("t", 1): 20} and asked == []
    now[0] = 6.0  # stale: asked again; the dead leader's partition is still unknown
    dead.clear()
    assert r.get(wanted, image) == {("t", 0): 10, ("t", 1): 20, ("t", 2): 30}
    assert len(asked) == 3
