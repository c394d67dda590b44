"""The group coordinator actor (actors/group_coordinator.py) with the real core and a fake
``__consumer_offsets`` replica whose appends the test acknowledges: held heartbeats (long
polls) answered on a change of their group or at their deadline, and a shard's queued
operations written as one batch, answered only once it is durable."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import cbor2
import pytest
from rillet.actors import group_coordinator as GC
from rillet.actors import partition as R
from rillet.actors.group_txn import is_barrier_batch
from rillet.actors.runtime import DispatchedActor
from rillet.actors.ticker import now_ms
from rillet.coordinator import groups as G
from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
from rillet.logstore.batch import decode_records, iter_batches
from rillet.transport import protocol as P

from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)


class FakeOffsetsReplica(DispatchedActor):
    """An empty partition; appends are kept until ``ack`` (or acknowledged at once)."""

    def __init__(self, auto_ack: bool) -> None:
        super().__init__()
        self.auto_ack = auto_ack
        self.appends: list[bytes] = []
        self.waiting: list = []

    def on_receive(self, message):
        match message:
            case R.Read():
                message.reply(P.FetchPartitionResponse(partition=0, high_watermark=0))
            case R.Append() if is_barrier_batch(bytes(message.records)):
                message.reply(P.ProducePartitionResponse(partition=0))  # the load barrier
            case R.Append():
                self.appends.append(bytes(message.records))
                if self.auto_ack:
                    message.reply(P.ProducePartitionResponse(partition=0))
                else:
                    self.waiting.append(message.reply)
            case ("ack",):
                reply = self.waiting.pop(0)
                reply(P.ProducePartitionResponse(partition=0))
            case ("count",):
                return len(self.appends), len(self.waiting)
            case ("appends",):
                return list(self.appends)
        return None


class Coordinator:
    """The actor, its fake replica, and the answers it sent (by request name)."""

    def __init__(self, auto_ack: bool, interval_ms: int = 10_000, clock=None) -> None:
        self.replica = FakeOffsetsReplica.start(auto_ack)
        ctx = SimpleNamespace(
            broker_id=1, controller=None,
            broker_configs={"group.consumer.heartbeat.interval.ms": str(interval_ms)},
            replicas={(GC.OFFSETS_TOPIC, 0): self.replica})
        self.actor = (GC.GroupCoordinatorActor.start(ctx) if clock is None
                      else GC.GroupCoordinatorActor.start(ctx, clock=clock))
        self.answers: dict[str, list] = {}
        self._lock = threading.Lock()
        offsets = TopicInfo(name=GC.OFFSETS_TOPIC, topic_id="o", partitions={
            0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})
        topic = TopicInfo(name="t", topic_id="t", partitions={
            p: PartitionInfo(partition=p, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)
            for p in range(4)})
        self.actor.tell(GC.ImageChanged(MetadataImage(topics={GC.OFFSETS_TOPIC: offsets,
                                                              "t": topic})))

    def send(self, name: str, request) -> None:
        def respond(response, name=name) -> None:
            with self._lock:
                self.answers.setdefault(name, []).append(response)

        self.actor.tell(GC.GroupRequest(request, respond))

    def got(self, name: str) -> list:
        with self._lock:
            return list(self.answers.get(name, ()))

    def barrier(self) -> None:
        """Every message told before this one has been handled (one mailbox, in order)."""
        self.actor.ask(GC.GroupTick(0))

    def heartbeat(self, name: str, member: str, epoch: int, owned=(), max_wait_ms: int = 0,
                  **kw) -> None:
        if epoch == 0:
            kw.update(rebalance_timeout_ms=10_000, subscribed_topic_names=("t",))
        self.send(name, P.ConsumerGroupHeartbeatRequest(
            group_id="g", member_id=member, member_epoch=epoch, owned_partitions=owned,
            max_wait_ms=max_wait_ms, **kw))

    def stop(self) -> None:
        self.actor.stop()
        self.replica.stop()


def loaded(c: Coordinator) -> None:
    """Wait for the shard to load (answers stop being COORDINATOR_LOAD_IN_PROGRESS)."""
    def ready() -> bool:
        c.send("probe", P.OffsetFetchRequest(group_id="g"))
        c.barrier()
        return c.got("probe")[-1].error_code == 0
    wait_until(ready, what="the shard to load")


def parts(response) -> frozenset[int]:
    return frozenset(p for t in response.assignment for p in t.partitions)


def members_written(batch: bytes) -> set[str]:
    out = set()
    for _header, mv in iter_batches(batch, validate=True):
        for rec in decode_records(mv, validate=False):
            value = None if rec.value is None else cbor2.loads(rec.value)
            record = G.from_kv(cbor2.loads(rec.key), value)
            member = getattr(record, "member_id", None)
            if member:
                out.add(member)
    return out


def test_queued_operations_are_written_as_one_batch_and_answered_when_durable() -> None:
    c = Coordinator(auto_ack=False)
    try:
        loaded(c)
        c.heartbeat("a", "a", 0)
        wait_until(lambda: c.replica.ask(("count",)) == (1, 1), what="a's append")
        c.heartbeat("b", "b", 0)
        c.heartbeat("c", "c", 0)
        c.barrier()
        assert c.got("a") == [] and c.got("b") == [] and c.got("c") == []  # not yet durable
        assert c.replica.ask(("count",)) == (1, 1)  # one append in flight per shard
        c.replica.tell(("ack",))
        wait_until(lambda: len(c.got("a")) == 1, what="a's answer")
        wait_until(lambda: c.replica.ask(("count",)) == (2, 1), what="the second append")
        c.barrier()
        assert c.got("b") == [] and c.got("c") == []
        second = c.replica.ask(("appends",))[1]
        assert {"b", "c"} <= members_written(second)  # both joins in one batch
        c.replica.tell(("ack",))
        wait_until(lambda: c.got("b") and c.got("c"), what="b and c answered")
        b, cc = c.got("b")[0], c.got("c")[0]
        assert b.error_code == 0 and cc.error_code == 0
        assert cc.member_epoch == b.member_epoch + 1  # c saw b's join in the same batch
    finally:
        c.stop()


def test_a_held_heartbeat_is_answered_when_its_group_changes_or_at_its_deadline() -> None:
    c = Coordinator(auto_ack=True, interval_ms=10_000)
    try:
        loaded(c)
        c.heartbeat("a0", "a", 0)
        wait_until(lambda: c.got("a0"), what="a's join")
        a = c.got("a0")[0]
        assert parts(a) == {0, 1, 2, 3}
        owned = a.assignment
        # nothing new for a: held
        c.heartbeat("a1", "a", a.member_epoch, owned, max_wait_ms=10_000)
        c.barrier()
        assert c.got("a1") == []
        # b joins: a's held heartbeat is handled again and answered with a revocation
        c.heartbeat("b0", "b", 0)
        wait_until(lambda: c.got("a1") and c.got("b0"), what="a woken by b's join")
        r = c.got("a1")[0]
        assert r.error_code == 0 and len(parts(r)) == 2
        b = c.got("b0")[0]
        assert parts(b) == frozenset()  # revoke before assign: a still owns them
        # b waits for its partitions, held
        c.heartbeat("b1", "b", b.member_epoch, (), max_wait_ms=10_000)
        c.barrier()
        assert c.got("b1") == []
        # a revokes: b's held heartbeat is answered with the released partitions
        c.heartbeat("a2", "a", r.member_epoch, r.assignment, max_wait_ms=10_000)
        wait_until(lambda: c.got("b1"), what="b woken by a's revocation")
        assert parts(c.got("b1")[0]) == {0, 1, 2, 3} - parts(r)
        a2 = c.got("a2")[0]  # a's epoch moved: answered at once
        assert a2.member_epoch > r.member_epoch
        # a settled and held again; a new heartbeat of a ends the held one, unchanged
        c.heartbeat("a3", "a", a2.member_epoch, a2.assignment, max_wait_ms=10_000)
        c.barrier()
        assert c.got("a3") == []
        c.heartbeat("a4", "a", a2.member_epoch, a2.assignment, max_wait_ms=10_000)
        c.barrier()
        assert [x.member_epoch for x in c.got("a3")] == [a2.member_epoch]
        assert c.got("a4") == []
        # an offset commit changes the group but tells a nothing: still held
        c.send("commit", P.OffsetCommitRequest(
            group_id="g", member_id="a", member_epoch=a2.member_epoch, topics=(
                P.OffsetCommitTopic(name="t", partitions=tuple(
                    P.OffsetCommitPartition(partition=p, committed_offset=1)
                    for p in parts(a2))),)))
        wait_until(lambda: c.got("commit"), what="the commit")
        c.barrier()
        assert c.got("a4") == []
        # its deadline passed: answered unchanged by the tick
        c.actor.tell(GC.GroupTick(now_ms() + 11_000))
        wait_until(lambda: c.got("a4"), what="a's held heartbeat at its deadline")
        assert c.got("a4")[0].member_epoch == a2.member_epoch
        assert parts(c.got("a4")[0]) == parts(a2)
    finally:
        c.stop()


class FakeClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def __call__(self) -> int:
        return self.now


def test_a_silent_member_leaves_at_its_session_timeout_on_a_fake_clock() -> None:
    """The actor's clock is injected: 45 s of silence pass in no time."""
    clock = FakeClock(1_000_000)
    c = Coordinator(auto_ack=True, clock=clock)
    try:
        loaded(c)
        c.heartbeat("a0", "a", 0)
        wait_until(lambda: c.got("a0"), what="a's join")
        epoch = c.got("a0")[0].member_epoch
        clock.now += 44_000  # within group.consumer.session.timeout.ms (45 s)
        c.actor.tell(GC.GroupTick(clock.now))
        c.heartbeat("a1", "a", epoch, c.got("a0")[0].assignment)
        wait_until(lambda: c.got("a1"), what="a's heartbeat")
        assert c.got("a1")[0].error_code == 0
        clock.now += 45_001  # silent past the timeout
        c.actor.tell(GC.GroupTick(clock.now))
        c.barrier()
        c.heartbeat("a2", "a", epoch)
        wait_until(lambda: c.got("a2"), what="a's late heartbeat")
        assert c.got("a2")[0].error_code == P.ErrorCode.UNKNOWN_MEMBER_ID
    finally:
        c.stop()
