"""The share-partition manager actor (actors/share_partition.py) with the real core, a fake
partition replica, a share-state store whose writes the test completes, and a fake
dead-letter writer: acknowledgements answered only once durable, writes group-committed (one
in flight per share-partition), a fenced write drops the state and the next request reloads
it, and a dead letter is written only after its DEAD_LETTER_PENDING state is durable."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from rillet.actors import partition as R
from rillet.actors import share_partition as SP
from rillet.actors.runtime import DispatchedActor
from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
from rillet.logstore.batch import BatchBuilder, stamp
from rillet.transport import protocol as P

from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)
E = P.ErrorCode


class FakeReplica(DispatchedActor):
    """Partition t-0 holding ten records at offsets 0..9 (the high watermark is 10)."""

    def __init__(self) -> None:
        super().__init__()
        b = BatchBuilder()
        for i in range(10):
            b.append(0, None, b"v%d" % i)
        data = bytearray(b.build())
        stamp(data, 0, 0, 0)
        self.data = bytes(data)
        self.reads = 0

    def on_receive(self, message):
        match message:
            case R.Read():
                self.reads += 1
                records = self.data if message.fetch_offset < 10 else b""
                message.reply(P.FetchPartitionResponse(partition=0, high_watermark=10,
                                                       records=records))
            case R.ListOffset():
                message.reply(P.ListOffsetsPartitionResponse(partition=0, offset=0))
        return None


class HeldStore:
    """Reads answer at once from what was written; writes wait for ``complete``."""

    def __init__(self) -> None:
        self.reads = 0
        self.read_error = E.NONE  # answer reads with this error
        self.writes: list[tuple[P.WriteShareGroupStateRequest, object]] = []
        self.lock = threading.Lock()

    def read(self, group_id, topic, partition, leader_epoch, answer):
        with self.lock:
            self.reads += 1
        answer(P.ReadShareGroupStateResponse(error_code=self.read_error))

    def write(self, request, answer):
        with self.lock:
            self.writes.append((request, answer))

    def complete(self, i: int, error_code: int = 0) -> P.WriteShareGroupStateRequest:
        request, answer = self.writes[i]
        answer(P.WriteShareGroupStateResponse(error_code=error_code, state_epoch=1))
        return request


class DeadLetters:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def write(self, **kwargs):
        self.calls.append(kwargs)


class Manager:
    def __init__(self) -> None:
        self.replica = FakeReplica.start()
        self.store = HeldStore()
        self.dead = DeadLetters()
        topic = TopicInfo(name="t", topic_id="t", partitions={
            0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})
        ctx = SimpleNamespace(broker_id=1, broker_configs={}, image=MetadataImage(
            topics={"t": topic}), replicas={("t", 0): self.replica})
        self.actor = SP.SharePartitionManager.start(ctx, self.store, self.dead)
        self.answers: list = []

    def send(self, request) -> list:
        box: list = []
        self.actor.tell(SP.ShareRequest(request, box.append))
        return box

    def fetch(self, member: str, acks=(), max_records: int = 500, acquire_mode: int = 1) -> list:
        """A ShareFetch; record_limit by default: these tests count what is acquired."""
        return self.send(P.ShareFetchRequest(
            group_id="g", member_id=member, max_wait_ms=0, max_records=max_records,
            acquire_mode=acquire_mode,
            topics=(P.ShareFetchTopic(name="t", partitions=(P.ShareFetchPartition(
                partition=0, acknowledgement_batches=tuple(acks)),)),)))

    def ack(self, member: str, first: int, last: int, kind: int, reason: str = "") -> list:
        return self.send(P.ShareAcknowledgeRequest(group_id="g", member_id=member, topics=(
            P.ShareAcknowledgeTopic(name="t", partitions=(P.ShareFetchPartition(
                partition=0, acknowledgement_batches=(P.AcknowledgementBatch(
                    first_offset=first, last_offset=last, acknowledge_types=(kind,),
                    reason=reason),)),)),)))

    def stop(self) -> None:
        self.actor.stop()
        self.replica.stop()


@pytest.fixture
def m():
    manager = Manager()
    yield manager
    manager.stop()


def acquired(box) -> list[tuple[int, int, int]]:
    return [(a.first_offset, a.last_offset, a.delivery_count)
            for a in box[0].topics[0].partitions[0].acquired_records]


def code(box) -> int:
    return box[0].results[0].partitions[0].error_code


def test_acknowledgements_wait_for_durability_and_share_one_write(m):
    got = m.fetch("a")
    wait_until(lambda: got, 5, "the fetch answer")
    assert acquired(got) == [(0, 9, 1)]
    assert len(m.store.writes) == 1  # the new share-partition's start (0), still in flight
    first = m.ack("a", 0, 4, P.ACK_ACCEPT)
    second = m.ack("a", 5, 8, P.ACK_ACCEPT)
    third = m.fetch("a", acks=[P.AcknowledgementBatch(first_offset=9, last_offset=9,
                                                      acknowledge_types=(P.ACK_ACCEPT,))],
                    max_records=0)
    probe = m.fetch("b")  # an unrelated fetch is not held back by the writes
    wait_until(lambda: probe, 5, "the probe fetch")
    assert not first and not second and not third  # nothing durable yet
    assert len(m.store.writes) == 1  # one write in flight per share-partition
    m.store.complete(0)
    wait_until(lambda: len(m.store.writes) == 2, 5, "the group-committed write")
    assert not first and not second and not third
    request = m.store.complete(1)
    assert request.start_offset == 10 and request.state_batches == ()  # all three in one
    wait_until(lambda: first and second and third, 5, "the acknowledgement answers")
    assert code(first) == code(second) == E.NONE
    assert third[0].topics[0].partitions[0].acknowledge_error_code == E.NONE


def test_a_fenced_write_drops_the_state_and_the_next_request_reloads(m):
    got = m.fetch("a")
    wait_until(lambda: got, 5, "the fetch answer")
    answer = m.ack("a", 0, 0, P.ACK_ACCEPT)
    m.store.complete(0, E.FENCED_STATE_EPOCH)
    wait_until(lambda: answer, 5, "the acknowledgement answer")
    assert code(answer) == E.NOT_LEADER_OR_FOLLOWER
    assert m.store.reads == 1
    again = m.fetch("a")
    wait_until(lambda: again, 5, "the fetch after the fence")
    assert m.store.reads == 2


def test_acknowledgements_on_a_fetch_the_leader_cannot_serve_are_answered_as_not_applied(m):
    got = m.fetch("a")
    wait_until(lambda: got, 5, "the fetch answer")
    answer = m.ack("a", 0, 0, P.ACK_ACCEPT)
    m.store.complete(0, E.FENCED_STATE_EPOCH)  # drops the state: the next request reloads
    wait_until(lambda: answer, 5, "the acknowledgement answer")
    m.store.read_error = E.COORDINATOR_LOAD_IN_PROGRESS
    accept = [P.AcknowledgementBatch(first_offset=1, last_offset=9,
                                     acknowledge_types=(P.ACK_ACCEPT,))]
    carried = m.fetch("a", acks=accept)
    wait_until(lambda: carried, 5, "the fetch answer during the failed load")
    part = carried[0].topics[0].partitions[0]
    assert part.error_code == E.COORDINATOR_LOAD_IN_PROGRESS
    # not applied: a zero here would tell the client its acceptances are durable
    assert part.acknowledge_error_code == E.COORDINATOR_LOAD_IN_PROGRESS
    assert "not applied" in part.acknowledge_error_message
    assert len(m.store.writes) == 1  # nothing was written for them
    plain = m.fetch("b", max_records=0)  # a fetch without acknowledgements: no ack error
    wait_until(lambda: plain, 5, "the second fetch answer")
    assert plain[0].topics[0].partitions[0].acknowledge_error_code == E.NONE


def test_a_dead_letter_is_written_after_its_pending_state_is_durable(m):
    got = m.fetch("a", max_records=1)
    wait_until(lambda: got, 5, "the fetch answer")
    m.store.complete(0)
    answer = m.ack("a", 0, 0, P.ACK_REJECT, reason="broken")
    wait_until(lambda: len(m.store.writes) == 2, 5, "the pending state write")
    pending = m.store.writes[1][0].state_batches
    assert [(b.first_offset, b.delivery_state, b.reason) for b in pending] == [
        (0, P.RECORD_DEAD_LETTER_PENDING, "broken")]
    m.actor.tell(SP.ShareTick(0))  # the tick retries pending dead letters: not these yet
    probe = m.fetch("b", max_records=0)
    wait_until(lambda: probe, 5, "a request after the tick")
    assert m.dead.calls == []  # not before the pending state is durable
    m.store.complete(1)
    wait_until(lambda: m.dead.calls, 5, "the dead-letter write")
    call = m.dead.calls[0]
    assert (call["first"], call["last"], call["reason"], call["dlq_topic"]) == (
        0, 0, "broken", "t.dlq")
    assert code(answer) == E.NONE
    call["done"](E.NONE, 1)  # written: archive
    wait_until(lambda: len(m.store.writes) == 3, 5, "the archived state write")
    assert m.store.writes[2][0].start_offset == 1


def test_share_partitions_holding_nothing_are_forgotten(m):
    from rillet.actors.ticker import now_ms

    stray = m.send(P.ShareAcknowledgeRequest(group_id="nosuch", member_id="x", topics=(
        P.ShareAcknowledgeTopic(name="t", partitions=(P.ShareFetchPartition(
            partition=0, acknowledgement_batches=(P.AcknowledgementBatch(
                first_offset=0, last_offset=0, acknowledge_types=(1,)),)),)),)))
    wait_until(lambda: stray, 5, "the stray acknowledgement's answer")
    assert code(stray) == E.INVALID_RECORD_STATE and m.store.reads == 1
    got = m.fetch("a", max_records=1)  # group g: one record held
    wait_until(lambda: got, 5, "the fetch answer")
    m.store.complete(0)
    m.actor.tell(SP.ShareTick(now_ms() + SP.EVICT_IDLE_MS + 1))
    again = m.send(P.ShareAcknowledgeRequest(group_id="nosuch", member_id="x", topics=(
        P.ShareAcknowledgeTopic(name="t", partitions=(P.ShareFetchPartition(
            partition=0, acknowledgement_batches=(P.AcknowledgementBatch(
                first_offset=0, last_offset=0, acknowledge_types=(1,)),)),)),)))
    wait_until(lambda: again, 5, "the second answer")
    assert m.store.reads == 3  # "nosuch" (nothing stored) was forgotten and read again
    kept = m.fetch("b", max_records=1)
    wait_until(lambda: kept, 5, "g's fetch")
    assert m.store.reads == 3  # g held a record at the tick: kept in memory
