"""The share-state actor (actors/share_state.py) with the real core and a fake
``__share_group_state`` replica whose appends the test acknowledges or refuses: loading
(barrier, replay, COORDINATOR_LOAD_IN_PROGRESS meanwhile), NOT_COORDINATOR for partitions led
elsewhere, answers only once the append is acknowledged, group commit of concurrent writes
into one append, reload from the log after a failed append, unloading on leadership loss."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import cbor2
import pytest
from rillet.actors import partition as R
from rillet.actors import share_state as SST
from rillet.actors.configs import ConfigError, validate_broker_configs
from rillet.actors.runtime import DispatchedActor
from rillet.actors.share_state_wire import creatable, encode_record, state_partition
from rillet.coordinator.metadata import BrokerInfo, MetadataImage, PartitionInfo, TopicInfo
from rillet.coordinator.share import records as SR
from rillet.logstore.batch import BatchBuilder, decode_records, iter_batches, stamp
from rillet.transport import protocol as P

from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)
E = P.ErrorCode
EPOCH = 4
N = 2  # partitions of __share_group_state: 0 led here, 1 by broker 2


def key_on(partition: int, topic: str = "t") -> tuple[str, str, int]:
    """A share-partition whose state lives in __share_group_state-``partition``."""
    return next(("g", topic, p) for p in range(100) if state_partition("g", topic, p, N)
                == partition)


class FakeLog(DispatchedActor):
    """``__share_group_state-0``: appends stamped and kept; each waits for the test's
    ``("ack", code)`` unless auto. The high watermark: the end of the acknowledged appends."""

    def __init__(self, auto: bool, batches=()) -> None:
        super().__init__()
        self.auto = auto
        self.batches: list[bytes] = []
        self.waiting: list = []
        for b in batches:
            self._store(b)
        self.hw = self._leo()

    def _leo(self) -> int:
        return sum(h.record_count for b in self.batches for h, _ in iter_batches(b))

    def _store(self, data: bytes) -> None:
        buf = bytearray(data)
        stamp(buf, 0, self._leo(), EPOCH)
        self.batches.append(bytes(buf))

    def on_receive(self, message):
        match message:
            case R.Append():
                self._store(message.records)
                if self.auto:
                    self.hw = self._leo()
                    message.reply(P.ProducePartitionResponse(partition=0))
                else:
                    self.waiting.append((len(self.batches), message.reply))
            case R.Read():
                data = b"".join(b for b in self.batches
                                if message.fetch_offset < self._end(b) <= self.hw)
                message.reply(P.FetchPartitionResponse(partition=0, high_watermark=self.hw,
                                                       records=data))
            case ("ack", code):
                count, reply = self.waiting.pop(0)
                if code == E.NONE:
                    self.hw = self._end(self.batches[count - 1])
                else:
                    del self.batches[count - 1:]  # not written
                reply(P.ProducePartitionResponse(partition=0, error_code=code))
            case ("waiting",):
                return len(self.waiting)
            case ("appends",):
                return [[cbor2.loads(r.key) for r in decode_records(mv)]
                        for b in self.batches for _, mv in iter_batches(b)]
        return None

    @staticmethod
    def _end(batch: bytes) -> int:
        return next(iter_batches(batch))[0].next_offset


def image(leader_of_0: int = 1) -> MetadataImage:
    parts = {0: PartitionInfo(partition=0, replicas=(1, 2), isr=(1, 2), leader=leader_of_0,
                              leader_epoch=EPOCH),
             1: PartitionInfo(partition=1, replicas=(1, 2), isr=(1, 2), leader=2,
                              leader_epoch=EPOCH)}
    return MetadataImage(
        brokers={b: BrokerInfo(broker_id=b, host="h", port=b, fenced=False) for b in (1, 2)},
        topics={SST.SHARE_STATE_TOPIC: TopicInfo(name=SST.SHARE_STATE_TOPIC, topic_id="s",
                                                 partitions=parts)})


class Coordinator:
    def __init__(self, auto: bool, batches=()) -> None:
        self.log = FakeLog.start(auto, list(batches))
        ctx = SimpleNamespace(broker_id=1, replicas={(SST.SHARE_STATE_TOPIC, 0): self.log})
        self.actor = SST.ShareStateActor.start(ctx)

    def lead(self) -> None:
        self.actor.tell(SST.ImageChanged(image()))

    def send(self, request) -> Future:
        answered: Future = Future()
        self.actor.tell(SST.ShareStateRequest(request, answered.set_result))
        return answered

    def waiting(self) -> int:
        return self.log.ask(("waiting",))

    def stop(self) -> None:
        self.actor.stop()
        self.log.stop()


@pytest.fixture
def make():
    made: list[Coordinator] = []

    def _make(auto: bool, batches=()) -> Coordinator:
        made.append(Coordinator(auto, batches))
        return made[-1]

    yield _make
    for c in made:
        c.stop()


def write(g, t, p, *batches, start=0, leader_epoch=1, state_epoch=0):
    return P.WriteShareGroupStateRequest(
        group_id=g, topic=t, partition=p, state_epoch=state_epoch, leader_epoch=leader_epoch,
        start_offset=start, state_batches=tuple(P.ShareStateBatch(
            first_offset=f, last_offset=last, delivery_state=s, delivery_count=1)
            for f, last, s in batches))


def read(g, t, p, leader_epoch=1):
    return P.ReadShareGroupStateRequest(group_id=g, topic=t, partition=p,
                                        leader_epoch=leader_epoch)


ACK = P.RECORD_ACKNOWLEDGED


def test_loading_then_answers_only_after_the_append_and_group_commit(make):
    c = make(auto=False)
    mine = key_on(0)
    assert c.send(read(*mine)).result(5).error_code == E.COORDINATOR_NOT_AVAILABLE  # no topic
    c.lead()
    wait_until(lambda: c.waiting() == 1, 5, "the load barrier")
    assert c.send(read(*mine)).result(5).error_code == E.COORDINATOR_LOAD_IN_PROGRESS
    assert c.send(read(*key_on(1))).result(5).error_code == E.NOT_COORDINATOR
    c.log.tell(("ack", E.NONE))  # the barrier: loaded
    wait_until(lambda: c.send(read(*mine)).result(5).error_code == E.NONE, 5, "loaded")

    first = c.send(write(*mine, (0, 9, ACK)))
    wait_until(lambda: c.waiting() == 1, 5, "the first append")
    assert not first.done()  # not durable yet: not answered
    # meanwhile: three writes of one share-partition, one of another, and a read
    other = key_on(0, topic="u")
    more = [c.send(write(*mine, (o, o, ACK))) for o in (10, 11, 12)]
    more.append(c.send(write(*other, (0, 0, ACK))))
    behind = c.send(read(*mine))
    c.log.tell(("ack", E.NONE))
    assert first.result(5).error_code == E.NONE
    wait_until(lambda: c.waiting() == 1, 5, "the group commit")
    assert not any(f.done() for f in [*more, behind])
    c.log.tell(("ack", E.NONE))
    assert {f.result(5).error_code for f in more} == {E.NONE}
    r = behind.result(5)  # queued behind the writes: sees them, once durable
    assert [(b.first_offset, b.last_offset) for b in r.state_batches] == [(0, 12)]
    appends = c.log.ask(("appends",))
    assert len(appends) == 3  # barrier, first write, ONE append for the four writes
    assert [k["topic"] for k in appends[2]] == ["t", "u"]  # one record per share-partition


def test_a_failed_append_answers_an_error_and_reloads_what_is_durable(make):
    c = make(auto=False)
    mine = key_on(0)
    c.lead()
    wait_until(lambda: c.waiting() == 1, 5, "the load barrier")
    c.log.tell(("ack", E.NONE))
    wait_until(lambda: c.send(read(*mine)).result(5).error_code == E.NONE, 5, "loaded")
    ok = c.send(write(*mine, (0, 4, ACK)))
    wait_until(lambda: c.waiting() == 1, 5, "an append")
    c.log.tell(("ack", E.NONE))
    assert ok.result(5).error_code == E.NONE
    lost = c.send(write(*mine, (5, 9, ACK), start=5))
    wait_until(lambda: c.waiting() == 1, 5, "an append")
    c.log.tell(("ack", E.NOT_LEADER_OR_FOLLOWER))
    assert lost.result(5).error_code == E.NOT_COORDINATOR
    wait_until(lambda: c.waiting() == 1, 5, "the reload's barrier")
    c.log.tell(("ack", E.NONE))

    def durable():
        r = c.send(read(*mine)).result(5)
        return r.error_code == E.NONE and r

    r = wait_until(durable, 5, "reloaded")
    assert (r.start_offset, [(b.first_offset, b.last_offset) for b in r.state_batches]) == (
        0, [(0, 4)])  # the refused write is not there


def test_load_replays_the_partition_and_skips_foreign_records(make):
    g, t, p = key_on(0)
    state = SR.ShareState(2, 7, 100, (SR.StateBatch(100, 104, P.RECORD_AVAILABLE, 3, 55),))
    old = SR.ShareState(0, 1, 0, ())
    b = BatchBuilder()
    for record in (SR.ShareStateRecord(SR.SharePartitionKey(g, t, p), old),
                   SR.ShareStateRecord(SR.SharePartitionKey(g, t, p), state)):
        b.append(1, *encode_record(record))
    b.append(1, cbor2.dumps({"type": "nonsense"}), b"\xff")
    c = make(auto=True, batches=[b.build()])
    c.lead()

    def loaded():
        r = c.send(read(g, t, p, leader_epoch=7)).result(5)
        return r.error_code == E.NONE and r

    r = wait_until(loaded, 5, "loaded")
    assert (r.state_epoch, r.leader_epoch, r.start_offset) == (2, 7, 100)
    assert r.state_batches == (P.ShareStateBatch(first_offset=100, last_offset=104,
                                                 delivery_state=P.RECORD_AVAILABLE,
                                                 delivery_count=3, available_at_ms=55),)


def test_losing_the_leadership_unloads(make):
    c = make(auto=True)
    mine = key_on(0)
    c.lead()
    wait_until(lambda: c.send(read(*mine)).result(5).error_code == E.NONE, 5, "loaded")
    c.actor.tell(SST.ImageChanged(image(leader_of_0=2)))
    assert c.send(write(*mine, (0, 0, ACK))).result(5).error_code == E.NOT_COORDINATOR


def test_a_request_of_another_api_is_refused():
    actor = SST.ShareStateActor.start(SimpleNamespace(broker_id=1, replicas={}))
    try:
        answered: Future = Future()
        actor.tell(SST.ShareStateRequest(P.ApiVersionsRequest(), answered.set_result))
        assert answered.result(5).error_code == E.INVALID_REQUEST
    finally:
        actor.stop()


def test_the_topic_is_compacted_and_capped_at_the_registered_brokers():
    one = creatable({}, brokers=1)
    assert (one.name, one.num_partitions, one.replication_factor) == (SST.SHARE_STATE_TOPIC, 50, 1)
    assert one.configs["cleanup.policy"] == "compact" and one.configs["min.insync.replicas"] == "1"
    three = creatable({"share.coordinator.state.topic.num.partitions": "7"}, brokers=5)
    assert (three.num_partitions, three.replication_factor) == (7, 3)
    assert three.configs["min.insync.replicas"] == "2"
    for bad in ({"share.coordinator.state.topic.min.isr": "0"},
                {"share.coordinator.state.topic.segment.bytes": "x"},
                {"share.coordinator.state.topic.num.partition": "3"}):  # a typo: did you mean
        with pytest.raises(ConfigError):
            validate_broker_configs(bad)
