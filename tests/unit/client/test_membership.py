"""The consumer's group membership (rillet/_membership.py) against an in-process fake broker
that runs the REAL pure coordinator core (coordinator/groups) behind the real wire protocol.

Checked: assignment split and handover (never two owners), listener callbacks, commit /
committed / auto-commit (never beyond what poll returned), auto.offset.reset none,
NOT_COORDINATOR re-discovery, fencing (partitions lost, rejoin), regex subscriptions, the
background heartbeat keeping a slow consumer in the group, max.poll.interval.ms leaving.
"""

from __future__ import annotations

import threading
import time

import pytest
from rillet.actors import group_coordinator as gc
from rillet.actors import group_wire as gw
from rillet.coordinator import groups as G
from rillet.transport import protocol as p

from rillet._membership import ConsumerRebalanceListener
from rillet.consumer import Consumer
from rillet.errors import NoOffsetForPartitionError
from rillet.producer import Producer
from rillet.records import TopicPartition
from tests.unit.client.fakebroker import FakeBroker

E = p.ErrorCode


class GroupFakeBroker(FakeBroker):
    """FakeBroker + a synchronous group coordinator (the pure core, no actors, no log)."""

    def __init__(self, session_timeout_ms: int = 2000, heartbeat_interval_ms: int = 100) -> None:
        super().__init__()
        self.core = G.GroupCoordinator(G.GroupConfig(
            session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms))
        self.state = G.CoordinatorState()
        self.group_lock = threading.Lock()
        self.fail_group: dict[str, list[int]] = {}  # api -> error codes to answer next
        self._ticking = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, daemon=True)

    def start(self) -> GroupFakeBroker:
        super().start()
        self._ticker.start()
        return self

    def close(self) -> None:
        self._ticking.set()
        self._ticker.join(5)
        super().close()

    def _tick_loop(self) -> None:
        while not self._ticking.wait(0.05):
            with self.group_lock:
                self.state = self.core.tick(self.state, _now()).state

    def topics(self) -> dict[str, int]:
        return {name: len(logs) for name, logs in self.logs.items()}

    def owners(self, group_id: str = "g") -> dict[TopicPartition, str]:
        with self.group_lock:
            group = self.state.groups.get(group_id)
            return {} if group is None else dict(group.owners())

    def _handle(self, msg):
        if isinstance(msg, p.FindCoordinatorRequest):
            return p.FindCoordinatorResponse(node_id=1, host=self.host, port=self.port)
        if not isinstance(msg, p.GROUP_REQUESTS):
            return super()._handle(msg)
        codes = self.fail_group.get(msg.API)
        if codes:
            return gc.error_response(msg, codes.pop(0), "injected")
        with self.group_lock:
            try:
                return self._group(msg)
            except G.errors.GroupError as e:
                return gc.error_response(msg, e.code, str(e))

    def _group(self, msg):
        now = _now()
        if isinstance(msg, p.ConsumerGroupHeartbeatRequest):
            r = self.core.heartbeat(self.state, gw.heartbeat_request(msg), self.topics(), now)
            self.state = r.state
            return gw.heartbeat_response(r.response)
        if isinstance(msg, p.OffsetCommitRequest):
            r = self.core.commit_offsets(self.state, gw.commit_request(msg), now)
            self.state = r.state
            return gw.commit_response(r.response)
        if isinstance(msg, p.OffsetFetchRequest):
            return gw.fetch_response(msg, self.core.fetch_offsets(self.state,
                                                                   gw.fetch_request(msg)))
        return gc.error_response(msg, E.INVALID_REQUEST, "not in the fake")


def _now() -> int:
    return int(time.time() * 1000)


class Recorder(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, set]] = []

    def on_partitions_revoked(self, revoked):
        self.events.append(("revoked", revoked))

    def on_partitions_assigned(self, assigned):
        self.events.append(("assigned", assigned))

    def on_partitions_lost(self, lost):
        self.events.append(("lost", lost))


@pytest.fixture
def gbroker():
    b = GroupFakeBroker().start()
    try:
        yield b
    finally:
        b.close()


def _consumer(b: FakeBroker, **extra) -> Consumer:
    cfg = {"bootstrap.servers": b.address, "group.id": "g", "auto.offset.reset": "earliest",
           "heartbeat.interval.ms": 100, "retry.backoff.ms": 20, "request.timeout.ms": 3000,
           **extra}
    return Consumer(cfg)


def _produce(b: FakeBroker, topic: str, n: int, partitions: int) -> None:
    with Producer({"bootstrap.servers": b.address, "linger.ms": 0}) as prod:
        for i in range(n):
            prod.send(topic, value=b"%d" % i, partition=i % partitions)
        prod.flush()


