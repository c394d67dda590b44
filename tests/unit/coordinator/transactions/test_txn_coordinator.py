"""The transaction coordinator core: the transition table, every handler's rules, the
records and their replay (coordinator/transactions/)."""

from __future__ import annotations

import itertools

import pytest
from rillet.coordinator.transactions import (
    IllegalTransition,
    InvalidTxnRecord,
    TopicPartition,
    TransactionCoordinator,
    TxnMetadata,
    TxnState,
    WriteTxnMarkers,
    check_transition,
    from_kv,
    replay,
    to_kv,
)
from rillet.coordinator.transactions.state import VALID_PREVIOUS

S = TxnState
T0 = 1_000_000
TP1, TP2, TP3 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


class Harness:
    """A coordinator plus every record it ever emitted, and a producer id source."""

    def __init__(self, **config) -> None:
        self.c = TransactionCoordinator(coordinator_epoch=4, **config)
        self.log: list = []
        self.ids = itertools.count(1000)

    def allocate(self) -> int:
        return next(self.ids)

    def run(self, result):
        self.log.extend(result.records)
        # every record survives its encoding (what the actor writes to the topic)
        for r in result.records:
            assert from_kv(*to_kv(r)) == r
        # and the live state is the replay of everything emitted
        assert replay(self.log) == self.c.transactions
        return result

    def init(self, tid="app", timeout=60_000, now=T0, **kw):
        return self.run(self.c.init_producer_id(tid, timeout, now, self.allocate, **kw))

    def add(self, pid, epoch, tps, tid="app", now=T0):
        return self.run(self.c.add_partitions(tid, pid, epoch, tps, now))

    def end(self, pid, epoch, commit, tid="app", now=T0):
        return self.run(self.c.end_txn(tid, pid, epoch, commit, now, self.allocate))

    def done(self, effect, now=T0):
        return self.run(self.c.markers_written(effect, now))

    def state(self, tid="app") -> TxnMetadata:
        return self.c.transactions[tid]


def test_the_transition_table_is_checked_both_ways() -> None:
    for old, new in itertools.product(TxnState, TxnState):
        if old in VALID_PREVIOUS[new]:
            check_transition("x", old, new)
        else:
            with pytest.raises(IllegalTransition):
                check_transition("x", old, new)
    m = TxnMetadata(transactional_id="x", producer_id=1, producer_epoch=0, timeout_ms=1)
    with pytest.raises(IllegalTransition):
        m.to(S.PREPARE_COMMIT)  # Empty -> PrepareCommit is not legal
    assert m.state is S.EMPTY


def test_init_producer_id_allocates_then_bumps_and_fences_the_older_instance() -> None:
    h = Harness()
    r = h.init()
    assert (r.response.error, r.response.producer_id, r.response.producer_epoch) == (
        "NONE",
        1000,
        0,
    )
    assert h.state().state is S.EMPTY and len(r.records) == 1
    r2 = h.init()
    assert (r2.response.producer_id, r2.response.producer_epoch) == (1000, 1)
    # the first instance is a zombie now
    assert h.add(1000, 0, [TP1]).response.error == "PRODUCER_FENCED"
    assert h.add(1000, 2, [TP1]).response.error == "INVALID_PRODUCER_EPOCH"
    assert h.add(999, 1, [TP1]).response.error == "INVALID_PRODUCER_ID_MAPPING"
    assert h.add(1000, 1, [TP1], tid="other").response.error == "TRANSACTIONAL_ID_NOT_FOUND"
    assert h.add(1000, 1, [TP1]).response.error == "NONE"
    # KIP-360: a client naming an epoch that is not current is fenced
    assert h.init(producer_id=1000, producer_epoch=0).response.error == "PRODUCER_FENCED"


