"""Classic groups in the group coordinator actor (actors/group_classic.py): the real actor
and core over a fake ``__consumer_offsets`` log whose appends the test may hold, and a fake
clock. Parked JoinGroup/SyncGroup answered when the rebalance completes (the SyncGroups only
once the group's record is durable), session expiry on the tick, one kind per group id,
DeleteGroups, and a new coordinator that reloads the group from the log."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import cbor2
import pytest
from rillet.actors import group_classic as CL
from rillet.actors import group_coordinator as GC
from rillet.actors import partition as R
from rillet.actors.runtime import DispatchedActor
from rillet.coordinator import groups as G
from rillet.coordinator.groups.classic import JoinResponse, SyncResponse
from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
from rillet.logstore.batch import decode_records, iter_batches, stamp
from rillet.transport import protocol as P

from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)
E = P.ErrorCode


class Log(DispatchedActor):
    """A partition's log kept across coordinators; ``hold`` keeps appends unacknowledged
    until ``("ack",)``."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[int, bytes]] = []
        self.end = 0
        self.hold = False
        self.waiting: list = []

    def on_receive(self, message):
        match message:
            case R.Read():
                data = b"".join(b for end, b in self.batches if message.fetch_offset < end)
                message.reply(P.FetchPartitionResponse(partition=0, high_watermark=self.end,
                                                       records=data))
            case R.Append():
                buf = bytearray(bytes(message.records))
                stamp(buf, 0, self.end, 0)
                self.end = next(iter_batches(bytes(buf)))[0].next_offset
                self.batches.append((self.end, bytes(buf)))
                if self.hold:
                    self.waiting.append(message.reply)
                else:
                    message.reply(P.ProducePartitionResponse(partition=0))
            case ("hold", flag):
                self.hold = flag
            case ("ack",):
                for reply in self.waiting:
                    reply(P.ProducePartitionResponse(partition=0))
                self.waiting = []
            case ("records",):
                out = []
                for _end, b in self.batches:
                    for _h, mv in iter_batches(b, validate=True):
                        for rec in decode_records(mv, validate=False):
                            key = cbor2.loads(rec.key)
                            if isinstance(key, dict) and key.get("type") != "load_barrier":
                                out.append(G.from_kv(key, None if rec.value is None
                                                     else cbor2.loads(rec.value)))
                return out
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


