"""The transaction coordinator actor (actors/txn_coordinator.py) with the real core, a fake
``__transaction_state`` replica whose appends the test acknowledges (or refuses), a fake
controller handing out producer ids when the test says so, and a fake inter-broker send:
answers only once the records are durable, markers only after the Prepare* record is,
``markers_written`` once every leader answered, reload from the log after a failed append,
markers of loaded Prepare* transactions sent again, and no operation lost while it waits for
a producer id."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from types import SimpleNamespace

import cbor2
import pytest
from rillet.actors import controller as C
from rillet.actors import partition as R
from rillet.actors import txn_coordinator as TC
from rillet.actors.runtime import DispatchedActor
from rillet.actors.ticker import now_ms
from rillet.coordinator import transactions as T
from rillet.coordinator.metadata import BrokerInfo, MetadataImage, PartitionInfo, TopicInfo
from rillet.coordinator.transactions.state import TxnMetadata, TxnState
from rillet.logstore.batch import decode_records, iter_batches, stamp
from rillet.transport import protocol as P

from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)
E = P.ErrorCode
EPOCH = 4  # the leader epoch of __transaction_state-0 here: the coordinator epoch


class FakeLog(DispatchedActor):
    """``__transaction_state-0``: appends are stamped and kept; each waits for the test's
    ``("ack", code)`` unless ``auto`` (then acknowledged at once). The high watermark is the
    end of the acknowledged appends."""

    def __init__(self, auto: bool, batches: list[bytes] = ()) -> None:
        super().__init__()
        self.auto = auto
        self.batches: list[bytes] = []
        self.hw = 0
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
            case ("records",):
                out = []
                for b in self.batches:
                    for _, mv in iter_batches(b):
                        out.extend(decode_records(mv))
                return out
        return None

    @staticmethod
    def _end(batch: bytes) -> int:
        return next(iter_batches(batch))[0].next_offset


class FakeController(DispatchedActor):
    """Answers InitProducerId (no transactional id) with ids from 1000 up, once released."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list = []
        self.next_id = 1000

    def on_receive(self, message):
        match message:
            case C.Admin(request=P.InitProducerIdRequest(transactional_id=None)):
                self.asked.append(message.reply)
            case ("release", n):
                for reply in self.asked[:n]:
                    reply(P.InitProducerIdResponse(producer_id=self.next_id))
                    self.next_id += 1
                del self.asked[:n]
            case ("asked",):
                return len(self.asked)
        return None


class Coordinator:
    def __init__(self, auto: bool, batches: list[bytes] = (), configs=None) -> None:
        self.log = FakeLog.start(auto, list(batches))
        self.controller = FakeController.start()
        self.sent: list[tuple[int, P.WriteTxnMarkersRequest, Future]] = []
        self._lock = threading.Lock()
        ctx = SimpleNamespace(broker_id=1, controller=self.controller,
                              broker_configs=configs or {},
                              replicas={(TC.TXN_TOPIC, 0): self.log})
        self.actor = TC.TxnCoordinatorActor.start(ctx, self._send)
        self.answers: list = []
        partitions = {("t", 0): 1, ("t", 1): 2, (TC.TXN_TOPIC, 0): 1}
        topics: dict = {}
        for (name, p), leader in partitions.items():
            topics.setdefault(name, {})[p] = PartitionInfo(
                partition=p, replicas=(1, 2), isr=(1, 2), leader=leader,
                leader_epoch=EPOCH if name == TC.TXN_TOPIC else 0)
        self.actor.tell(TC.ImageChanged(MetadataImage(
            brokers={b: BrokerInfo(broker_id=b, host="h", port=b, fenced=False) for b in (1, 2)},
            topics={n: TopicInfo(name=n, topic_id=n, partitions=ps) for n, ps in topics.items()})))

    def _send(self, broker_id, request, timeout_ms):
        future: Future = Future()
        with self._lock:
            self.sent.append((broker_id, request, future))
        return future

    def call(self, request) -> None:
        self.actor.tell(TC.TxnRequest(request, self.answers.append))

    def answer(self, n: int):
        wait_until(lambda: len(self.answers) >= n, 10, f"{n} answers")
        assert len(self.answers) == n
        return self.answers[-1]

    def loaded(self) -> None:
        """Acknowledge the barrier (if held) and wait until requests are served."""
        wait_until(lambda: self.log.ask(("waiting",)) or self._served(), 10, "the barrier")
        if self.log.ask(("waiting",)):
            self.log.tell(("ack", E.NONE))
        wait_until(self._served, 10, "the shard loaded")

    def _served(self) -> bool:
        probe: list = []
        self.actor.tell(TC.TxnRequest(P.EndTxnRequest(
            transactional_id="probe", producer_id=1, producer_epoch=0, committed=True),
            probe.append))
        wait_until(lambda: probe, 5, "a probe answer")
        return probe[0].error_code != E.COORDINATOR_LOAD_IN_PROGRESS

    def states(self) -> list[str]:
        return [cbor2.loads(r.value)["state"] for r in self.log.ask(("records",))
                if r.value is not None and r.key != b"\xa0"]  # not the foreign record

    def stop(self) -> None:
        for ref in (self.actor, self.log, self.controller):
            ref.stop()


