"""TxnOffsetCommit (KIP-447) in the group core: pending offsets are invisible until the
producer's COMMIT marker, UNSTABLE_OFFSET_COMMIT with require_stable, ABORT drops them, the
generation/member fencing, the batch sequences, and replay over batches and markers ==
live state (also under a hypothesis-driven interleaving checked against Kafka's rule by log
offsets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator.groups import (
    CommitOffset,
    LogBatch,
    LogMarker,
    OffsetCommitRequest,
    OffsetFetchRequest,
    TxnOffsetCommitRequest,
    replay_log,
)
from rillet.coordinator.groups.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    InvalidRequestError,
    ProducerFencedError,
    UnknownMemberIdError,
)
from rillet.coordinator.groups.records import apply, from_kv, to_kv
from rillet.coordinator.groups.txn_offsets import apply_txn

from tests.support import examples

from .harness import TP, Harness

pytestmark = pytest.mark.timeout(60)
UNSTABLE = 88


class TxnHarness(Harness):
    """The harness with the log kept as batches and markers, as the partition holds them."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.entries: list = []

    def run(self, result):
        self.state = result.state
        if result.records:
            records = tuple(from_kv(*to_kv(r)) for r in result.records)
            self.entries.append(LogBatch(records, result.producer))
        return result.response

    def commit(self, offsets: dict, group_id: str = "g"):
        req = OffsetCommitRequest(group_id=group_id, offsets={
            TP("t", p): CommitOffset(offset=o) for p, o in offsets.items()})
        return self.run(self.gc.commit_offsets(self.state, req, self.now))

    def txn_commit(self, pid: int, offsets: dict, group_id: str = "g", epoch: int = 0, **kw):
        req = TxnOffsetCommitRequest(
            transactional_id=f"tx-{pid}", group_id=group_id, producer_id=pid,
            producer_epoch=epoch,
            offsets={TP("t", p): CommitOffset(offset=o, metadata=f"p{pid}")
                     for p, o in offsets.items()}, **kw)
        return self.run(self.gc.txn_commit_offsets(self.state, req, self.now))

    def marker(self, pid: int, committed: bool) -> None:
        self.state = self.gc.txn_completed(self.state, pid, committed).state
        self.entries.append(LogMarker(pid, committed))

    def fetch(self, group_id: str = "g", **kw):
        return self.gc.fetch_offsets(self.state, OffsetFetchRequest(group_id=group_id, **kw))

    def visible(self, group_id: str = "g") -> dict[int, int]:
        return {tp.partition: o.offset for tp, o in self.fetch(group_id).offsets.items()}

    def replayed(self):
        return replay_log(self.entries)


def test_pending_offsets_are_invisible_until_commit_and_unstable_with_require_stable() -> None:
    h = TxnHarness()
    h.commit({0: 5})
    resp = h.txn_commit(7, {0: 10, 1: 20})
    assert resp.errors == {TP("t", 0): 0, TP("t", 1): 0}
    assert h.visible() == {0: 5}  # the last committed value, the pending one unseen
    stable = h.fetch(require_stable=True, partitions=(TP("t", 0), TP("t", 1), TP("t", 2)))
    assert stable.errors == {TP("t", 0): UNSTABLE, TP("t", 1): UNSTABLE}
    assert stable.offsets == {}
    assert h.fetch(require_stable=True).errors == {TP("t", 0): UNSTABLE}
    assert h.replayed() == h.state
    h.marker(7, committed=True)
    assert h.visible() == {0: 10, 1: 20}
    assert h.fetch(group_id="g").offsets[TP("t", 1)].metadata == "p7"
    assert h.fetch(require_stable=True).errors == {}
    assert h.state.pending == {}
    assert h.replayed() == h.state


def test_abort_drops_pending_offsets() -> None:
    h = TxnHarness()
    h.commit({0: 5})
    h.txn_commit(7, {0: 10, 1: 20})
    h.marker(7, committed=False)
    assert h.visible() == {0: 5}
    assert h.state.pending == {}
    assert h.fetch(require_stable=True).errors == {}
    h.marker(7, committed=True)  # a marker with nothing pending changes nothing
    assert h.visible() == {0: 5}
    assert h.replayed() == h.state