IMAGE = MetadataImage(topics={GC.OFFSETS_TOPIC: TopicInfo(
    name=GC.OFFSETS_TOPIC, topic_id="o", partitions={0: PartitionInfo(
        partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})})


class Coordinator:
    def __init__(self, log, clock: Clock) -> None:
        ctx = SimpleNamespace(broker_id=1, controller=None, replicas={(GC.OFFSETS_TOPIC, 0): log},
                              broker_configs={"group.initial.rebalance.delay.ms": "0"})
        self.actor = GC.GroupCoordinatorActor.start(ctx, clock=clock)
        self.clock = clock
        self.answers: dict[str, list] = {}
        self._lock = threading.Lock()
        self.actor.tell(GC.ImageChanged(IMAGE))
        wait_until(self._loaded, what="the shard to load")

    def _loaded(self) -> bool:
        self.send("probe", P.OffsetFetchRequest(group_id="g"))
        self.barrier()
        return self.got("probe")[-1].error_code == 0

    def send(self, name: str, request) -> None:
        def respond(response, name=name) -> None:
            with self._lock:
                self.answers.setdefault(name, []).append(response)
        self.actor.tell(GC.GroupRequest(request, respond))

    def got(self, name: str) -> list:
        with self._lock:
            return list(self.answers.get(name, ()))

    def last(self, name: str):
        wait_until(lambda: self.got(name), what=f"an answer to {name}")
        return self.got(name)[-1]

    def barrier(self) -> None:
        self.actor.ask(GC.GroupTick(self.clock.now))

    def join(self, name: str, member_id: str = "", protocols=(("range", b"m"),), **kw) -> None:
        self.send(name, CL.ClassicJoin(
            group_id=kw.pop("group_id", "g"), member_id=member_id, group_instance_id=None,
            client_id=name, client_host="", session_timeout_ms=kw.pop("session", 10_000),
            rebalance_timeout_ms=10_000, protocol_type="consumer", protocols=protocols,
            require_known_member_id=kw.pop("require", False)))

    def sync(self, name: str, member_id: str, generation: int, assignments=()) -> None:
        self.send(name, CL.ClassicSync(group_id="g", member_id=member_id, group_instance_id=None,
                                       generation_id=generation, protocol_type="consumer",
                                       protocol_name=None, assignments=assignments))

    def heartbeat(self, name: str, member_id: str, generation: int) -> None:
        self.send(name, CL.ClassicHeartbeat(group_id="g", member_id=member_id,
                                            group_instance_id=None, generation_id=generation))

    def stop(self) -> None:
        self.actor.stop()


@pytest.fixture
def log():
    ref = Log.start()
    yield ref
    ref.stop()


def settle_two(c: Coordinator) -> tuple[JoinResponse, JoinResponse]:
    """Member a joins (MEMBER_ID_REQUIRED first) and is alone in generation 1; b joins and
    waits until a has rejoined; generation 2: a leads and assigns. Returns their joins."""
    c.join("a0", require=True)
    first = c.last("a0")
    assert first.error == E.MEMBER_ID_REQUIRED and first.member_id.startswith("a0-")
    c.join("a", member_id=first.member_id)
    a = c.last("a")
    assert a.generation_id == 1 and a.leader == a.member_id == first.member_id
    c.sync("sa", a.member_id, 1, ((a.member_id, b"all"),))
    assert c.last("sa").assignment == b"all"
    c.join("b")
    c.barrier()
    assert c.got("b") == []  # parked until every member has rejoined
    c.heartbeat("ha", a.member_id, 1)
    assert c.last("ha").code == E.REBALANCE_IN_PROGRESS
    c.join("a2", member_id=a.member_id)
    a, b = c.last("a2"), c.last("b")
    assert a.generation_id == b.generation_id == 2 and a.leader == b.leader == a.member_id
    assert {m[0] for m in a.members} == {a.member_id, b.member_id} and b.members == ()
    c.sync("sb", b.member_id, 2)
    c.barrier()
    assert c.got("sb") == []  # parked until the leader's assignment
    c.sync("sa2", a.member_id, 2, ((a.member_id, b"A"), (b.member_id, b"B")))
    assert c.last("sa2") == SyncResponse(0, "consumer", "range", b"A")
    assert c.last("sb") == SyncResponse(0, "consumer", "range", b"B")
    return a, b


def test_syncgroup_answers_wait_for_the_group_record_to_be_durable(log) -> None:
    c = Coordinator(log, Clock())
    try:
        c.join("a")
        a = c.last("a")
        log.ask(("hold", True))
        c.sync("sa", a.member_id, a.generation_id, ((a.member_id, b"A"),))
        wait_until(lambda: log.ask(("records",))[-1:] and isinstance(
            log.ask(("records",))[-1], CL.CR.ClassicGroupRecord), what="the group record")
        c.barrier()
        assert c.got("sa") == []  # written, not yet acknowledged
        log.ask(("ack",))
        assert c.last("sa").assignment == b"A"
        record = log.ask(("records",))[-1]
        assert record.value["generation"] == 1 and record.value["leader"] == a.member_id
        assert record.value["members"][0]["assignment"] == b"A"
    finally:
        c.stop()


def test_a_silent_member_expires_on_the_tick_and_the_other_rejoins(log) -> None:
    clock = Clock()
    c = Coordinator(log, clock)
    try:
        a, b = settle_two(c)
        clock.now += 6_000
        c.heartbeat("ok", a.member_id, 2)
        assert c.last("ok") is None  # all is well
        clock.now += 6_000  # b silent for 12 s > its 10 s session
        c.barrier()
        c.heartbeat("rejoin", a.member_id, 2)
        assert c.last("rejoin").code == E.REBALANCE_IN_PROGRESS
        c.join("a3", member_id=a.member_id)
        again = c.last("a3")
        assert again.generation_id == 3 and [m[0] for m in again.members] == [a.member_id]
        c.heartbeat("hb", b.member_id, 2)
        assert c.last("hb").code == E.UNKNOWN_MEMBER_ID
    finally:
        c.stop()


def test_one_kind_per_group_id(log) -> None:
    c = Coordinator(log, Clock())
    try:
        settle_two(c)
        c.send("kip848_on_classic", P.ConsumerGroupHeartbeatRequest(
            group_id="g", member_id="x", member_epoch=0, rebalance_timeout_ms=1000,
            subscribed_topic_names=("t",)))
        assert c.last("kip848_on_classic").error_code == E.GROUP_ID_NOT_FOUND
        c.send("kip848_new", P.ConsumerGroupHeartbeatRequest(
            group_id="n", member_id="x", member_epoch=0, rebalance_timeout_ms=1000,
            subscribed_topic_names=("t",)))
        assert c.last("kip848_new").error_code == 0
        c.join("classic", group_id="n")
        assert c.last("classic").code == E.INCONSISTENT_GROUP_PROTOCOL
    finally:
        c.stop()


def test_commits_are_checked_against_the_generation_and_stored_as_offsets(log) -> None:
    c = Coordinator(log, Clock())
    try:
        a, _b = settle_two(c)

        def commit(name: str, member: str, generation: int, offset: int) -> int:
            c.send(name, P.OffsetCommitRequest(
                group_id="g", member_id=member, member_epoch=generation,
                topics=(P.OffsetCommitTopic(name="t", partitions=(
                    P.OffsetCommitPartition(partition=0, committed_offset=offset),)),)))
            r = c.last(name)
            return r.error_code or r.topics[0].partitions[0].error_code

        assert commit("ok", a.member_id, 2, 7) == 0
        assert commit("stale", a.member_id, 1, 9) == E.ILLEGAL_GENERATION
        assert commit("stranger", "nobody", 2, 9) == E.UNKNOWN_MEMBER_ID
        assert commit("admin", "", -1, 9) == E.UNKNOWN_MEMBER_ID  # the group has members
        c.send("fetch", P.OffsetFetchRequest(group_id="g"))
        assert c.last("fetch").topics[0].partitions[0].committed_offset == 7
    finally:
        c.stop()


def test_a_new_coordinator_reloads_the_group_from_the_log(log) -> None:
    clock = Clock()
    c = Coordinator(log, clock)
    a, b = settle_two(c)
    c.send("commit", P.OffsetCommitRequest(
        group_id="g", member_id=a.member_id, member_epoch=2,
        topics=(P.OffsetCommitTopic(name="t", partitions=(
            P.OffsetCommitPartition(partition=2, committed_offset=5),)),)))
    assert c.last("commit").topics[0].partitions[0].error_code == 0
    c.join("parked", member_id="")  # a newcomer's join is parked in the rebalance...
    c.barrier()
    c.stop()
    c2 = Coordinator(log, clock)
    try:
        c2.heartbeat("hb", b.member_id, 2)  # the members carry on, same generation
        assert c2.last("hb") is None
        c2.send("describe", CL.ClassicDescribe(group_ids=("g",)))
        [d] = c2.last("describe")
        assert d["state"] == "Stable" and d["generation_id"] == 2
        assert {m["member_id"]: m["assignment"] for m in d["members"]} == {
            a.member_id: b"A", b.member_id: b"B"}
        c2.send("fetch", P.OffsetFetchRequest(group_id="g"))
        assert c2.last("fetch").topics[0].partitions[0].committed_offset == 5
        c2.heartbeat("old", a.member_id, 1)
        assert c2.last("old").code == E.ILLEGAL_GENERATION
    finally:
        c2.stop()


def test_delete_groups_refuses_a_live_group_and_forgets_an_empty_one(log) -> None:
    c = Coordinator(log, Clock())
    try:
        a, b = settle_two(c)
        c.send("del1", P.DeleteGroupsRequest(groups_names=("g",)))
        assert c.last("del1").results[0].error_code == E.NON_EMPTY_GROUP
        c.send("leave", CL.ClassicLeave(group_id="g", members=((a.member_id, None),
                                                               (b.member_id, None))))
        assert c.last("leave") == [None, None]
        c.send("list1", CL.ClassicList())
        assert c.last("list1") == [("g", "consumer", "Empty", "classic")]
        c.send("del2", P.DeleteGroupsRequest(groups_names=("g",)))
        assert c.last("del2").results[0].error_code == 0
        assert log.ask(("records",))[-1] == CL.CR.ClassicGroupRecord(group_id="g", value=None)
        c.send("list2", CL.ClassicList())
        assert c.last("list2") == []
    finally:
        c.stop()


def test_a_parked_join_is_answered_not_coordinator_when_the_shard_moves(log) -> None:
    c = Coordinator(log, Clock())
    try:
        a, _b = settle_two(c)
        c.join("newcomer")  # parked: a and b must rejoin first
        c.barrier()
        assert c.got("newcomer") == []
        c.actor.tell(GC.ImageChanged(MetadataImage()))
        assert c.last("newcomer").code == E.NOT_COORDINATOR
    finally:
        c.stop()


def test_an_emptied_classic_group_id_serves_kip848_members_and_their_commits(log) -> None:
    c = Coordinator(log, Clock())
    try:
        a, b = settle_two(c)
        c.send("leave", CL.ClassicLeave(group_id="g", members=((a.member_id, None),
                                                               (b.member_id, None))))
        assert c.last("leave") == [None, None]
        c.send("join848", P.ConsumerGroupHeartbeatRequest(
            group_id="g", member_id="k", member_epoch=0, rebalance_timeout_ms=1000,
            subscribed_topic_names=("t",)))
        joined = c.last("join848")
        assert joined.error_code == 0 and joined.member_epoch > 0
        c.send("commit848", P.OffsetCommitRequest(
            group_id="g", member_id="k", member_epoch=joined.member_epoch,
            topics=(P.OffsetCommitTopic(name="t", partitions=(
                P.OffsetCommitPartition(partition=0, committed_offset=3),)),)))
        r = c.last("commit848")
        assert r.error_code == 0 and r.topics[0].partitions[0].error_code == 0
        c.join("late")  # and now a classic client is refused: the id is a KIP-848 group's
        assert c.last("late").code == E.INCONSISTENT_GROUP_PROTOCOL
    finally:
        c.stop()