def test_a_fresh_init_forgets_the_pre_bump_pair_so_the_older_instance_stays_fenced() -> None:
    """Found by tests/sim/test_txn_sim.py (seed 389 of the slow run): instance A has
    1000/0; instance B starts fresh (no pair) and gets 1000/1; A, after an abortable error,
    re-initialises with its pair 1000/0 (KIP-360). That pair was the pre-bump pair of B's
    bump, so A was answered as if retrying it: 1000/1, the same producer as B, unfenced."""
    h = Harness()
    assert h.init().response.producer_epoch == 0  # A
    r = h.init()  # B: a fresh start bumps, and must not be retriable by anyone
    assert (r.response.producer_id, r.response.producer_epoch) == (1000, 1)
    assert h.state().state is S.EMPTY and h.state().last_producer_epoch == -1
    assert h.init(producer_id=1000, producer_epoch=0).response.error == "PRODUCER_FENCED"
    # a KIP-360 bump (the current pair) is still recognised when retried
    r = h.init(producer_id=1000, producer_epoch=1)
    assert (r.response.error, r.response.producer_epoch) == ("NONE", 2)
    again = h.init(producer_id=1000, producer_epoch=1)
    assert (again.response.error, again.response.producer_epoch) == ("NONE", 2)
    assert not again.records


@pytest.mark.parametrize("timeout", [0, -5, 900_001])
def test_invalid_transaction_timeouts_are_refused(timeout) -> None:
    h = Harness()
    r = h.init(timeout=timeout)
    assert r.response.error == "INVALID_TRANSACTION_TIMEOUT" and r.records == ()
    assert h.c.transactions == {}


def test_a_commit_goes_through_prepare_markers_and_complete() -> None:
    h = Harness()
    h.init()
    assert h.add(1000, 0, [TP1], now=T0 + 5).records
    assert h.add(1000, 0, [TP1], now=T0 + 6).records == ()  # already in: nothing written
    h.add(1000, 0, [TP2, TP3], now=T0 + 7)
    m = h.state()
    assert m.state is S.ONGOING and m.partitions == {TP1, TP2, TP3} and m.txn_start_ms == T0 + 5
    r = h.end(1000, 0, commit=True, now=T0 + 9)
    # KIP-890 part 2: the epoch is bumped at the end; markers carry the new epoch
    assert (r.response.error, r.response.producer_id, r.response.producer_epoch) == (
        "NONE",
        1000,
        1,
    )
    (effect,) = r.effects
    assert effect == WriteTxnMarkers("app", 1000, 1, 4, True, (TP1, TP2, TP3))
    assert h.state().state is S.PREPARE_COMMIT
    # while markers are in flight
    assert h.add(1000, 1, [TP1]).response.error == "CONCURRENT_TRANSACTIONS"
    assert h.init().response.error == "CONCURRENT_TRANSACTIONS"
    assert h.end(1000, 0, commit=True).response.error == "CONCURRENT_TRANSACTIONS"  # a retry
    assert h.done(effect).response.error == "NONE"
    m = h.state()
    assert m.state is S.COMPLETE_COMMIT and m.partitions == frozenset()
    assert h.done(effect).response.error == "INVALID_TXN_STATE"  # not twice
    # the retried EndTxn (old epoch) gets the same answer; an abort retry does not
    again = h.end(1000, 0, commit=True)
    assert (again.response.error, again.response.producer_epoch, again.records) == ("NONE", 1, ())
    assert h.end(1000, 0, commit=False).response.error == "INVALID_TXN_STATE"
    # the old epoch cannot write into the next transaction
    assert h.add(1000, 0, [TP1]).response.error == "PRODUCER_FENCED"
    assert h.add(1000, 1, [TP2]).response.error == "NONE"
    assert h.state().partitions == {TP2}


def test_end_txn_refusals() -> None:
    h = Harness()
    assert h.end(1, 0, True).response.error == "TRANSACTIONAL_ID_NOT_FOUND"
    h.init()
    assert h.end(1000, 0, commit=True).response.error == "INVALID_TXN_STATE"  # nothing to commit
    assert h.end(1000, 3, commit=False).response.error == "INVALID_PRODUCER_EPOCH"
    assert h.end(77, 0, commit=False).response.error == "INVALID_PRODUCER_ID_MAPPING"
    # an abort of nothing still bumps the epoch, with no marker to write
    r = h.end(1000, 0, commit=False)
    assert r.response.error == "NONE" and r.response.producer_epoch == 1 and r.effects == ()
    assert [rec.metadata.state for rec in r.records] == [S.PREPARE_ABORT, S.COMPLETE_ABORT]
    assert h.end(1000, 0, commit=False).response.error == "NONE"  # its retry