def _poll_until(consumers, cond, timeout_s: float = 10.0, check=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        for c in consumers:
            c.poll(20)
        if check:
            check()


@pytest.mark.timeout(30)
def test_two_members_split_then_one_takes_over_without_double_ownership(gbroker) -> None:
    gbroker.create("t", 4)
    r1, r2 = Recorder(), Recorder()
    c1, c2 = _consumer(gbroker, **{"client.id": "one"}), _consumer(gbroker)
    try:
        c1.subscribe(["t"], listener=r1)
        _poll_until([c1], lambda: len(c1.assignment()) == 4)
        assert r1.events == [("assigned", {TopicPartition("t", i) for i in range(4)})]
        c2.subscribe(["t"], listener=r2)

        def no_double_ownership() -> None:
            assert not (c1.assignment() & c2.assignment())

        _poll_until([c1, c2], lambda: len(c1.assignment()) == 2 and len(c2.assignment()) == 2,
                    check=no_double_ownership)
        assert c1.assignment() | c2.assignment() == {TopicPartition("t", i) for i in range(4)}
        assert r1.events[1] == ("revoked", c2.assignment())
        assert r2.events == [("assigned", c2.assignment())]
        c2.close()  # leaves at once: no session timeout to wait for
        _poll_until([c1], lambda: len(c1.assignment()) == 4, timeout_s=1.5)
        assert r2.events[-1] == ("revoked", {TopicPartition("t", i) for i in range(4)} -
                                 c1.assignment() | r2.events[0][1])
    finally:
        c1.close()
        c2.close()


@pytest.mark.timeout(30)
def test_commit_committed_and_a_new_member_resumes_after_the_commit(gbroker) -> None:
    gbroker.create("t", 2)
    _produce(gbroker, "t", 20, 2)
    c1 = _consumer(gbroker, **{"enable.auto.commit": False})
    got: list = []
    try:
        c1.subscribe(["t"])
        _poll_until([], lambda: len(got) >= 6 or got.extend(
            r for rs in c1.poll(50, max_records=3).values() for r in rs) or False)
        c1.commit()
        positions = {tp: c1.position(tp) for tp in c1.assignment()}
        assert c1.committed(list(positions)) == positions
        assert sum(positions.values()) == len(got)
        c1.commit(offsets={TopicPartition("t", 0): 1})
        assert c1.committed([TopicPartition("t", 0)])[TopicPartition("t", 0)] == 1
    finally:
        c1.close()
    c2 = _consumer(gbroker, **{"enable.auto.commit": False})
    try:
        c2.subscribe(["t"])
        seen: list = []
        _poll_until([], lambda: seen.extend(
            r for rs in c2.poll(50).values() for r in rs) or len(seen) >= 20 - len(got) + 0)
        first = {}
        for r in seen:
            first.setdefault(r.partition, r.offset)
        assert first[0] == 1  # resumes at the committed offset of partition 0
        assert first[1] == positions[TopicPartition("t", 1)]
    finally:
        c2.close()


@pytest.mark.timeout(30)
def test_auto_commit_never_commits_beyond_what_poll_returned(gbroker) -> None:
    gbroker.create("t", 1)
    _produce(gbroker, "t", 50, 1)
    c = _consumer(gbroker, **{"auto.commit.interval.ms": 50})
    tp = TopicPartition("t", 0)
    returned = 0
    try:
        c.subscribe(["t"])
        deadline = time.monotonic() + 10
        while returned < 50:
            assert time.monotonic() < deadline
            returned += sum(len(rs) for rs in c.poll(50, max_records=4).values())
            committed = c.committed([tp])[tp]
            assert committed is None or committed <= returned
        _poll_until([c], lambda: c.committed([tp])[tp] == 50)
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_auto_offset_reset_none_raises_a_clear_error(gbroker) -> None:
    gbroker.create("t", 1)
    c = _consumer(gbroker, **{"auto.offset.reset": "none"})
    try:
        c.subscribe(["t"])
        with pytest.raises(NoOffsetForPartitionError):
            _poll_until([c], lambda: False)
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_not_coordinator_is_handled_by_finding_the_coordinator_again(gbroker) -> None:
    gbroker.create("t", 2)
    gbroker.fail_group["ConsumerGroupHeartbeat"] = [E.NOT_COORDINATOR, E.NOT_COORDINATOR,
                                                    E.COORDINATOR_LOAD_IN_PROGRESS]
    c = _consumer(gbroker)
    try:
        c.subscribe(["t"])
        _poll_until([c], lambda: len(c.assignment()) == 2)
        assert gbroker.requests.count("FindCoordinator") >= 3
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_a_fenced_member_loses_its_partitions_and_rejoins(gbroker) -> None:
    gbroker.create("t", 2)
    rec = Recorder()
    c = _consumer(gbroker)
    try:
        c.subscribe(["t"], listener=rec)
        _poll_until([c], lambda: len(c.assignment()) == 2)
        gbroker.fail_group["ConsumerGroupHeartbeat"] = [E.FENCED_MEMBER_EPOCH]
        _poll_until([c], lambda: any(e[0] == "lost" for e in rec.events))
        _poll_until([c], lambda: len(c.assignment()) == 2)
        kinds = [e[0] for e in rec.events]
        assert kinds[:3] == ["assigned", "lost", "assigned"]
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_pattern_subscription_gets_matching_topics(gbroker) -> None:
    gbroker.create("orders-eu", 1)
    gbroker.create("orders-us", 2)
    gbroker.create("other", 1)
    c = _consumer(gbroker)
    try:
        c.subscribe(pattern=r"orders-.*")
        _poll_until([c], lambda: len(c.assignment()) == 3)
        assert {tp.topic for tp in c.assignment()} == {"orders-eu", "orders-us"}
        assert c.subscription() == "orders-.*"
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_background_heartbeats_keep_a_slow_consumer_in_the_group() -> None:
    b = GroupFakeBroker(session_timeout_ms=600).start()
    try:
        b.create("t", 2)
        c = _consumer(b)
        try:
            c.subscribe(["t"])
            _poll_until([c], lambda: len(c.assignment()) == 2)
            member = set(b.owners().values())
            time.sleep(1.5)  # "processing" for longer than the session timeout
            assert set(b.owners().values()) == member
            assert len(b.owners()) == 2
        finally:
            c.close()
    finally:
        b.close()


@pytest.mark.timeout(30)
def test_exceeding_max_poll_interval_leaves_the_group_and_rejoins_on_poll(gbroker) -> None:
    gbroker.create("t", 2)
    rec = Recorder()
    c = _consumer(gbroker, **{"max.poll.interval.ms": 300})
    try:
        c.subscribe(["t"], listener=rec)
        _poll_until([c], lambda: len(c.assignment()) == 2)
        deadline = time.monotonic() + 5
        while gbroker.owners():  # the member left on its own: nobody owns anything
            assert time.monotonic() < deadline
            time.sleep(0.02)
        _poll_until([c], lambda: any(e[0] == "lost" for e in rec.events))
        _poll_until([c], lambda: len(c.assignment()) == 2)
        assert [e[0] for e in rec.events][:3] == ["assigned", "lost", "assigned"]
    finally:
        c.close()


def test_partition_for_matches_kafka() -> None:
    # well-known Java String.hashCode values
    assert gc.java_string_hashcode("") == 0
    assert gc.java_string_hashcode("hello") == 99162322
    assert gc.java_string_hashcode("polygenelubricants") == -(1 << 31)  # Integer.MIN_VALUE
    assert gc.java_string_hashcode("\U0001F600") == 1772899  # a surrogate pair: 2 code units
    # Kafka: Utils.abs(MIN_VALUE) == 0; otherwise abs(hash) % partitions
    assert gc.partition_for("polygenelubricants", 10) == 0
    assert gc.partition_for("hello", 50) == 99162322 % 50


@pytest.mark.timeout(30)
def test_static_member_gets_its_partitions_back_after_a_quick_restart(gbroker) -> None:
    gbroker.create("t", 4)
    static = _consumer(gbroker, **{"group.instance.id": "s1"})
    other = _consumer(gbroker)
    try:
        static.subscribe(["t"])
        other.subscribe(["t"])
        _poll_until([static, other], lambda: len(static.assignment()) == 2
                    and len(other.assignment()) == 2)
        mine = static.assignment()
        static.close()  # epoch -2: the coordinator keeps the assignment for the session timeout
        for _ in range(10):
            other.poll(20)
        assert other.assignment().isdisjoint(mine)
        static = _consumer(gbroker, **{"group.instance.id": "s1"})
        static.subscribe(["t"])
        _poll_until([static, other], lambda: static.assignment() == mine)
        assert other.assignment().isdisjoint(mine)
    finally:
        static.close()
        other.close()


@pytest.mark.timeout(30)
def test_revocation_lease_drops_partitions_when_heartbeats_go_unanswered(gbroker) -> None:
    """No calm heartbeat reply for the rebalance timeout (max.poll.interval.ms): a revocation
    may have been asked in a lost reply, so the partitions are dropped (lost) and rejoined."""
    gbroker.create("t", 2)
    rec = Recorder()
    c = _consumer(gbroker, **{"max.poll.interval.ms": 800, "session.timeout.ms": 30000})
    try:
        c.subscribe(["t"], listener=rec)
        _poll_until([c], lambda: len(c.assignment()) == 2)
        gbroker.fail_group["ConsumerGroupHeartbeat"] = [E.COORDINATOR_LOAD_IN_PROGRESS] * 10**6
        _poll_until([c], lambda: any(e[0] == "lost" for e in rec.events))
        assert c.assignment() == set()
        gbroker.fail_group["ConsumerGroupHeartbeat"] = []
        _poll_until([c], lambda: len(c.assignment()) == 2)
    finally:
        gbroker.fail_group["ConsumerGroupHeartbeat"] = []
        c.close()
