"""A new group coordinator loads every record the previous leader acknowledged, even when
its high watermark still lags them (followers learn the high watermark a fetch late): it
first appends a barrier with acks=all, then reads up to the high watermark."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import cbor2
import pytest
from rillet.actors import group_coordinator as GC
from rillet.actors import group_txn as T
from rillet.actors import partition as R
from rillet.actors.runtime import DispatchedActor
from rillet.coordinator import groups as G
from rillet.coordinator.groups.records import OffsetCommitRecord
from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
from rillet.logstore.batch import iter_batches, stamp
from rillet.transport import protocol as P

from tests.support import wait_until

pytestmark = pytest.mark.timeout(30)


class LaggingReplica(DispatchedActor):
    """A new leader's log: records up to its log end offset, a high watermark still at 0
    until an acks=all append (the followers catch up with it)."""

    def __init__(self, batches: list[bytes]) -> None:
        super().__init__()
        self.batches: list[tuple[int, bytes]] = []  # (next offset, stamped batch)
        self.end, self.high_watermark = 0, 0
        for b in batches:
            self._append(b)

    def _append(self, data: bytes) -> None:
        buf = bytearray(data)
        stamp(buf, 0, self.end, 0)
        self.end = next(iter_batches(bytes(buf)))[0].next_offset
        self.batches.append((self.end, bytes(buf)))

    def on_receive(self, message):
        match message:
            case R.Read():
                data = b"".join(b for end, b in self.batches
                                if message.fetch_offset < end <= self.high_watermark)
                message.reply(P.FetchPartitionResponse(
                    partition=0, high_watermark=self.high_watermark, records=data))
            case R.Append():
                self._append(bytes(message.records))
                self.high_watermark = self.end
                message.reply(P.ProducePartitionResponse(partition=0))
        return None


def _coordinator_with_a_commit():
    """(the __consumer_offsets replica, a coordinator actor on it): the log holds group g's
    commit of offset 42 for t-0."""
    commit = OffsetCommitRecord(group_id="g", topic="t", partition=0, offset=42,
                                  leader_epoch=-1, metadata="", commit_timestamp_ms=1)
    key, value = G.to_kv(commit)
    replica = LaggingReplica.start([T.build_batch([(cbor2.dumps(key), cbor2.dumps(value))], 1,
                                                  None)])
    ctx = SimpleNamespace(broker_id=1, controller=None, broker_configs={},
                          replicas={(GC.OFFSETS_TOPIC, 0): replica})
    return replica, GC.GroupCoordinatorActor.start(ctx)


def test_a_record_above_the_new_leaders_high_watermark_is_loaded() -> None:
    replica, actor = _coordinator_with_a_commit()
    try:
        offsets = TopicInfo(name=GC.OFFSETS_TOPIC, topic_id="o", partitions={
            0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})
        actor.tell(GC.ImageChanged(MetadataImage(topics={GC.OFFSETS_TOPIC: offsets})))
        answers: list = []
        lock = threading.Lock()

        def fetched():
            def respond(r):
                with lock:
                    answers.append(r)
            actor.tell(GC.GroupRequest(P.OffsetFetchRequest(group_id="g"), respond))
            actor.ask(GC.GroupTick(0))
            with lock:
                return answers and answers[-1].error_code == 0 and answers[-1]

        r = wait_until(fetched, 10, "the shard to load")
        got = {(t.name, p.partition): p.committed_offset for t in r.topics for p in t.partitions}
        assert got == {("t", 0): 42}
    finally:
        actor.stop()
        replica.stop()


def test_offsets_of_a_topic_created_again_under_its_name_are_dropped() -> None:
    """The coordinator learns of a topic's deletion from the image; when the next image it
    sees already holds a new topic of the same name (the same partition count), the name
    never left: the old topic's committed offsets stayed, and a group read the new topic from
    them (past its end: reset, skipping records)."""
    replica, actor = _coordinator_with_a_commit()
    offsets = TopicInfo(name=GC.OFFSETS_TOPIC, topic_id="o", partitions={
        0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})

    def image(topic_id: str) -> MetadataImage:
        t = TopicInfo(name="t", topic_id=topic_id, partitions={
            0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})
        return MetadataImage(topics={GC.OFFSETS_TOPIC: offsets, "t": t})

    def committed() -> dict | None:
        answers: list = []
        actor.tell(GC.GroupRequest(P.OffsetFetchRequest(group_id="g"), answers.append))
        actor.ask(GC.GroupTick(0))
        wait_until(lambda: answers, 5, "the OffsetFetch answer")
        if answers[-1].error_code:
            return None
        return {(t.name, p.partition): p.committed_offset
                for t in answers[-1].topics for p in t.partitions if p.committed_offset >= 0}

    try:
        actor.tell(GC.ImageChanged(image("first")))
        assert wait_until(committed, 10, "the shard to load") == {("t", 0): 42}
        actor.tell(GC.ImageChanged(image("second")))  # deleted and created again meanwhile
        wait_until(lambda: committed() == {}, 10, "the old topic's offsets to be dropped")
    finally:
        actor.stop()
        replica.stop()
