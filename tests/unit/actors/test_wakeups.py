"""Broker-wide actors woken only when something is due (issue #12, actors/wakeup.py): with
nothing to do no timer is armed (or only a slow one), a new deadline arms one at that
deadline, and the work happens when it fires. The timers are recorded by a fake
``schedule`` and fired by the test; the actors' clocks are fake where deadlines matter."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from rillet.actors import group_coordinator as GC
from rillet.actors import share_partition as SP
from rillet.actors import share_state as SST
from rillet.actors import txn_coordinator as TC
from rillet.actors.partition_messages import ScrubReport
from rillet.actors.scrubber import IN_FLIGHT_TIMEOUT_MS, RESYNC_MS, Scrubber, ScrubTick
from rillet.actors.txn_markers import MarkerSender, _Pending, _Try
from rillet.actors.wakeup import Wakeup
from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
from rillet.transport import protocol as P

from tests.support import wait_until
from tests.unit.actors.test_group_coordinator_polls import FakeOffsetsReplica
from tests.unit.actors.test_share_partition_manager import DeadLetters, FakeReplica, HeldStore

pytestmark = pytest.mark.timeout(60)


class _Timer:
    def __init__(self, delay_s: float, fn) -> None:
        self.delay_s, self.fn, self.cancelled = delay_s, fn, False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """A fake ``ticker.call_later``: records the timers; ``fire`` runs the live ones."""

    def __init__(self) -> None:
        self.all: list[_Timer] = []

    def __call__(self, delay_s: float, fn) -> _Timer:
        t = _Timer(delay_s, fn)
        self.all.append(t)
        return t

    def live(self) -> list[_Timer]:
        return [t for t in self.all if not t.cancelled]

    def fire(self) -> None:
        for t in self.live():
            t.cancel()
            t.fn()


class Clock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


# ------------------------------------------------------------------------------- Wakeup


def test_one_timer_re_armed_only_for_an_earlier_deadline_never_sooner_than_the_period():
    timers, clock, told = Timers(), Clock(0), []
    w = Wakeup(timers, clock, lambda now: ("tick", now), period_ms=100)
    w.bind(SimpleNamespace(tell=told.append))
    w.arm(None, 0)
    assert timers.live() == []  # nothing due: nothing armed
    w.arm(5_000, 0)
    w.arm(7_000, 0)  # later: the armed one stays
    assert [t.delay_s for t in timers.live()] == [5.0]
    w.arm(2_000, 0)  # earlier: re-armed
    assert [t.delay_s for t in timers.live()] == [2.0]
    clock.now = 2_000
    timers.fire()
    assert told == [("tick", 2_000)]
    w.ticked(2_000)
    w.arm(1_000, 2_000)  # past due (a tick could not finish it): at the old tick's pace
    assert [t.delay_s for t in timers.live()] == [0.1]
    w.cancel()
    assert timers.live() == []


# ----------------------------------------------------------------------------- Scrubber


def test_an_idle_scrubber_wakes_once_a_second_and_a_step_waits_for_its_budget():
    timers, clock = Timers(), Clock(T0 := 1_000_000)
    replicas = {("t", 0): SimpleNamespace(tell=lambda m: None)}
    s = Scrubber(1, lambda: replicas, 1 << 20, 10_000, schedule=timers, clock=clock)
    s._wake.bind(SimpleNamespace(tell=lambda m: None))
    s.on_receive(ScrubTick(T0))  # the first tick: no budget yet, one step due
    # 64 KiB of a 1 MiB/s budget: 63 ms, but never sooner than the old 100 ms tick
    assert [t.delay_s for t in timers.live()] == [0.1]
    clock.now = T0 + 100
    s.on_receive(ScrubTick(T0 + 100))
    assert s.in_flight is not None
    assert [t.delay_s for t in timers.live()] == [IN_FLIGHT_TIMEOUT_MS / 1000]  # its timeout
    s.on_receive(_done(s, ("t", 0)))
    # the pass is done, the next one is 10 s away: a look at the hosted set every second
    clock.now = T0 + 300
    s.on_receive(ScrubTick(T0 + 300))
    [t] = timers.live()
    assert t.delay_s == pytest.approx((100 + RESYNC_MS - 300) / 1000)


def _done(s: Scrubber, key):
    from rillet.actors.scrubber import _Done

    return _Done(key, ScrubReport(1 << 16, True, 0, False))


# --------------------------------------------------------------------------- share-state


def _state_image(leader: int) -> MetadataImage:
    parts = {0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=leader,
                              leader_epoch=1)}
    return MetadataImage(topics={SST.SHARE_STATE_TOPIC: TopicInfo(
        name=SST.SHARE_STATE_TOPIC, topic_id="s", partitions=parts)})


def test_share_state_arms_only_to_retry_a_load():
    timers = Timers()
    ctx = SimpleNamespace(broker_id=1, replicas={})  # the replica does not exist yet
    actor = SST.ShareStateActor.start(ctx, schedule=timers)
    try:
        actor.ask(SST.ImageChanged(_state_image(leader=2)))
        assert timers.live() == []  # nothing led: nothing due
        actor.ask(SST.ImageChanged(_state_image(leader=1)))
        [t] = timers.live()  # the load waits for the replica: retried
        t.cancel()
        t.fn()
        actor.ask(SST.ImageChanged(_state_image(leader=1)))  # a barrier: the tick was handled
        [t] = timers.live()
        assert t.delay_s == pytest.approx(SST.TICK_MS / 1000, abs=0.05)  # at the old pace
        actor.ask(SST.ImageChanged(_state_image(leader=2)))
        # the shard is gone; the armed retry fires once, finds nothing and arms nothing
        timers.fire()
        actor.ask(SST.ImageChanged(_state_image(leader=2)))
        assert timers.live() == []
    finally:
        actor.stop()


# --------------------------------------------------------------------------- transactions


def test_marker_sender_is_due_at_its_next_retry_and_not_while_in_flight():
    sender = MarkerSender(lambda leader, request, token: None)
    assert sender.next_due_ms() is None
    pending = _Pending(effect=None)  # type: ignore[arg-type]
    sender.pending["x"] = pending  # type: ignore[index]
    pending.remaining["t-0"] = _Try(next_try_ms=500)  # type: ignore[index]
    pending.remaining["t-1"] = _Try(next_try_ms=100, in_flight=True)  # type: ignore[index]
    assert sender.next_due_ms() == 500


def _txn_image(leader: int) -> MetadataImage:
    parts = {0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=leader,
                              leader_epoch=1)}
    return MetadataImage(topics={TC.TXN_TOPIC: TopicInfo(name=TC.TXN_TOPIC, topic_id="x",
                                                         partitions=parts)})


def test_txn_coordinator_idle_arms_nothing_and_a_missing_replica_is_retried():
    timers = Timers()
    ctx = SimpleNamespace(broker_id=1, replicas={}, controller=None, image=MetadataImage(),
                          broker_configs={})
    actor = TC.TxnCoordinatorActor.start(ctx, lambda *a: None, schedule=timers)
    try:
        actor.ask(TC.ImageChanged(_txn_image(leader=2)))
        assert timers.live() == []
        actor.ask(TC.ImageChanged(_txn_image(leader=1)))
        [t] = timers.live()
        t.cancel()
        t.fn()
        actor.ask(TC.ImageChanged(_txn_image(leader=1)))
        [t] = timers.live()
        assert t.delay_s == pytest.approx(TC.TICK_MS / 1000, abs=0.05)
    finally:
        actor.stop()


# ----------------------------------------------------------------------- group coordinator


def test_group_coordinator_wakes_for_a_held_heartbeat_and_otherwise_only_for_offset_expiry():
    timers = Timers()
    replica = FakeOffsetsReplica.start(True)
    ctx = SimpleNamespace(
        broker_id=1, controller=None,
        broker_configs={"group.consumer.heartbeat.interval.ms": "10000"},
        replicas={(GC.OFFSETS_TOPIC, 0): replica})
    actor = GC.GroupCoordinatorActor.start(ctx, schedule=timers)
    try:
        assert actor.ask(GC.GroupTick(0)) is None and timers.live() == []  # nothing led
        offsets = TopicInfo(name=GC.OFFSETS_TOPIC, topic_id="o", partitions={
            0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})
        topic = TopicInfo(name="t", topic_id="t", partitions={
            0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})
        actor.tell(GC.ImageChanged(MetadataImage(topics={GC.OFFSETS_TOPIC: offsets,
                                                         "t": topic})))
        answers: list = []

        def loaded() -> bool:
            box: list = []
            actor.ask(GC.GroupRequest(P.OffsetFetchRequest(group_id="g"), box.append))
            return bool(box) and box[0].error_code == 0

        wait_until(loaded, 10, "the shard to load")
        timers.fire()  # the first offset expiry (due at once), then the next in a minute
        actor.ask(GC.GroupRequest(P.OffsetFetchRequest(group_id="g"), answers.append))
        [t] = timers.live()
        assert t.delay_s == pytest.approx(60, abs=1)
        # a member joins (its session deadline: 45 s), then polls with max_wait_ms=300
        actor.ask(GC.GroupRequest(P.ConsumerGroupHeartbeatRequest(
            group_id="g", member_id="m", member_epoch=0, rebalance_timeout_ms=10_000,
            subscribed_topic_names=("t",)), answers.append))
        wait_until(lambda: answers and answers[-1].member_epoch > 0, 10, "the join answer")
        joined = answers[-1]
        polled: list = []
        actor.ask(GC.GroupRequest(P.ConsumerGroupHeartbeatRequest(
            group_id="g", member_id="m", member_epoch=joined.member_epoch,
            owned_partitions=joined.assignment, max_wait_ms=300), polled.append))
        actor.ask(GC.GroupRequest(P.OffsetFetchRequest(group_id="g"), answers.append))
        assert polled == []  # held
        [t] = timers.live()
        assert t.delay_s <= 0.3  # armed for the held heartbeat's deadline
        time.sleep(0.35)  # the deadline passes (real clock); the timer "fires" now
        t.cancel()
        t.fn()
        wait_until(lambda: polled, 5, "the held heartbeat's answer")
        actor.ask(GC.GroupRequest(P.OffsetFetchRequest(group_id="g"), answers.append))
        [t] = timers.live()  # now the member's session deadline (45 s) is the next
        assert 30 < t.delay_s <= 45
    finally:
        actor.stop()
        replica.stop()


# ------------------------------------------------------------------- share-partitions


def test_share_partitions_wake_at_the_lock_expiry_and_release_the_records():
    timers, clock = Timers(), Clock()
    replica = FakeReplica.start()
    store = HeldStore()
    topic = TopicInfo(name="t", topic_id="t", partitions={
        0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})
    ctx = SimpleNamespace(broker_id=1, broker_configs={}, image=MetadataImage(
        topics={"t": topic}), replicas={("t", 0): replica})
    actor = SP.SharePartitionManager.start(ctx, store, DeadLetters(), clock=clock,
                                           schedule=timers)

    def fetch(member: str) -> list:
        box: list = []
        actor.tell(SP.ShareRequest(P.ShareFetchRequest(
            group_id="g", member_id=member, max_wait_ms=0, max_records=1, acquire_mode=1,
            topics=(P.ShareFetchTopic(name="t", partitions=(
                P.ShareFetchPartition(partition=0),)),)), box.append))
        return box

    try:
        got = fetch("a")
        wait_until(lambda: got, 5, "the fetch answer")
        store.complete(0)
        actor.ask(SP.ImageChanged(ctx.image))  # a barrier
        lock_ms = 30_000  # share.record.lock.duration.ms
        [t] = timers.live()
        assert t.delay_s == pytest.approx(lock_ms / 1000, abs=0.5)
        clock.now += lock_ms
        timers.fire()
        again = fetch("b")
        wait_until(lambda: again, 5, "the second fetch")
        [acq] = again[0].topics[0].partitions[0].acquired_records
        assert (acq.first_offset, acq.delivery_count) == (0, 2)  # released by the tick
    finally:
        actor.stop()
        replica.stop()


def test_group_timers_are_rescanned_only_for_the_groups_whose_timers_changed():
    from rillet.coordinator import groups as G

    a, b = {"m1": 500, "m2": 900}, {"m3": 700}
    shard = GC._Shard(partition=0, leader_epoch=0, generation=0,
                      state=G.CoordinatorState(session_deadlines={"a": a, "b": b},
                                               rebalance_deadlines={"b": {"m3": 800}}))
    assert GC._timers_due(shard) == 500
    a2 = {"m2": 900, "m1": 1_500}  # m1 heartbeats: its group's mapping is replaced
    shard.state = G.CoordinatorState(session_deadlines={"a": a2, "b": b},
                                     rebalance_deadlines={"b": {"m3": 800}})
    assert GC._timers_due(shard) == 700
    shard.state = G.CoordinatorState(session_deadlines={"a": a2})  # b is gone
    assert GC._timers_due(shard) == 900
    assert GC._timers_due(shard) == shard.state.next_deadline_ms()