def test_the_record_written_last_wins_whichever_becomes_visible_first() -> None:
    h = TxnHarness()
    h.txn_commit(1, {0: 5})
    h.commit({0: 7})  # written after the pending one
    h.marker(1, committed=True)
    assert h.visible() == {0: 7}
    h.commit({1: 7})
    h.txn_commit(1, {1: 5})  # written after the plain one
    h.marker(1, committed=True)
    assert h.visible() == {0: 7, 1: 5}
    h.txn_commit(1, {2: 5})
    h.txn_commit(2, {2: 6})
    h.marker(2, committed=True)
    h.marker(1, committed=True)  # written before producer 2's: stays hidden
    assert h.visible()[2] == 6
    h.txn_commit(3, {3: 6})
    h.txn_commit(4, {3: 8})
    h.marker(3, committed=True)  # the earlier write commits first: visible until 4 commits
    assert h.visible()[3] == 6
    h.marker(4, committed=True)
    assert h.visible()[3] == 8
    assert h.replayed() == h.state


def test_deleting_the_group_or_expiring_offsets_ignores_pending_ones() -> None:
    h = TxnHarness(offsets_retention_ms=1000)
    h.commit({0: 5})
    h.txn_commit(7, {0: 10})
    h.run(h.gc.delete_group(h.state, "g"))
    assert "g" not in h.state.groups
    assert h.fetch(require_stable=True, partitions=(TP("t", 0),)).errors == {TP("t", 0): UNSTABLE}
    h.marker(7, committed=True)  # nothing committed any more: the pending offset applies
    assert h.visible() == {0: 10}
    h.txn_commit(8, {1: 3})
    h.now = 5000
    h.run(h.gc.expire_offsets(h.state, h.now))
    assert "g" not in h.state.groups and 8 in h.state.pending
    h.marker(8, committed=True)
    assert h.visible() == {1: 3}
    assert h.replayed() == h.state


def test_generation_and_member_fencing() -> None:
    h = TxnHarness()
    # an unknown group: a simple commit with generation -1, a made-up generation refused
    assert h.txn_commit(1, {0: 1}, group_id="new").errors == {TP("t", 0): 0}
    with pytest.raises(IllegalGenerationError) as info:
        h.txn_commit(1, {0: 1}, group_id="other", generation_id=3, member_id="m")
    assert info.value.code == 22
    a = h.ack(h.join("a"))
    h.join("b", instance_id="i-b")
    epoch = h.member("a").member_epoch
    assert h.txn_commit(1, {0: 2}, generation_id=epoch, member_id="a").errors[TP("t", 0)] == 0
    # no group metadata at all: accepted (the fields are optional in TxnOffsetCommit)
    assert h.txn_commit(1, {0: 3}).errors[TP("t", 0)] == 0
    before = h.state
    with pytest.raises(IllegalGenerationError):  # a zombie from an older generation
        h.txn_commit(1, {0: 4}, generation_id=a.member_epoch - 1, member_id="a")
    with pytest.raises(IllegalGenerationError):
        h.txn_commit(1, {0: 4}, generation_id=epoch + 1, member_id="a")
    with pytest.raises(UnknownMemberIdError) as info:
        h.txn_commit(1, {0: 4}, generation_id=epoch, member_id="gone")
    assert info.value.code == 25
    with pytest.raises(FencedInstanceIdError) as info:
        h.txn_commit(1, {0: 4}, generation_id=epoch, member_id="a", instance_id="i-b")
    assert info.value.code == 82
    with pytest.raises(IllegalGenerationError):  # a member of a group with members: -1 is no epoch
        h.txn_commit(1, {0: 4}, generation_id=-1, member_id="a")
    assert h.state == before
    for pid in (-1, 2**63, True):
        with pytest.raises(InvalidRequestError):
            h.txn_commit(pid, {0: 4})
    with pytest.raises(InvalidRequestError):
        h.txn_commit(1, {0: 4}, epoch=2**15)
    with pytest.raises(InvalidRequestError):
        h.txn_commit(1, {0: -4})
    assert h.replayed() == h.state


