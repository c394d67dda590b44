"""The partition actor and the request gathers in one process (no sockets): long-poll
collection, poison messages, timers, producer-id expiry."""

from __future__ import annotations

import threading
import time

import pykka
import pytest
from rillet.actors import partition as R
from rillet.actors.gather import FetchGather, ProduceGather
from rillet.actors.ticker import Ticker
from rillet.logstore.batch import BatchBuilder
from rillet.logstore.config import LogConfig
from rillet.logstore.recovery import RECOVERY_POINT_FILE
from rillet.transport import protocol as P

pytestmark = pytest.mark.timeout(30)
E = P.ErrorCode


def batch(values) -> bytes:
    b = BatchBuilder()
    ts = int(time.time() * 1000)
    for v in values:
        b.append(ts, None, v)
    return b.build()


class Box:
    """Collects callback results across threads."""

    def __init__(self) -> None:
        self.items: list = []
        self.event = threading.Event()

    def __call__(self, item) -> None:
        self.items.append(item)
        self.event.set()

    def get(self, timeout: float = 5.0):
        assert self.event.wait(timeout), "no answer"
        return self.items[-1]


@pytest.fixture
def replica(tmp_path):
    ref = R.PartitionReplica.start("t", 0, tmp_path / "t-0", LogConfig(), 0, 1, "id")
    try:
        yield ref
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def _append(ref, records: bytes) -> P.ProducePartitionResponse:
    box = Box()
    ref.tell(R.Append(records, box))
    return box.get()


def test_poison_messages_do_not_stop_the_replica(replica) -> None:
    replica.tell("not a message")

    def explode(_response) -> None:
        raise RuntimeError("a broken callback")

    replica.tell(R.Append(batch([b"a"]), explode))
    replica.tell(R.ListOffset(P.LATEST_TIMESTAMP, explode))
    answer = _append(replica, batch([b"b"]))
    assert answer.error_code == E.NONE and answer.base_offset == 1  # the first append landed
    assert replica.is_alive()


def test_parked_read_is_served_by_the_next_append(replica) -> None:
    first, data = Box(), Box()
    replica.tell(R.Read(0, 1 << 20, first, data, deadline_ms=int(time.time() * 1000) + 10_000))
    assert first.get().records == b""
    assert _append(replica, batch([b"x"])).error_code == E.NONE
    assert data.get().high_watermark == 1 and data.get().records


def test_fetch_gather_answers_once_at_min_bytes_or_deadline() -> None:
    ticker = Ticker()
    try:
        sent = Box()
        keys = [("t", 0), ("t", 1)]
        gather = FetchGather(
            keys,
            min_bytes=10,
            max_bytes=1 << 20,
            max_wait_ms=10_000,
            send=sent,
            call_later=ticker.call_later,
        )
        gather.immediate(keys[0], P.FetchPartitionResponse(partition=0, records=b""))
        gather.immediate(keys[1], P.FetchPartitionResponse(partition=1, records=b"12345"))
        assert not sent.event.is_set()  # 5 < min_bytes: parked
        assert gather.on_data(keys[0], P.FetchPartitionResponse(partition=0, records=b"67890"))
        response = sent.get()
        assert [p.records for p in response.topics[0].partitions] == [b"67890", b"12345"]
        assert not gather.on_data(keys[1], P.FetchPartitionResponse(partition=1, records=b"z"))
        assert len(sent.items) == 1

        late = Box()
        gather = FetchGather(
            keys[:1],
            min_bytes=1,
            max_bytes=1,
            max_wait_ms=100,
            send=late,
            call_later=ticker.call_later,
        )
        gather.immediate(keys[0], P.FetchPartitionResponse(partition=0, records=b""))
        assert late.get(timeout=5).topics[0].partitions[0].records == b""
    finally:
        ticker.stop()


def test_fetch_gather_max_bytes_keeps_whole_partitions_never_nothing() -> None:
    sent = Box()
    keys = [("a", 0), ("b", 0)]
    gather = FetchGather(
        keys, min_bytes=1, max_bytes=4, max_wait_ms=0, send=sent, call_later=lambda *_: None
    )
    gather.immediate(keys[0], P.FetchPartitionResponse(partition=0, records=b"123456"))
    gather.immediate(keys[1], P.FetchPartitionResponse(partition=0, records=b"78"))
    a, b = (t.partitions[0].records for t in sent.get().topics)
    assert (a, b) == (b"123456", b"")


