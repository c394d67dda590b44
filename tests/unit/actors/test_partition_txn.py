"""The partition side of transactions in one process: a real ``PartitionReplica`` actor on a
real log directory, with an injected transaction verifier (docs/transactions.md,
"Partition wiring"): verification and its cache, the LSO and read_committed fetches,
markers (ABORT, COMMIT, stale ones), a parked read_committed fetch woken by a marker,
producer expiry, reopening, and a follower's copy of the transaction state."""

from __future__ import annotations

import threading
import time

import pykka
import pytest
from rillet.actors import partition as R
from rillet.actors.partition_txn import VERIFY_PARK_MS
from rillet.actors.txn_messages import TxnMarkerWritten
from rillet.coordinator.metadata import PartitionInfo
from rillet.logstore.batch import BatchBuilder, iter_batches, records
from rillet.logstore.config import LogConfig
from rillet.transport import protocol as P

pytestmark = pytest.mark.timeout(30)
E = P.ErrorCode
PID = 7
TID = "app-1"


class Box:
    """Collects callback results across threads."""

    def __init__(self) -> None:
        self.items: list = []
        self.event = threading.Event()

    def __call__(self, item) -> bool:
        self.items.append(item)
        self.event.set()
        return True

    def get(self, timeout: float = 5.0):
        assert self.event.wait(timeout), "no answer"
        return self.items[-1]


class FakeVerifier:
    """Answers ``code`` at once (``auto``) or when the test calls ``release``."""

    def __init__(self, code: int = E.NONE, auto: bool = True) -> None:
        self.code, self.auto = code, auto
        self.calls: list[tuple] = []
        self.pending: list = []

    def verify(self, tid, pid, epoch, topic, partition, answer) -> None:
        self.calls.append((tid, pid, epoch, topic, partition))
        if self.auto:
            answer(self.code)
        else:
            self.pending.append(answer)

    def release(self, code: int = E.NONE) -> None:
        pending, self.pending = self.pending, []
        for answer in pending:
            answer(code)


def now() -> int:
    return int(time.time() * 1000)


def txn(seq: int, values, *, pid: int = PID, epoch: int = 0, transactional=True) -> bytes:
    b = BatchBuilder(
        producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=transactional
    )
    for v in values:
        b.append(now(), None, v)
    return b.build()


def plain(values) -> bytes:
    b = BatchBuilder()
    for v in values:
        b.append(now(), None, v)
    return b.build()


def start(directory, verifier=None, **kw) -> pykka.ActorRef:
    return R.PartitionReplica.start(
        "t", 0, directory, LogConfig(), 0, 1, "id", txn_verifier=verifier, **kw
    )


@pytest.fixture
def stop_all():
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


def produce(ref, data: bytes, tid: str | None = TID, acks: int = 1):
    box = Box()
    ref.tell(R.Append(data, box, acks, transactional_id=tid))
    return box


def appended(ref, data: bytes, tid: str | None = TID) -> int:
    answer = produce(ref, data, tid).get()
    assert answer.error_code == E.NONE, answer
    return answer.base_offset


def fetch(ref, offset: int = 0, isolation: int = P.READ_COMMITTED) -> P.FetchPartitionResponse:
    box = Box()
    ref.tell(R.Read(offset, 1 << 20, box, None, isolation_level=isolation))
    return box.get()


def marker(ref, committed: bool, *, pid=PID, epoch=1, coordinator_epoch=0) -> int:
    box = Box()
    ref.tell(R.WriteMarker(pid, epoch, committed, coordinator_epoch, box))
    return box.get()


def list_latest(ref, isolation: int) -> int:
    box = Box()
    ref.tell(R.ListOffset(P.LATEST_TIMESTAMP, box, isolation))
    return box.get().offset


def visible(response: P.FetchPartitionResponse) -> list[bytes]:
    """What a read_committed consumer keeps of a fetch (the client's filter)."""
    aborted = {(a.producer_id, a.first_offset) for a in response.aborted_transactions or ()}
    out, skipping = [], set()
    for header, view in iter_batches(response.records):
        if header.is_control:
            skipping.discard(header.producer_id)
            continue
        if header.is_transactional and any(
            pid == header.producer_id and first <= header.base_offset for pid, first in aborted
        ):
            skipping.add(header.producer_id)
        if header.producer_id in skipping:
            continue
        out.extend(r.value for r in records(bytes(view)))
    return out


