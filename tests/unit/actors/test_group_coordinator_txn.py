"""The group coordinator actor's transactional offsets (KIP-447) over an in-memory
``__consumer_offsets`` log: a TxnOffsetCommit is written as a transactional batch of the
producer with ``Append(verified=True)``, stays invisible (UNSTABLE_OFFSET_COMMIT with
require_stable) until ``TxnMarkerWritten``, and a second coordinator loading the same log
(a failover) rebuilds the same state: the pending offsets of an open transaction, the
committed ones of a finished one, and a marker it reads itself."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from rillet.actors import group_coordinator as GC
from rillet.actors import partition as R
from rillet.actors.group_txn import is_barrier_batch
from rillet.actors.runtime import DispatchedActor
from rillet.actors.txn_messages import TxnMarkerWritten
from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
from rillet.logstore.batch import iter_batches, stamp
from rillet.logstore.txn_markers import ControlType, EndTxnMarker, build_marker_batch
from rillet.transport import protocol as P

from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)
UNSTABLE = P.ErrorCode.UNSTABLE_OFFSET_COMMIT


class MemoryOffsetsReplica(DispatchedActor):
    """A leader of ``__consumer_offsets``-0 keeping its batches in memory (all replicated)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[bytes] = []
        self.verified: list[bool] = []
        self.end = 0
        self.hold_reads = False
        self.held: list = []  # (reply, the answer as of the read's arrival)

    def _append(self, records: bytes) -> int:
        buf = bytearray(records)
        base = self.end
        for header, _ in iter_batches(records, validate=True):
            stamp(buf, 0, base, 0)
            self.end = base + header.last_offset_delta + 1
        self.batches.append(bytes(buf))
        return base

    def on_receive(self, message):
        match message:
            case R.Read():
                data = b"".join(b for b in self.batches
                                if next(iter_batches(b))[0].next_offset > message.fetch_offset)
                answer = P.FetchPartitionResponse(partition=0, high_watermark=self.end,
                                                  records=data)
                if self.hold_reads:
                    self.held.append((message.reply, answer))
                else:
                    message.reply(answer)
            case ("hold_reads",):
                self.hold_reads = True
            case ("held",):
                return len(self.held)
            case ("release",):
                self.hold_reads = False
                for reply, answer in self.held:
                    reply(answer)
                self.held = []
            case R.Append() if is_barrier_batch(bytes(message.records)):
                message.reply(P.ProducePartitionResponse(partition=0, base_offset=self.end))
            case R.Append():
                self.verified.append(message.verified)
                base = self._append(bytes(message.records))
                message.reply(P.ProducePartitionResponse(partition=0, base_offset=base))
            case ("marker", pid, epoch, committed):
                kind = ControlType.COMMIT if committed else ControlType.ABORT
                return self._append(build_marker_batch(EndTxnMarker(pid, epoch, kind, 0), 0))
            case ("headers",):
                return [next(iter_batches(b))[0] for b in self.batches]
            case ("verified",):
                return list(self.verified)
        return None


class Coordinator:
    def __init__(self, replica, wait: bool = True) -> None:
        ctx = SimpleNamespace(broker_id=1, controller=None, broker_configs={},
                              replicas={(GC.OFFSETS_TOPIC, 0): replica})
        self.actor = GC.GroupCoordinatorActor.start(ctx)
        self._lock = threading.Lock()
        self.answers: list = []
        offsets = TopicInfo(name=GC.OFFSETS_TOPIC, topic_id="o", partitions={
            0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})
        topic = TopicInfo(name="t", topic_id="t", partitions={
            p: PartitionInfo(partition=p, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)
            for p in range(4)})
        self.actor.tell(GC.ImageChanged(MetadataImage(topics={GC.OFFSETS_TOPIC: offsets,
                                                              "t": topic})))
        if wait:
            self.wait_loaded()

    def wait_loaded(self) -> None:
        wait_until(lambda: self.call(P.OffsetFetchRequest(group_id="g")).error_code == 0,
                   what="the shard to load")

    def call(self, request):
        """Send ``request``, wait for its answer."""
        box: list = []
        self.actor.tell(GC.GroupRequest(request, box.append))
        wait_until(lambda: box, what=f"the answer to {request.API}")
        return box[0]

    def fetch(self, require_stable: bool = False) -> dict[int, tuple[int, int]]:
        """partition -> (committed offset, error code)."""
        r = self.call(P.OffsetFetchRequest(
            group_id="g", require_stable=require_stable,
            topics=(P.GroupTopicPartitions(topic="t", partitions=(0, 1, 2)),)))
        assert r.error_code == 0
        return {p.partition: (p.committed_offset, p.error_code)
                for t in r.topics for p in t.partitions}

    def stop(self) -> None:
        self.actor.stop()


def offsets(**by_partition: int) -> tuple[P.OffsetCommitTopic, ...]:
    return (P.OffsetCommitTopic(name="t", partitions=tuple(
        P.OffsetCommitPartition(partition=int(p[1:]), committed_offset=o)
        for p, o in by_partition.items())),)