def test_a_new_instance_aborts_the_ongoing_transaction_of_the_old_one() -> None:
    h = Harness()
    h.init()
    h.add(1000, 0, [TP1, TP2])
    r = h.init()
    assert r.response.error == "CONCURRENT_TRANSACTIONS"  # the client retries
    (effect,) = r.effects
    assert effect == WriteTxnMarkers("app", 1000, 1, 4, False, (TP1, TP2))
    assert h.state().state is S.PREPARE_ABORT and h.state().producer_epoch == 1
    # the zombie's commit is refused: it is fenced
    assert h.end(1000, 0, commit=True).response.error == "PRODUCER_FENCED"
    h.done(effect)
    assert h.state().state is S.COMPLETE_ABORT
    r = h.init()
    assert (r.response.error, r.response.producer_epoch) == ("NONE", 2)


def test_a_timed_out_transaction_is_aborted_with_a_bumped_epoch() -> None:
    h = Harness()
    h.init(timeout=10_000)
    h.init("quiet", timeout=10_000)
    h.add(1000, 0, [TP1], now=T0 + 100)
    assert h.c.next_deadline_ms() == T0 + 10_100
    assert h.run(h.c.abort_timed_out(T0 + 10_099, h.allocate)).records == ()
    r = h.run(h.c.abort_timed_out(T0 + 10_100, h.allocate))
    assert r.response == ("app",)
    assert r.effects == (WriteTxnMarkers("app", 1000, 1, 4, False, (TP1,)),)
    assert h.state().state is S.PREPARE_ABORT and h.state("quiet").state is S.EMPTY
    assert h.end(1000, 0, commit=True).response.error == "PRODUCER_FENCED"
    assert h.add(1000, 0, [TP1]).response.error == "PRODUCER_FENCED"


def test_an_exhausted_epoch_takes_a_new_producer_id() -> None:
    h = Harness()
    h.init()
    h.c.transactions["app"] = TxnMetadata(
        transactional_id="app",
        producer_id=1000,
        producer_epoch=32_766,
        timeout_ms=60_000,
        state=S.ONGOING,
        partitions=frozenset({TP1}),
        txn_start_ms=T0,
        last_update_ms=T0,
    )
    h.log.append(type(h.log[0])("app", h.c.transactions["app"]))
    r = h.end(1000, 32_766, commit=True)
    assert (r.response.producer_id, r.response.producer_epoch) == (1001, 0)
    # the markers still name the transaction's producer id, at its last epoch + 1
    assert r.effects[0].producer_id == 1000 and r.effects[0].producer_epoch == 32_767
    h.done(r.effects[0])
    assert h.end(1000, 32_766, commit=True).response.producer_id == 1001  # a retry


def test_verify_partitions_and_add_offsets() -> None:
    h = Harness()
    h.init()
    assert h.c.verify_partitions("app", 1000, 0, [TP1]) == {TP1: "INVALID_TXN_STATE"}
    h.add(1000, 0, [TP1])
    offsets_tp = TopicPartition("__consumer_offsets", 7)
    assert h.run(h.c.add_offsets("app", 1000, 0, offsets_tp, T0)).response.error == "NONE"
    assert h.c.verify_partitions("app", 1000, 0, [TP1, TP2, offsets_tp]) == {
        TP1: "NONE",
        TP2: "INVALID_TXN_STATE",
        offsets_tp: "NONE",
    }
    assert h.c.verify_partitions("app", 1000, 1, [TP1]) == {TP1: "INVALID_PRODUCER_EPOCH"}
    assert h.add(1000, 0, []).response.error == "INVALID_REQUEST"
    assert h.add(1000, 0, [("a", -1)]).response.error == "INVALID_REQUEST"


def test_idle_transactional_ids_expire_to_a_tombstone() -> None:
    h = Harness(expiration_ms=1_000)
    h.init("idle", now=T0)
    h.init("busy", now=T0)
    h.add(1001, 0, [TP1], tid="busy", now=T0)
    r = h.run(h.c.expire_transactional_ids(T0 + 1_000))
    assert r.response == ("idle",) and r.records[0].metadata is None
    assert "idle" not in h.c.transactions and "busy" in h.c.transactions
    assert to_kv(r.records[0])[1] is None