def test_an_open_transaction_holds_read_committed_at_the_lso(tmp_path, stop_all) -> None:
    verifier = FakeVerifier()
    ref = start(tmp_path / "t-0", verifier)
    assert appended(ref, plain([b"a"]), tid=None) == 0
    assert appended(ref, txn(0, [b"t1", b"t2"])) == 1
    assert appended(ref, txn(2, [b"t3"])) == 3
    assert verifier.calls == [(TID, PID, 0, "t", 0)]  # verified once, then cached
    assert appended(ref, plain([b"b"]), tid=None) == 4

    committed = fetch(ref)
    assert (committed.high_watermark, committed.last_stable_offset) == (5, 1)
    assert [r.value for r in records(committed.records)] == [b"a"]
    assert committed.aborted_transactions == ()
    assert fetch(ref, 1).records == b"" and fetch(ref, 1).error_code == E.NONE

    uncommitted = fetch(ref, isolation=P.READ_UNCOMMITTED)
    assert uncommitted.last_stable_offset == 1 and uncommitted.aborted_transactions is None
    assert [r.value for r in records(uncommitted.records)] == [b"a", b"t1", b"t2", b"t3", b"b"]
    assert list_latest(ref, P.READ_COMMITTED) == 1
    assert list_latest(ref, P.READ_UNCOMMITTED) == 5


def test_abort_marker_moves_the_lso_and_wakes_a_parked_read_committed_fetch(
    tmp_path, stop_all
) -> None:
    ref = start(tmp_path / "t-0", FakeVerifier())
    appended(ref, txn(0, [b"t1", b"t2"]))
    first, woken = Box(), Box()
    ref.tell(R.Read(0, 1 << 20, first, woken, deadline_ms=now() + 20_000, isolation_level=1))
    assert first.get().records == b""  # nothing stable yet: parked
    appended(ref, plain([b"p"]), tid=None)  # the HW moves inside the open transaction
    assert fetch(ref).last_stable_offset == 0  # (processed after the append)
    assert not woken.event.is_set()  # the LSO did not move: still parked

    assert marker(ref, committed=False) == E.NONE
    response = woken.get()
    assert response.last_stable_offset == response.high_watermark == 4  # marker at 3
    assert response.aborted_transactions == (P.AbortedTransaction(producer_id=PID, first_offset=0),)
    assert visible(response) == [b"p"]
    again = fetch(ref)
    assert again.aborted_transactions == response.aborted_transactions
    assert fetch(ref, 4).aborted_transactions == ()  # nothing read: nothing to skip


def test_commit_marker_makes_the_records_visible(tmp_path, stop_all) -> None:
    ref = start(tmp_path / "t-0", FakeVerifier())
    appended(ref, txn(0, [b"t1", b"t2"]))
    assert fetch(ref).records == b""
    assert marker(ref, committed=True) == E.NONE
    response = fetch(ref)
    assert response.last_stable_offset == 3 and response.aborted_transactions == ()
    assert visible(response) == [b"t1", b"t2"]
    assert list_latest(ref, P.READ_COMMITTED) == 3


def test_stale_markers_are_refused_and_write_nothing(tmp_path, stop_all) -> None:
    ref = start(tmp_path / "t-0", FakeVerifier())
    appended(ref, txn(0, [b"x"]))
    assert marker(ref, committed=False, epoch=1, coordinator_epoch=5) == E.NONE  # bumped
    end = list_latest(ref, P.READ_UNCOMMITTED)
    assert marker(ref, False, epoch=0, coordinator_epoch=5) == E.INVALID_PRODUCER_EPOCH
    assert marker(ref, False, epoch=1, coordinator_epoch=4) == E.TRANSACTION_COORDINATOR_FENCED
    assert list_latest(ref, P.READ_UNCOMMITTED) == end  # nothing written
    # a producer that never wrote here: written, completes nothing, indexes nothing
    assert marker(ref, committed=False, pid=99) == E.NONE
    assert fetch(ref).aborted_transactions == (
        P.AbortedTransaction(producer_id=PID, first_offset=0),
    )


def test_the_verified_cache_is_dropped_after_the_marker(tmp_path, stop_all) -> None:
    verifier = FakeVerifier()
    ref = start(tmp_path / "t-0", verifier)
    appended(ref, txn(0, [b"a"]))
    appended(ref, txn(1, [b"b"]))
    assert len(verifier.calls) == 1
    assert marker(ref, committed=True) == E.NONE  # at the bumped epoch (KIP-890 part 2)
    appended(ref, txn(0, [b"c"], epoch=1))  # the next transaction: asked again
    assert len(verifier.calls) == 2


def test_a_refused_verification_appends_nothing(tmp_path, stop_all) -> None:
    for code in (E.INVALID_TXN_STATE, E.COORDINATOR_NOT_AVAILABLE, E.INVALID_PRODUCER_EPOCH):
        ref = start(tmp_path / f"t-{code}", FakeVerifier(code))
        answer = produce(ref, txn(0, [b"x"])).get()
        assert answer.error_code == code
        assert list_latest(ref, P.READ_UNCOMMITTED) == 0
        # without a transactional id nothing is asked: refused by the validator
        answer = produce(ref, txn(0, [b"x"]), tid=None).get()
        assert answer.error_code == E.INVALID_TXN_STATE
        ref.stop()