@pytest.fixture
def make():
    made: list[Coordinator] = []

    def build(auto: bool, batches: list[bytes] = (), configs=None) -> Coordinator:
        made.append(Coordinator(auto, batches, configs))
        return made[-1]

    yield build
    for c in made:
        c.stop()


def init(tid: str = "app") -> P.InitProducerIdRequest:
    return P.InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=60_000)


def add(pid: int, epoch: int, *tps: tuple[str, int], verify: bool = False):
    by: dict[str, list[int]] = {}
    for t, p in tps:
        by.setdefault(t, []).append(p)
    return P.AddPartitionsToTxnRequest(
        transactional_id="app", producer_id=pid, producer_epoch=epoch, verify_only=verify,
        topics=tuple(P.TxnTopic(name=t, partitions=tuple(ps)) for t, ps in by.items()))


def test_an_answer_waits_for_a_producer_id_and_then_for_the_append(make):
    c = make(auto=False)
    wait_until(lambda: c.log.ask(("waiting",)) == 1, 10, "the barrier written first")
    c.call(init())
    assert c.answer(1).error_code == E.COORDINATOR_LOAD_IN_PROGRESS  # barrier not durable
    c.log.tell(("ack", E.NONE))
    wait_until(lambda: c.controller.ask(("asked",)) > 0, 10, "producer ids asked for")
    c.call(init())
    c.controller.tell(("release", 1))
    wait_until(lambda: c.log.ask(("waiting",)) == 1, 10, "the Empty record appended")
    assert len(c.answers) == 1  # not before the append is acknowledged
    c.log.tell(("ack", E.NONE))
    r = c.answer(2)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (E.NONE, 1000, 0)
    assert c.states() == ["Empty"]


def test_markers_go_out_once_the_prepare_is_durable_then_the_commit_completes(make):
    c = make(auto=False)
    c.loaded()
    c.controller.tell(("release", 8))
    n = len(c.answers)
    c.call(init())
    wait_until(lambda: c.log.ask(("waiting",)) == 1, 10, "append")
    c.log.tell(("ack", E.NONE))
    pid = c.answer(n + 1).producer_id
    c.call(add(pid, 0, ("t", 0), ("t", 1)))
    wait_until(lambda: c.log.ask(("waiting",)) == 1, 10, "append")
    c.log.tell(("ack", E.NONE))
    assert c.answer(n + 2).error_code == E.NONE
    c.call(P.EndTxnRequest(transactional_id="app", producer_id=pid, producer_epoch=0,
                           committed=True))
    wait_until(lambda: c.log.ask(("waiting",)) == 1, 10, "the PrepareCommit append")
    assert c.sent == [] and len(c.answers) == n + 2  # nothing before it is durable
    c.log.tell(("ack", E.NONE))
    r = c.answer(n + 3)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (E.NONE, pid, 1)
    wait_until(lambda: len(c.sent) == 2, 10, "one marker request per leader")
    by_leader = {b: req for b, req, _ in c.sent}
    assert set(by_leader) == {1, 2}
    marker = by_leader[2].markers[0]
    assert (marker.producer_id, marker.producer_epoch, marker.transaction_result,
            marker.coordinator_epoch) == (pid, 1, True, EPOCH)
    assert [(t.name, t.partitions) for t in marker.topics] == [("t", (1,))]
    for b, _req, future in c.sent:
        future.set_result(P.WriteTxnMarkersResponse(markers=(P.WritableTxnMarkerResult(
            producer_id=pid, topics=(P.TopicPartitionErrors(name="t", partitions=(
                P.PartitionError(partition=b - 1),)),)),)))
    wait_until(lambda: c.log.ask(("waiting",)) == 1, 10, "the CompleteCommit append")
    c.log.tell(("ack", E.NONE))
    wait_until(lambda: c.states()[-1] == "CompleteCommit", 10, "CompleteCommit")
    assert c.states() == ["Empty", "Ongoing", "PrepareCommit", "CompleteCommit"]