def test_a_new_coordinator_loads_the_records_and_resumes_pending_markers() -> None:
    h = Harness()
    h.init("a")
    h.add(1000, 0, [TP1], tid="a")
    h.init("b")
    h.add(1001, 0, [TP2], tid="b")
    end = h.end(1000, 0, commit=True, tid="a")
    # compaction keeps the latest record per key; both orders replay to the same state
    latest = {r.transactional_id: r for r in h.log}
    for records in (h.log, list(latest.values())):
        c, effects = TransactionCoordinator.load(records, coordinator_epoch=4)
        assert c.transactions == h.c.transactions
        assert effects == end.effects
    c, effects = TransactionCoordinator.load(h.log, coordinator_epoch=5)
    assert effects[0].coordinator_epoch == 5
    assert c.markers_written(effects[0], T0).response.error == "NONE"


def test_records_are_decoded_strictly() -> None:
    h = Harness()
    rec = h.init().records[0]
    key, value = to_kv(rec)
    bad = [
        ({**key, "type": "group"}, value),
        ({"transactional_id": "app"}, value),
        (key, {**value, "state": "Nope"}),
        (key, {**value, "state": "PrepareEpochFence"}),
        (key, {**value, "producer_id": "1"}),
        (key, {**value, "partitions": [["a", "0"]]}),
        (key, {**value, "extra": 1}),
        (key, {**value, "version": 9}),
    ]
    for k, v in bad:
        with pytest.raises(InvalidTxnRecord):
            from_kv(k, v)


def test_a_transaction_version_1_end_keeps_the_epoch_and_marks_with_it() -> None:
    """A Kafka client's EndTxn below v5 (actors/kafka_txn.py): nothing is bumped, the markers
    carry the data's epoch (transaction_version 1), the next transaction uses the same pair,
    and a retried EndTxn is answered as the first was."""
    h = Harness()
    r = h.init()
    pid, epoch = r.response.producer_id, r.response.producer_epoch
    for commit in (True, False, True):
        h.add(pid, epoch, [TP1, TP2])
        end = h.run(h.c.end_txn("app", pid, epoch, commit, T0, h.allocate, bump=False))
        assert end.response.error == "NONE"
        (effect,) = end.effects
        assert (effect.producer_id, effect.producer_epoch, effect.commit) == (pid, epoch, commit)
        assert effect.transaction_version == 1
        assert h.state().producer_epoch == epoch and h.state().txn_version == 1
        retry = h.c.end_txn("app", pid, epoch, commit, T0, h.allocate, bump=False)
        assert retry.response.error == "CONCURRENT_TRANSACTIONS" and retry.records == ()
        h.done(effect)
        retry = h.c.end_txn("app", pid, epoch, commit, T0, h.allocate, bump=False)
        assert retry.response.error == "NONE" and retry.records == ()
        other = h.c.end_txn("app", pid, epoch, not commit, T0, h.allocate, bump=False)
        assert other.response.error == "INVALID_TXN_STATE"
    # a timeout abort still bumps (the client is fenced), and marks with the bumped epoch
    h.add(pid, epoch, [TP3])
    aborted = h.run(h.c.abort_timed_out(T0 + 10**9, h.allocate))
    (effect,) = aborted.effects
    assert effect.producer_epoch == epoch + 1 and effect.transaction_version == 2
    assert h.state().txn_version == 2
    loaded, _effects = TransactionCoordinator.load(h.log, 5)
    assert loaded.transactions == h.c.transactions


def test_the_txn_version_field_is_decoded_strictly() -> None:
    from rillet.coordinator.transactions.records import record_of

    key, value = to_kv(record_of(TxnMetadata(transactional_id="x", producer_id=1,
                                             producer_epoch=0, timeout_ms=1, txn_version=1)))
    assert value["txn_version"] == 1 and from_kv(key, value).metadata.txn_version == 1
    for bad in (2, True, "1"):
        with pytest.raises(InvalidTxnRecord):
            from_kv(key, {**value, "txn_version": bad})
    v2 = {k: v for k, v in value.items() if k != "txn_version"}
    assert from_kv(key, v2).metadata.txn_version == 2