def test_a_parked_append_does_not_block_the_actor_and_keeps_order(tmp_path, stop_all) -> None:
    verifier = FakeVerifier(auto=False)
    ref = start(tmp_path / "t-0", verifier)
    first = produce(ref, txn(0, [b"a", b"b"]))
    second = produce(ref, txn(2, [b"c"]))  # parked behind the first's verification
    assert appended(ref, plain([b"other"]), tid=None) == 0  # the actor goes on meanwhile
    assert not first.event.is_set() and not second.event.is_set()
    assert len(verifier.calls) == 1
    verifier.release(E.NONE)
    assert (first.get().base_offset, second.get().base_offset) == (1, 3)
    assert [r.value for r in records(fetch(ref, isolation=0).records)] == [
        b"other",
        b"a",
        b"b",
        b"c",
    ]


def test_a_verification_that_never_answers_times_out(tmp_path, stop_all) -> None:
    clock = [now()]
    verifier = FakeVerifier(auto=False)
    ref = start(tmp_path / "t-0", verifier, clock=lambda: clock[0])
    parked = produce(ref, txn(0, [b"a"]))
    assert appended(ref, plain([b"x"]), tid=None) == 0
    clock[0] += VERIFY_PARK_MS + 1
    ref.tell(R.Tick(clock[0]))
    assert parked.get().error_code == E.COORDINATOR_NOT_AVAILABLE
    verifier.release(E.NONE)  # a late answer changes nothing
    assert list_latest(ref, P.READ_UNCOMMITTED) == 1


def test_producer_expiry_keeps_a_producer_with_an_open_transaction(tmp_path, stop_all) -> None:
    ref = start(tmp_path / "t-0", FakeVerifier(), producer_id_expiration_ms=1000)
    appended(ref, txn(0, [b"a"]))
    ref.tell(R.ExpireProducers(now() + 86_400_000))
    assert fetch(ref).last_stable_offset == 0  # still open: the LSO holds
    assert marker(ref, committed=True) == E.NONE
    assert fetch(ref).last_stable_offset == 2


def test_reopening_rebuilds_a_missing_aborted_index(tmp_path, stop_all) -> None:
    directory = tmp_path / "t-0"
    ref = start(directory, FakeVerifier())
    appended(ref, txn(0, [b"a"]))
    assert marker(ref, committed=False) == E.NONE
    expected = fetch(ref).aborted_transactions
    assert expected == (P.AbortedTransaction(producer_id=PID, first_offset=0),)
    ref.stop()
    index = {f.name: f.read_bytes() for f in directory.glob("*.txnindex")}
    assert index, "the clean close writes the active segment's index"
    for name in index:
        (directory / name).unlink()  # as recovery does for every segment it revalidates
    ref = start(directory, FakeVerifier())
    again = fetch(ref)
    assert again.aborted_transactions == expected and again.last_stable_offset == 2
    ref.stop()
    assert {f.name: f.read_bytes() for f in directory.glob("*.txnindex")} == index


def test_a_follower_builds_the_same_transaction_state(tmp_path, stop_all) -> None:
    leader = start(tmp_path / "leader" / "t-0", FakeVerifier())
    info = PartitionInfo(partition=0, replicas=(1, 2), isr=(1, 2), leader=1, leader_epoch=0)
    follower = R.PartitionReplica.start(
        "t", 0, tmp_path / "follower" / "t-0", LogConfig(), 0, 2, "id", info=info
    )
    appended(leader, txn(0, [b"a", b"b"]))
    appended(leader, plain([b"p"]), tid=None)
    appended(leader, txn(0, [b"q"], pid=8))
    assert marker(leader, committed=False) == E.NONE
    assert marker(leader, committed=True, pid=8) == E.NONE
    appended(leader, txn(0, [b"open"], pid=9))
    data = fetch(leader, isolation=P.READ_UNCOMMITTED)
    assert follower.ask(R.FollowerAppend(0, data.records, data.high_watermark)) is not None
    leader.stop()
    follower.stop()
    for pattern in ("*.txnindex", "*.snapshot"):
        ours = sorted((tmp_path / "leader" / "t-0").glob(pattern))
        theirs = sorted((tmp_path / "follower" / "t-0").glob(pattern))
        assert [f.name for f in ours] == [f.name for f in theirs] and ours, pattern
        assert [f.read_bytes() for f in ours] == [f.read_bytes() for f in theirs], pattern