def test_produce_gather_orders_by_request() -> None:
    sent = Box()
    keys = [("a", 1), ("a", 0), ("b", 0)]
    gather = ProduceGather(keys, sent)
    for key in reversed(keys):
        gather.put(key, P.ProducePartitionResponse(partition=key[1], base_offset=7))
    topics = sent.get().topics
    assert [(t.name, [p.partition for p in t.partitions]) for t in topics] == [
        ("a", [1, 0]),
        ("b", [0]),
    ]


def _read_values(ref, offset: int = 0) -> list[bytes]:
    from rillet.logstore.batch import records as decode

    box = Box()
    ref.tell(R.Read(offset, 1 << 20, box, None))
    return [r.value for r in decode(box.get().records)]


def test_several_batches_in_one_append_are_all_or_nothing(replica) -> None:
    first, second = batch([b"a", b"b"]), batch([b"c"])
    ok = _append(replica, first + second)
    assert ok.error_code == E.NONE and ok.base_offset == 0
    bad = bytearray(batch([b"d"]))
    bad[-1] ^= 0xFF  # a flipped payload byte: the digest no longer matches
    refused = _append(replica, batch([b"x"]) + bytes(bad))
    assert refused.error_code == E.CORRUPT_MESSAGE
    assert _append(replica, batch([b"e"])).base_offset == 3  # nothing of the refused request
    assert _read_values(replica) == [b"a", b"b", b"c", b"e"]