def test_a_failed_append_answers_an_error_and_reloads_from_the_log(make):
    c = make(auto=False)
    c.loaded()
    c.controller.tell(("release", 8))
    n = len(c.answers)
    c.call(init())
    wait_until(lambda: c.log.ask(("waiting",)) == 1, 10, "append")
    c.log.tell(("ack", E.NONE))
    pid = c.answer(n + 1).producer_id
    c.call(add(pid, 0, ("t", 0)))
    wait_until(lambda: c.log.ask(("waiting",)) == 1, 10, "append")
    c.log.tell(("ack", E.NOT_LEADER_OR_FOLLOWER))
    assert c.answer(n + 2).error_code == E.NOT_COORDINATOR
    c.loaded()  # a new barrier, then the log read again
    k = len(c.answers)
    c.call(add(pid, 0, ("t", 0), verify=True))
    r = c.answer(k + 1)  # the refused append left no trace in the state
    assert [(p.partition, p.error_code) for t in r.results for p in t.partitions] == [
        (0, E.INVALID_TXN_STATE)]


def test_a_loaded_prepare_commit_gets_its_markers_again(make):
    from rillet.logstore.batch import BatchBuilder

    meta = TxnMetadata(transactional_id="app", producer_id=77, producer_epoch=3,
                       last_producer_id=77, last_producer_epoch=2, timeout_ms=60_000,
                       state=TxnState.PREPARE_COMMIT,
                       partitions=frozenset({T.TopicPartition("t", 0)}), txn_start_ms=1,
                       last_update_ms=2)
    key, value = T.to_kv(T.TxnRecord("app", meta))
    b = BatchBuilder()
    b.append(1, cbor2.dumps(key), cbor2.dumps(value))
    b.append(2, b"\xa0", b"not a record")  # a foreign record: skipped, loading goes on
    c = make(auto=True, batches=[b.build()])
    wait_until(lambda: c.sent, 10, "the markers sent again")
    [(leader, req, future)] = c.sent
    marker = req.markers[0]
    assert leader == 1 and (marker.producer_id, marker.producer_epoch,
                            marker.coordinator_epoch) == (77, 3, EPOCH)
    future.set_result(None)  # no answer: retried after the backoff, on a tick
    wait_until(lambda: c.actor.tell(TC.TxnTick(now_ms())) or len(c.sent) == 2, 10,
               "the marker retried")
    c.sent[1][2].set_result(P.WriteTxnMarkersResponse(markers=(P.WritableTxnMarkerResult(
        producer_id=77, topics=(P.TopicPartitionErrors(name="t", partitions=(
            P.PartitionError(partition=0),)),)),)))
    wait_until(lambda: c.states()[-1] == "CompleteCommit", 10, "CompleteCommit")


def _commit_with_markers_pending(c: Coordinator) -> tuple[int, int]:
    """Init, add t-0, EndTxn(commit) answered: the markers are sent, not yet answered."""
    c.loaded()
    c.controller.tell(("release", 8))
    n = len(c.answers)
    c.call(init())
    pid = c.answer(n + 1).producer_id
    c.call(add(pid, 0, ("t", 0)))
    assert c.answer(n + 2).error_code == E.NONE
    c.call(P.EndTxnRequest(transactional_id="app", producer_id=pid, producer_epoch=0,
                           committed=True))
    assert c.answer(n + 3).producer_epoch == 1
    wait_until(lambda: len(c.sent) == 1, 10, "the marker sent")
    return pid, n + 3