def test_losing_leadership_answers_parked_appends_and_markers(tmp_path, stop_all) -> None:
    verifier = FakeVerifier(auto=False)
    ref = start(tmp_path / "t-0", verifier)
    parked = produce(ref, txn(0, [b"a"]))
    assert appended(ref, plain([b"x"]), tid=None) == 0  # (the append above is parked)
    follower = PartitionInfo(partition=0, replicas=(1, 2), isr=(1, 2), leader=2, leader_epoch=1)
    ref.tell(R.PartitionChanged(follower))
    assert parked.get().error_code == E.NOT_LEADER_OR_FOLLOWER
    verifier.release(E.NONE)  # a late answer writes nothing
    assert marker(ref, committed=True) == E.NOT_LEADER_OR_FOLLOWER
    assert fetch(ref, isolation=P.READ_UNCOMMITTED).error_code == E.NOT_LEADER_OR_FOLLOWER


def test_a_marker_on_consumer_offsets_is_told_to_the_group_coordinator(tmp_path, stop_all) -> None:
    told = Box()
    ref = R.PartitionReplica.start(
        "__consumer_offsets",
        3,
        tmp_path / "__consumer_offsets-3",
        LogConfig(),
        0,
        1,
        "id",
        on_txn_marker=told,
    )
    offsets = Box()
    ref.tell(R.Append(txn(0, [b"offset"]), offsets, -1, verified=True))  # the coordinator's
    assert offsets.get().error_code == E.NONE
    assert not told.event.is_set()
    assert marker(ref, committed=True) == E.NONE
    assert told.get() == TxnMarkerWritten(partition=3, producer_id=PID, committed=True, offset=1)
    # other topics never call it
    other = start(tmp_path / "t-0", FakeVerifier(), on_txn_marker=told)
    appended(other, txn(0, [b"a"]))
    assert marker(other, committed=False) == E.NONE
    assert len(told.items) == 1


def test_a_refusal_answers_only_the_appends_of_that_epoch(tmp_path, stop_all) -> None:
    verifier = FakeVerifier(auto=False)
    ref = start(tmp_path / "t-0", verifier)
    zombie = produce(ref, txn(0, [b"old"], epoch=0))
    current = produce(ref, txn(0, [b"new"], epoch=1))  # parked behind the same producer
    assert appended(ref, plain([b"x"]), tid=None) == 0
    verifier.release(E.INVALID_PRODUCER_EPOCH)  # epoch 0 is fenced
    assert zombie.get().error_code == E.INVALID_PRODUCER_EPOCH
    fetch(ref)  # a round trip: the actor finished handling the answer
    assert [c[2] for c in verifier.calls] == [0, 1]  # epoch 1 asked in its own turn
    verifier.release(E.NONE)
    assert current.get().error_code == E.NONE and current.get().base_offset == 1


def test_a_marker_during_verification_makes_the_answer_stale(tmp_path, stop_all) -> None:
    verifier = FakeVerifier(auto=False)
    ref = start(tmp_path / "t-0", verifier)
    late = produce(ref, txn(0, [b"late"]))  # a late batch of the transaction being ended
    assert marker(ref, committed=True) == E.NONE  # written while the question is out
    verifier.release(E.NONE)  # "yes": about the transaction the marker ended
    fetch(ref)  # a round trip: the answer was handled
    assert len(verifier.calls) == 2 and not late.event.is_set()  # asked again
    verifier.release(E.INVALID_TXN_STATE)  # the coordinator knows it ended
    assert late.get().error_code == E.INVALID_TXN_STATE
    response = fetch(ref)
    assert response.last_stable_offset == response.high_watermark == 1  # no hanging txn


def test_a_new_leader_trusts_a_transaction_already_open_in_its_log(tmp_path, stop_all) -> None:
    old = start(tmp_path / "old" / "t-0", FakeVerifier())
    appended(old, txn(0, [b"a"]))
    data = fetch(old, isolation=P.READ_UNCOMMITTED)
    info = PartitionInfo(partition=0, replicas=(1, 2), isr=(1, 2), leader=1, leader_epoch=0)
    refusing = FakeVerifier(E.INVALID_TXN_STATE)
    new = R.PartitionReplica.start(
        "t", 0, tmp_path / "new" / "t-0", LogConfig(), 0, 2, "id", info=info, txn_verifier=refusing
    )
    assert new.ask(R.FollowerAppend(0, data.records, data.high_watermark)) is not None
    promoted = PartitionInfo(partition=0, replicas=(1, 2), isr=(2,), leader=2, leader_epoch=1)
    new.tell(R.PartitionChanged(promoted))
    assert appended(new, txn(1, [b"b"])) == 1  # the open transaction: no question asked
    assert refusing.calls == []
    assert produce(new, txn(0, [b"c"], pid=8)).get().error_code == E.INVALID_TXN_STATE
    assert len(refusing.calls) == 1  # another producer's new transaction is asked about
    assert fetch(new).last_stable_offset == 0