class FakeTimers:
    """The replica's ``schedule``: records each wake-up asked for (delay, callback)."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, object]] = []
        self.lock = threading.Lock()

    def __call__(self, delay_s: float, fn):
        with self.lock:
            self.asked.append((delay_s, fn))
        return self

    def cancel(self) -> None:
        pass

    def fire_all(self) -> int:
        with self.lock:
            due, self.asked = self.asked, []
        for _, fn in due:
            fn()
        return len(due)


def test_a_replica_asks_for_a_wake_up_only_when_something_is_due(tmp_path) -> None:
    """The timer service: no tick per replica; an idle replica asks for nothing."""
    timers, table = FakeTimers(), {}
    ref = R.PartitionReplica.start(
        "t", 0, tmp_path / "t-0", LogConfig(flush_ms=300), 0, 1, "id",
        schedule=timers, hw_sink=table,
    )
    try:
        assert _append(ref, batch([b"a"])).error_code == E.NONE
        # the append is unflushed: one wake-up, at the flush interval
        deadline = time.monotonic() + 5
        while not timers.asked:
            assert time.monotonic() < deadline, "no wake-up asked for"
            time.sleep(0.01)
        assert 0 < timers.asked[0][0] <= 0.3 + 0.2  # flush.ms, on the 200 ms grid
        assert table[("t", 0)] == 1  # the high watermark went to the broker-wide table
        # once the flush is done, the only wake-up left is the recovery-point checkpoint
        # (once a minute, as Kafka's log.flush.offset.checkpoint.interval.ms), then none
        for _ in range(20):
            time.sleep(0.35)  # (not synchronisation: lets the flush interval pass)
            with timers.lock:
                if all(delay > 30 for delay, _ in timers.asked):
                    break
            timers.fire_all()
        ref.ask(R.ListOffset(P.LATEST_TIMESTAMP, lambda _r: None))  # a round trip
        assert len(timers.asked) == 1 and timers.asked[0][0] > 30  # no short wake-ups
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


@pytest.mark.parametrize(
    ("flush_ms", "appended_at", "woken_at"),
    [
        (300, 1_000_110, 1_000_600),  # due at 1_000_410: up to the 200 ms grid
        (30, 1_000_100, 1_000_140),  # due at 1_000_130: up to its own 30 ms grid, not 1_000_200
    ],
)
def test_the_flush_wake_up_is_on_the_flush_scheduler_grid(
    tmp_path, flush_ms: int, appended_at: int, woken_at: int
) -> None:
    """A replica's interval flush is due flush.ms after its first unflushed append, rounded
    up to the next multiple of log.flush.scheduler.interval.ms (tick_ms) of the broker's
    clock, or of flush.ms when that is shorter: replicas written within one interval wake
    together, as Kafka's log flusher checks every log once per interval."""
    now, timers = [appended_at], FakeTimers()
    ref = R.PartitionReplica.start(
        "t", 0, tmp_path / "t-0", LogConfig(flush_ms=flush_ms), 0, 1, "id",
        schedule=timers, clock=lambda: now[0], tick_ms=200,
    )
    try:
        assert _append(ref, batch([b"a"])).error_code == E.NONE
        ref.ask(R.ListOffset(P.LATEST_TIMESTAMP, lambda _r: None))  # a round trip
        with timers.lock:
            (delay, _), = timers.asked
        assert now[0] + round(delay * 1000) == woken_at
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def test_a_flushed_replica_writes_its_recovery_point_and_then_sleeps(tmp_path) -> None:
    """A minute after a flush the recovery-point checkpoint is due; the tick writes it and
    the replica asks for no immediate wake-up after (it used to ask for one at once, forever:
    100% CPU on an idle broker)."""
    now, timers = [1_000_000], FakeTimers()
    ref = R.PartitionReplica.start(
        "t", 0, tmp_path / "t-0", LogConfig(flush_ms=300), 0, 1, "id",
        schedule=timers, clock=lambda: now[0],
    )
    try:
        assert _append(ref, batch([b"a"])).error_code == E.NONE
        now[0] += 1_000
        ref.ask(R.Tick(now[0]))  # the flush
        now[0] += 61_000
        ref.ask(R.Tick(now[0]))  # the recovery-point checkpoint
        checkpoint = tmp_path / "t-0" / RECOVERY_POINT_FILE
        assert checkpoint.exists()
        with timers.lock:
            timers.asked.clear()
        ref.ask(R.Tick(now[0]))  # nothing left to do
        ref.ask(R.ListOffset(P.LATEST_TIMESTAMP, lambda _r: None))
        with timers.lock:
            assert [d for d, _ in timers.asked if d < 1] == []
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def test_idle_producer_ids_expire(tmp_path) -> None:
    """producer.id.expiration.ms: a producer whose last batch is older is forgotten, so its
    next batch (sequence > 0) gets UNKNOWN_PRODUCER_ID, as in Kafka; a recent one is kept."""
    ref = R.PartitionReplica.start(
        "t", 0, tmp_path / "t-0", LogConfig(), 0, 1, "id", producer_id_expiration_ms=60_000
    )
    try:
        t0 = int(time.time() * 1000)

        def idem(seq: int, pid: int = 7) -> bytes:
            b = BatchBuilder(producer_id=pid, producer_epoch=0, base_sequence=seq)
            b.append(t0, None, b"v")
            return b.build()

        assert _append(ref, idem(0)).error_code == E.NONE
        assert _append(ref, idem(0, pid=8)).error_code == E.NONE
        ref.tell(R.ExpireProducers(t0 + 30_000))  # younger than the expiration: kept
        assert _append(ref, idem(1)).error_code == E.NONE
        assert _append(ref, idem(1)).error_code == E.NONE  # a retry: still deduplicated
        ref.tell(R.ExpireProducers(t0 + 61_000))
        assert _append(ref, idem(2)).error_code == E.UNKNOWN_PRODUCER_ID
        assert _append(ref, idem(1, pid=8)).error_code == E.UNKNOWN_PRODUCER_ID
        assert _append(ref, idem(0, pid=9)).error_code == E.NONE  # new producers still welcome
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def test_the_producer_state_snapshot_is_taken_after_a_roll_on_the_injected_clock(tmp_path) -> None:
    """Snapshots follow Kafka's rule (at roll, not on a timer: issue #12) and the actor's
    injected clock: none while the log stays in one segment, one on the next tick (30 s after
    the replica opened) once the log rolled."""
    now = [0]
    ref = R.PartitionReplica.start(
        "t", 0, tmp_path / "t-0", LogConfig(segment_bytes=300), 0, 1, "id",
        clock=lambda: now[0],
    )
    try:
        def idem(seq: int) -> bytes:
            b = BatchBuilder(producer_id=5, producer_epoch=0, base_sequence=seq)
            b.append(int(time.time() * 1000), None, b"v" * 100)
            return b.build()

        assert _append(ref, idem(0)).error_code == E.NONE
        snapshots = lambda: sorted(p.name for p in (tmp_path / "t-0").glob("*.snapshot"))  # noqa: E731
        ref.ask(R.Tick(60_000))
        assert snapshots() == []  # one segment: nothing to snapshot
        for seq in (1, 2, 3):
            assert _append(ref, idem(seq)).error_code == E.NONE  # rolls (segment.bytes=300)
        assert len(list((tmp_path / "t-0").glob("*.log"))) > 1
        ref.ask(R.Tick(60_001))
        assert snapshots() == ["00000000000000000004.snapshot"]
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def test_a_follower_whose_last_epoch_ended_earlier_is_told_where_to_truncate(tmp_path) -> None:
    """KIP-320 on the leader: a follower fetch names its last fetched epoch; if that epoch
    ended earlier on the leader's log, the answer carries the diverging epoch and end offset
    and no records, and the follower's offset does not count."""
    from rillet.coordinator.metadata import PartitionInfo

    info = PartitionInfo(0, replicas=(1, 2), isr=(1, 2), leader=1, leader_epoch=0)
    ref = R.PartitionReplica.start("t", 0, tmp_path / "t-0", LogConfig(), 0, 1, "id", info=info)
    try:
        assert _append(ref, batch([b"a", b"b", b"c"])).error_code == E.NONE  # epoch 0: 0..2
        ref.ask(R.PartitionChanged(
            PartitionInfo(0, replicas=(1, 2), isr=(1, 2), leader=1, leader_epoch=2,
                          partition_epoch=1)))
        ref.ask(R.LeaderEpoch(2))
        assert _append(ref, batch([b"d"])).error_code == E.NONE  # epoch 2: 3

        def fetch(offset: int, last_epoch: int) -> P.FetchPartitionResponse:
            box = Box()
            ref.tell(R.Read(offset, 1 << 20, box, None, replica_id=2, current_leader_epoch=2,
                            last_fetched_epoch=last_epoch))
            return box.get()

        # the follower holds offsets 0..4 with epoch 1 at its end (written by a leader of
        # epoch 1 that never reached this log): epoch 1 ends where epoch 0 does here, at 3
        r = fetch(5, 1)
        assert (r.error_code, r.diverging_epoch, r.diverging_end_offset) == (E.NONE, 0, 3)
        assert r.records == b""
        assert fetch(3, 0).diverging_epoch == -1  # in step: no divergence, records follow
        assert fetch(3, 0).records != b""
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def test_a_follower_whose_first_fetch_follows_a_produce_stays_in_the_isr(tmp_path) -> None:
    """The root cause of issue #13's failover 'hang', on the real actor and core: a new leader
    took a produce before its ISR follower's first fetch; that fetch (behind the leader's log
    end) reset the follower's catch-up time, and the leader's next ISR check proposed
    dropping it, so a kill of the leader a moment later left the partition without an
    eligible leader. The follower keeps replica.lag.time.max.ms from the election."""
    from rillet.coordinator.metadata import PartitionInfo

    now = [1_000]
    proposals: list = []
    info = PartitionInfo(0, replicas=(1, 2), isr=(1, 2), leader=1, leader_epoch=0)
    ref = R.PartitionReplica.start(
        "t", 0, tmp_path / "t-0", LogConfig(), 0, 1, "id", info=info,
        replica_lag_time_max_ms=30_000, clock=lambda: now[0],
        send_alter=lambda topic, partition, proposal, answer: proposals.append(proposal),
    )
    try:
        assert _append(ref, batch([b"before"])).error_code == E.NONE
        now[0] = 1_005
        box = Box()
        ref.tell(R.Read(0, 1 << 20, box, None, replica_id=2, current_leader_epoch=0,
                        replica_incarnation="broker-2-process"))
        assert box.get().records != b""  # its first fetch, behind the leader's log end
        for t in (1_010, 1_000 + 30_000):  # the next ISR checks, within the lag allowed
            now[0] = t
            ref.ask(R.Tick(t))
        assert proposals == [], "the follower was shrunk out of the ISR at once"
        now[0] = 1_000 + 30_001  # still behind after replica.lag.time.max.ms: then out
        ref.ask(R.Tick(now[0]))
        assert [p.new_isr for p in proposals] == [(1,)]
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def test_a_waiting_acks_all_produce_wakes_the_leader_at_its_deadline_not_every_tick(
    tmp_path,
) -> None:
    """An acks=all produce waiting for a follower used to tick its leader every
    log.flush.scheduler.interval.ms (5 wake-ups a second per partition); the leader now
    wakes at the produce's deadline (or the next ISR check, if sooner), as Kafka's purgatory
    timer does, and answers REQUEST_TIMED_OUT then."""
    from rillet.coordinator.metadata import PartitionInfo

    now, timers = [1_000_000], FakeTimers()
    info = PartitionInfo(0, replicas=(1, 2), isr=(1, 2), leader=1, leader_epoch=0)
    ref = R.PartitionReplica.start(
        "t", 0, tmp_path / "t-0", LogConfig(flush_ms=3_600_000), 0, 1, "id", info=info,
        replica_lag_time_max_ms=30_000, clock=lambda: now[0], schedule=timers, tick_ms=200,
    )
    try:
        ref.ask(R.Tick(now[0]))  # the election's first ISR check: the next is 15 s away
        with timers.lock:
            timers.asked.clear()
        box = Box()
        ref.tell(R.Append(batch([b"a"]), box, acks=-1, timeout_ms=5_000))
        ref.ask(R.ListOffset(P.LATEST_TIMESTAMP, lambda _r: None))  # a round trip
        assert not box.items  # waiting for the follower
        with timers.lock:
            delays = sorted(d for d, _ in timers.asked)
        assert delays and delays[0] == 5.0, delays  # the deadline: no 0.2 s ticks
        now[0] += 5_000
        ref.ask(R.Tick(now[0]))
        assert box.get().error_code == E.REQUEST_TIMED_OUT
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def test_a_watching_follower_is_told_of_records_at_once_and_of_a_high_watermark_lazily(
    tmp_path,
) -> None:
    """The leader's notifications to a follower's fetch session: records, and a new log
    start offset, are urgent (they answer a parked poll); a new high watermark alone is not
    (actors/fetch_session.py holds it for the partition's next records)."""
    from rillet.actors.delete_records import DeleteRecords
    from rillet.actors.fetch_session import Watch
    from rillet.coordinator.metadata import PartitionInfo

    class Session:
        def __init__(self) -> None:
            self.calls: list = []

        def notify(self, key, generation, response, urgent=True) -> bool:
            self.calls.append((response, urgent))
            return True

    info = PartitionInfo(0, replicas=(1, 2, 3), isr=(1, 2, 3), leader=1, leader_epoch=0)
    ref = R.PartitionReplica.start("t", 0, tmp_path / "t-0", LogConfig(), 0, 1, "id", info=info)
    session = Session()

    def fetch(replica_id: int, offset: int, watch=None) -> P.FetchPartitionResponse:
        box = Box()
        ref.tell(R.Read(offset, 1 << 20, box, None, replica_id=replica_id,
                        current_leader_epoch=0, watch=watch))
        return box.get()

    try:
        fetch(2, 0, Watch(session, 1))  # follower 2 watches from offset 0
        assert _append(ref, batch([b"a", b"b"])).error_code == E.NONE
        ref.ask(R.LeaderEpoch(0))  # a turn after the append's
        (got, urgent), = session.calls
        assert got.records != b"" and urgent
        assert fetch(2, 2, Watch(session, 2)).high_watermark == 0  # follower 3 is at 0
        fetch(3, 2)  # follower 3 catches up: the high watermark moves to 2
        ref.ask(R.LeaderEpoch(0))
        got, urgent = session.calls[-1]
        assert (got.records, got.high_watermark, urgent) == (b"", 2, False)
        box = Box()
        ref.tell(DeleteRecords(1, box))
        assert box.get().error_code == E.NONE
        ref.ask(R.LeaderEpoch(0))
        got, urgent = session.calls[-1]
        assert (got.log_start_offset, urgent) == (1, True)
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def test_a_replica_deleted_before_it_started_leaves_the_directory_to_the_next_topic(
        tmp_path) -> None:
    """A replica whose topic was deleted while its start was queued (the node found no
    directory to set aside) must not make one, nor take the directory a newer topic of the
    same name made meanwhile: it treated that as an older topic's leftovers and removed it,
    and its Delete removed the live path again (the new topic's log then wrote to unlinked
    files). Found by test_kafka_request_fuzz.py (create, delete, create of a topic of ~200
    partitions)."""
    newer = tmp_path / "t-0"
    newer.mkdir()
    (newer / R.TOPIC_ID_FILE).write_text("new-id\n")
    (newer / "00000000000000000000.log").write_bytes(b"the new topic's records")
    claim = R.DirectoryClaim()
    claim.deleted = True  # the node: deleted, nothing renamed aside
    old = R.PartitionReplica.start("t", 0, newer, LogConfig(), 0, 1, "old-id", claim=claim)
    try:
        old.tell(R.Delete(None))
        assert old.actor_stopped.wait(5), "the deleted replica did not stop"
        assert (newer / R.TOPIC_ID_FILE).read_text() == "new-id\n"
        assert (newer / "00000000000000000000.log").read_bytes() == b"the new topic's records"
        # a replica whose claim stands prepares its directory and opens its log as before
        fresh = tmp_path / "u-0"
        ref = R.PartitionReplica.start("u", 0, fresh, LogConfig(), 0, 1, "u-id",
                                       claim=R.DirectoryClaim())
        assert _append(ref, batch([b"a"])).error_code == E.NONE
        assert (fresh / R.TOPIC_ID_FILE).read_text() == "u-id\n"
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