def test_batches_carry_the_producer_and_following_sequences() -> None:
    h = TxnHarness()
    h.txn_commit(9, {0: 1, 1: 1}, epoch=3)
    h.txn_commit(9, {2: 1}, epoch=3)
    h.txn_commit(9, {0: 2}, epoch=4)  # a new epoch (KIP-890 bumps it per transaction)
    producers = [e.producer for e in h.entries]
    assert [(p.producer_id, p.producer_epoch, p.base_sequence) for p in producers] == [
        (9, 3, 0), (9, 3, 2), (9, 4, 0)]
    before = h.state
    with pytest.raises(ProducerFencedError) as info:
        h.txn_commit(9, {0: 3}, epoch=3)
    assert info.value.code == 90 and h.state == before
    h.marker(9, committed=True)  # a KIP-890 marker bumped the epoch: the next batch starts over
    h.txn_commit(9, {0: 3}, epoch=5)
    assert h.entries[-1].producer.base_sequence == 0
    h.marker(9, committed=True)  # a Kafka client's (TV1) marker keeps the epoch: it goes on
    h.txn_commit(9, {1: 3}, epoch=5)
    assert h.entries[-1].producer.base_sequence == 1
    assert h.replayed() == h.state
    # a partition refused by its metadata's size writes nothing and takes no sequence
    big = TxnHarness(offset_metadata_max_bytes=1)
    assert big.txn_commit(9, {0: 1}).errors == {TP("t", 0): 12}
    assert big.entries == [] and big.state.pending == {}


# ------------------------------------------------------------------------ property test

ops = st.lists(
    st.one_of(
        st.tuples(st.just("plain"), st.integers(0, 2), st.integers(0, 99)),
        st.tuples(st.just("txn"), st.integers(1, 3), st.integers(0, 2), st.integers(0, 99)),
        st.tuples(st.just("end"), st.integers(1, 3), st.booleans()),
        st.tuples(st.just("delete"), st.integers(0, 2)),
    ),
    max_size=40,
)


@settings(max_examples=examples(100), deadline=None)
@given(ops)
def test_interleavings_follow_kafkas_rule_and_replay_equals_live(steps) -> None:
    """Kafka's rule, by log offset: a committed transaction's offset replaces the visible one
    only if its record is later in the log; a plain commit always replaces it."""
    h = TxnHarness()
    visible: dict[int, tuple[int, int]] = {}  # partition -> (offset, log position)
    pending: dict[int, dict[int, tuple[int, int]]] = {}
    for pos, step in enumerate(steps):
        match step:
            case ("plain", p, o):
                h.commit({p: o})
                visible[p] = (o, pos)
            case ("txn", pid, p, o):
                h.txn_commit(pid, {p: o})
                pending.setdefault(pid, {})[p] = (o, pos)
            case ("end", pid, committed):
                h.marker(pid, committed)
                for p, (o, at) in pending.pop(pid, {}).items():
                    if committed and (p not in visible or at > visible[p][1]):
                        visible[p] = (o, at)
            case ("delete", p):
                if "g" in h.state.groups:
                    h.run(h.gc.delete_offsets(h.state, "g", [TP("t", p)]))
                visible.pop(p, None)
        assert h.visible() == {p: o for p, (o, _) in visible.items()}
        stable = h.fetch(require_stable=True, partitions=tuple(TP("t", p) for p in range(3)))
        assert set(stable.errors) == {TP("t", p) for mine in pending.values() for p in mine}
        assert h.replayed() == h.state


@settings(max_examples=examples(100), deadline=None)
@given(ops, st.integers(1, 3), st.booleans(),
       st.one_of(st.tuples(st.just("plain"), st.integers(0, 2), st.integers(0, 99)),
                 st.tuples(st.just("txn"), st.integers(1, 3), st.integers(0, 2),
                           st.integers(0, 99))))
def test_a_marker_heard_after_a_later_append_gives_the_same_state(
    steps, pid, committed, late
) -> None:
    """Live, the coordinator may apply a marker after its own append in flight, which the
    log holds after the marker: both orders must give the state replay builds."""
    h = TxnHarness()
    for step in steps:
        match step:
            case ("plain", p, o):
                h.commit({p: o})
            case ("txn", owner, p, o):
                h.txn_commit(owner, {p: o})
            case ("end", owner, done):
                h.marker(owner, done)
            case ("delete", p):
                if "g" in h.state.groups:
                    h.run(h.gc.delete_offsets(h.state, "g", [TP("t", p)]))
    if late[0] == "txn" and late[1] == pid:
        return  # a producer's next transaction waits for its marker (CONCURRENT_TRANSACTIONS)
    before = h.state
    if late[0] == "plain":
        h.commit({late[1]: late[2]})
    else:
        h.txn_commit(late[1], {late[2]: late[3]})
    batch = h.entries[-1]
    live = h.gc.txn_completed(h.state, pid, committed).state  # heard after the append
    logged = h.gc.txn_completed(before, pid, committed).state  # in the log before it
    logged = (apply(logged, batch.records) if batch.producer is None
              else apply_txn(logged, batch.producer, batch.records))
    assert live == logged