def test_a_request_meeting_markers_in_flight_waits_for_them(make):
    c = make(auto=True)
    pid, n = _commit_with_markers_pending(c)
    c.call(P.EndTxnRequest(transactional_id="app", producer_id=pid, producer_epoch=0,
                           committed=True))  # a retry of the commit
    c.call(add(pid, 1, ("t", 1)))  # the next transaction, while the COMMIT is written
    c.actor.tell(TC.TxnTick(now_ms()))
    assert len(c.answers) == n  # held, not CONCURRENT_TRANSACTIONS
    [(_, _, future)] = c.sent
    future.set_result(P.WriteTxnMarkersResponse(markers=(P.WritableTxnMarkerResult(
        producer_id=pid, topics=(P.TopicPartitionErrors(name="t", partitions=(
            P.PartitionError(partition=0),)),)),)))
    wait_until(lambda: len(c.answers) == n + 2, 10, "both answered once complete")
    retried, added = c.answers[n:]  # in their order
    assert added.error_code == E.NONE
    assert (retried.error_code, retried.producer_epoch) == (E.NONE, 1)
    assert c.states()[-2:] == ["CompleteCommit", "Ongoing"]


def test_a_held_request_gets_concurrent_transactions_after_its_deadline(make):
    c = make(auto=True)
    pid, n = _commit_with_markers_pending(c)
    c.call(add(pid, 1, ("t", 1)))
    c.actor.tell(TC.TxnTick(now_ms()))
    assert len(c.answers) == n
    # well past the park's deadline: the actor reads its own clock when it parks the request,
    # which a loaded machine may make seconds later than this test's now_ms() (a 1 ms margin
    # failed under load)
    c.actor.tell(TC.TxnTick(now_ms() + TC._PARK_MS + 10_000))
    assert c.answer(n + 1).error_code == E.CONCURRENT_TRANSACTIONS
    assert c.states()[-1] == "PrepareCommit"


def test_ticks_abort_timed_out_transactions_and_expire_idle_ids(make):
    c = make(auto=True, configs={
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "50",
        "transactional.id.expiration.ms": "60000",
        "transaction.remove.expired.transaction.cleanup.interval.ms": "50"})
    c.loaded()
    c.controller.tell(("release", 8))
    n = len(c.answers)
    c.call(P.InitProducerIdRequest(transactional_id="app", transaction_timeout_ms=1000))
    pid = c.answer(n + 1).producer_id
    c.call(add(pid, 0, ("t", 0)))
    assert c.answer(n + 2).error_code == E.NONE
    c.actor.tell(TC.TxnTick(now_ms() + 500))  # not yet
    c.actor.tell(TC.TxnTick(now_ms() + 5_000))  # past the transaction's timeout
    wait_until(lambda: c.states()[-1] == "PrepareAbort", 10, "the timed-out abort")
    wait_until(lambda: c.sent, 10, "its ABORT marker sent")
    marker = c.sent[0][1].markers[0]
    assert (marker.producer_id, marker.producer_epoch, marker.transaction_result) == (
        pid, 1, False)
    c.sent[0][2].set_result(P.WriteTxnMarkersResponse(markers=(P.WritableTxnMarkerResult(
        producer_id=pid, topics=(P.TopicPartitionErrors(name="t", partitions=(
            P.PartitionError(partition=0),)),)),)))
    wait_until(lambda: c.states()[-1] == "CompleteAbort", 10, "CompleteAbort")
    c.actor.tell(TC.TxnTick(now_ms() + 120_000))  # idle past transactional.id.expiration.ms
    wait_until(lambda: c.log.ask(("records",))[-1].value is None, 10, "the tombstone")
    assert c.log.ask(("records",))[-1].key == cbor2.dumps(
        {"type": "transaction", "transactional_id": "app"})