def txn_commit(pid: int, epoch: int = 0, **by_partition: int) -> P.TxnOffsetCommitRequest:
    return P.TxnOffsetCommitRequest(transactional_id=f"tx-{pid}", group_id="g", producer_id=pid,
                                    producer_epoch=epoch, topics=offsets(**by_partition))


def test_transactional_offsets_are_written_pending_completed_and_reloaded() -> None:
    replica = MemoryOffsetsReplica.start()
    first = second = None
    try:
        first = Coordinator(replica)
        assert first.call(P.OffsetCommitRequest(group_id="g", topics=offsets(p0=5))).error_code == 0
        r = first.call(txn_commit(7, epoch=2, p0=10, p1=20))
        assert r.error_code == 0
        assert {p.error_code for t in r.topics for p in t.partitions} == {0}
        plain, txn = replica.ask(("headers",))
        assert not plain.is_transactional and plain.producer_id == -1
        assert txn.is_transactional and not txn.is_control
        assert (txn.producer_id, txn.producer_epoch, txn.base_sequence) == (7, 2, 0)
        assert replica.ask(("verified",)) == [False, True]

        assert first.fetch() == {0: (5, 0), 1: (-1, 0), 2: (-1, 0)}  # pending: unseen
        assert first.fetch(require_stable=True) == {0: (-1, UNSTABLE), 1: (-1, UNSTABLE),
                                                    2: (-1, 0)}
        at = replica.ask(("marker", 7, 3, True))
        first.actor.tell(TxnMarkerWritten(partition=0, producer_id=7, committed=True, offset=at))
        wait_until(lambda: first.fetch() == {0: (10, 0), 1: (20, 0), 2: (-1, 0)},
                   what="the committed transaction's offsets")
        assert first.fetch(require_stable=True) == first.fetch()

        # producer 8's transaction stays open; producer 9's is aborted by a marker the
        # first coordinator never hears of
        assert first.call(txn_commit(8, p2=30)).error_code == 0
        assert first.call(txn_commit(9, p0=99)).error_code == 0
        replica.ask(("marker", 9, 1, False))
        first.stop()
        first = None

        second = Coordinator(replica)  # a failover: replay of the same log
        assert second.fetch() == {0: (10, 0), 1: (20, 0), 2: (-1, 0)}
        assert second.fetch(require_stable=True) == {0: (10, 0), 1: (20, 0), 2: (-1, UNSTABLE)}
        # the open transaction continues its sequence after the reload
        assert second.call(txn_commit(8, p1=31)).error_code == 0
        last = replica.ask(("headers",))[-1]
        assert (last.producer_id, last.base_sequence) == (8, 1)
        at = replica.ask(("marker", 8, 1, True))
        second.actor.tell(TxnMarkerWritten(partition=0, producer_id=8, committed=True, offset=at))
        wait_until(lambda: second.fetch(require_stable=True) == {
            0: (10, 0), 1: (31, 0), 2: (30, 0)}, what="producer 8's offsets")
    finally:
        for c in (first, second):
            if c is not None:
                c.stop()
        replica.stop()


def test_zombie_generation_and_bad_requests_are_refused_without_a_write() -> None:
    replica = MemoryOffsetsReplica.start()
    c = None
    try:
        c = Coordinator(replica)
        r = c.call(P.TxnOffsetCommitRequest(
            transactional_id="tx", group_id="g", producer_id=1, producer_epoch=0,
            generation_id=5, member_id="m", topics=offsets(p0=1)))
        assert r.error_code == P.ErrorCode.ILLEGAL_GENERATION  # no such group at generation 5
        assert [p.error_code for t in r.topics for p in t.partitions] == [r.error_code]
        r = c.call(P.TxnOffsetCommitRequest(
            transactional_id="", group_id="g", producer_id=-1, producer_epoch=0,
            topics=offsets(p0=1)))
        assert r.error_code == P.ErrorCode.INVALID_REQUEST
        assert replica.ask(("headers",)) == []
    finally:
        if c is not None:
            c.stop()
        replica.stop()


def test_a_marker_announced_while_loading_is_applied_once_after_the_load() -> None:
    replica = MemoryOffsetsReplica.start()
    first = second = None
    try:
        first = Coordinator(replica)
        assert first.call(txn_commit(5, p0=50)).error_code == 0
        assert first.call(txn_commit(6, p1=60)).error_code == 0
        early = replica.ask(("marker", 5, 1, True))  # in the log before the load reads it
        first.stop()
        first = None
        replica.ask(("hold_reads",))
        second = Coordinator(replica, wait=False)
        wait_until(lambda: replica.ask(("held",)) == 1, what="the load's read")
        # written after the read was answered (the load will not see it), announced while
        # loading; and the earlier marker announced late (the load sees that one)
        late = replica.ask(("marker", 6, 1, True))
        second.actor.tell(TxnMarkerWritten(partition=0, producer_id=6, committed=True,
                                           offset=late))
        second.actor.tell(TxnMarkerWritten(partition=0, producer_id=5, committed=True,
                                           offset=early))
        replica.ask(("release",))
        second.wait_loaded()
        assert second.fetch(require_stable=True) == {0: (50, 0), 1: (60, 0), 2: (-1, 0)}
    finally:
        for c in (first, second):
            if c is not None:
                c.stop()
        replica.stop()
