"""The share-state coordinator core (coordinator/share/state.py) and its records
(coordinator/share/records.py): the fencing rules, delta merging by offset range, resets,
deletes, and replay of the emitted records giving the state the writes built."""

from __future__ import annotations

import itertools

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator.share import records as SR
from rillet.coordinator.share import state as SS
from rillet.coordinator.share.records import (
    ACKNOWLEDGED,
    ARCHIVED,
    AVAILABLE,
    DEAD_LETTER_PENDING,
    SharePartitionKey,
    ShareState,
    StateBatch,
)

from tests.support import examples

K = SharePartitionKey("g", "orders", 0)
K2 = SharePartitionKey("g", "orders", 1)


def W(*batches, key=K, state_epoch=0, leader_epoch=1, start=0, **kw) -> SS.WriteState:
    return SS.WriteState(key=key, state_epoch=state_epoch, leader_epoch=leader_epoch,
                         start_offset=start, batches=tuple(batches), **kw)


def B(first, last, state=AVAILABLE, count=1, at=0, reason="") -> StateBatch:
    return StateBatch(first, last, state, count, at, reason)


def ok(result: SS.ShareResult):
    assert result.response.error == SS.NONE, result.response
    return result.response


def test_first_write_creates_the_state_and_a_read_returns_it():
    core = SS.ShareStateCoordinator()
    assert core.read(K, 1).response == SS.ReadOutcome(SS.NONE)  # nothing stored
    r = core.write(W(B(10, 19, ACKNOWLEDGED), B(20, 24, AVAILABLE, 2, at=5_000), start=10))
    assert ok(r).state_epoch == 0 and len(r.records) == 1
    state = ok(core.read(K, 1)).state
    assert state == ShareState(0, 1, 10, (B(10, 19, ACKNOWLEDGED), B(20, 24, AVAILABLE, 2, 5_000)))
    assert core.read(K2, 1).response.state is None  # another share-partition: nothing


def test_a_delta_overwrites_only_the_offsets_it_names():
    core = SS.ShareStateCoordinator()
    ok(core.write(W(B(0, 99, AVAILABLE, 1))))
    ok(core.write(W(B(10, 19, ACKNOWLEDGED), B(50, 50, DEAD_LETTER_PENDING, 5, reason="bad"))))
    assert core.states[K].batches == (
        B(0, 9), B(10, 19, ACKNOWLEDGED), B(20, 49), B(50, 50, DEAD_LETTER_PENDING, 5, 0, "bad"),
        B(51, 99))
    # the pending dead letter confirmed: archived
    ok(core.write(W(B(50, 50, ARCHIVED, 5))))
    assert core.states[K].batches[3] == B(50, 50, ARCHIVED, 5)


def test_later_batches_of_one_request_win_and_neighbours_are_joined():
    core = SS.ShareStateCoordinator()
    ok(core.write(W(B(0, 9, ACKNOWLEDGED), B(5, 14, ARCHIVED), B(15, 19, ARCHIVED))))
    assert core.states[K].batches == (B(0, 4, ACKNOWLEDGED), B(5, 19, ARCHIVED))


def test_the_start_offset_drops_what_is_below_it_and_never_moves_back_in_a_delta():
    core = SS.ShareStateCoordinator()
    ok(core.write(W(B(0, 9, ACKNOWLEDGED), B(10, 29, AVAILABLE, 2))))
    ok(core.write(W(start=15)))
    assert core.states[K].start_offset == 15
    assert core.states[K].batches == (B(15, 29, AVAILABLE, 2),)  # cut at the start offset
    ok(core.write(W(B(20, 20, ACKNOWLEDGED), start=3)))  # an older start offset: kept at 15
    ok(core.write(W(B(21, 21, ACKNOWLEDGED), start=-1)))  # -1: unchanged
    assert core.states[K].start_offset == 15


def test_a_write_that_changes_nothing_appends_nothing():
    core = SS.ShareStateCoordinator()
    ok(core.write(W(B(0, 9, ACKNOWLEDGED))))
    again = core.write(W(B(0, 9, ACKNOWLEDGED)))
    assert again.records == () and again.response.error == SS.NONE


def test_an_older_leader_epoch_is_fenced_and_a_read_by_a_new_leader_fences_the_old_one():
    core = SS.ShareStateCoordinator()
    ok(core.write(W(B(0, 9), leader_epoch=3)))
    r = core.write(W(B(0, 9, ACKNOWLEDGED), leader_epoch=2))
    assert r.response.error == SS.FENCED_LEADER_EPOCH and r.records == ()
    assert core.states[K].batches == (B(0, 9),)
    assert core.read(K, 2).response.error == SS.FENCED_LEADER_EPOCH
    # the new leader (epoch 4) loads: stored, so the leader of epoch 3 is fenced from now on
    read = core.read(K, 4)
    assert read.response.state.leader_epoch == 4 and len(read.records) == 1
    assert core.write(W(B(0, 0, ACKNOWLEDGED), leader_epoch=3)).response.error == \
        SS.FENCED_LEADER_EPOCH
    ok(core.write(W(B(0, 0, ACKNOWLEDGED), leader_epoch=-1)))  # an admin: not fenced
    assert core.states[K].leader_epoch == 4


def test_a_reset_bumps_the_state_epoch_and_fences_writes_of_the_old_state():
    core = SS.ShareStateCoordinator()
    ok(core.write(W(B(0, 9), start=0)))
    reset = ok(core.write(W(start=100, replace=True)))
    assert reset.state_epoch == 1
    assert core.states[K] == ShareState(1, 1, 100, ())
    stale = core.write(W(B(100, 100, ACKNOWLEDGED), state_epoch=0))
    assert stale.response.error == SS.FENCED_STATE_EPOCH and stale.response.state_epoch == 1
    # the reset sent again (its answer was lost): NONE, nothing appended
    again = core.write(W(start=100, replace=True, state_epoch=0))
    assert again.response == SS.WriteOutcome(SS.NONE, None, 1) and again.records == ()
    ok(core.write(W(B(100, 100, ACKNOWLEDGED), state_epoch=1)))
    # a replace at the same start offset is not a reset
    assert ok(core.write(W(B(101, 101), start=100, state_epoch=1, replace=True))).state_epoch == 1
    assert core.states[K].batches == (B(101, 101),)


def test_delete_writes_a_tombstone():
    core = SS.ShareStateCoordinator()
    ok(core.write(W(B(0, 9))))
    ok(core.write(W(start=50, replace=True)))  # state epoch 1
    assert core.write(W(delete=True, state_epoch=0)).response.error == SS.FENCED_STATE_EPOCH
    r = core.write(W(delete=True, state_epoch=1))
    assert ok(r) and r.records == (SR.ShareStateRecord(K, None),)
    assert K not in core.states and core.read(K, 1).response.state is None
    assert core.write(W(delete=True)).records == ()  # nothing stored: nothing to delete
    # a writer that still holds the deleted state's epoch is fenced
    assert core.write(W(B(50, 50), state_epoch=1)).response.error == SS.FENCED_STATE_EPOCH


def test_a_deleted_topics_states_are_tombstoned_and_no_others():
    core = SS.ShareStateCoordinator()
    other = SharePartitionKey("g", "payments", 0)
    for key in (K, K2, other):
        ok(core.write(W(B(0, 9), key=key, start=5)))
    r = core.delete_topics(frozenset({"orders"}))
    assert ok(r) and r.records == (SR.ShareStateRecord(K, None), SR.ShareStateRecord(K2, None))
    assert set(core.states) == {other}
    assert core.delete_topics(frozenset({"orders"})).records == ()  # nothing left to delete


@pytest.mark.parametrize("write", [
    W(B(5, 4)),  # last before first
    W(B(-1, 4)),
    W(B(0, 4, state=1)),  # ACQUIRED is never persisted
    W(B(0, 4, count=-1)),
    W(B(0, 4, reason="x" * 5000)),
    W(B(0, 4), key=SharePartitionKey("", "t", 0)),
    W(B(0, 4), key=SharePartitionKey("g", "t", -1)),
    W(B(0, 4), start=-2),
])
def test_malformed_writes_are_refused_and_change_nothing(write):
    core = SS.ShareStateCoordinator()
    ok(core.write(W(B(0, 9, ACKNOWLEDGED))))
    before = dict(core.states)
    r = core.write(write)
    assert r.response.error == SS.INVALID_REQUEST and r.response.message
    assert r.records == () and core.states == before


def test_too_many_batches_are_refused():
    batches = [B(i, i, ACKNOWLEDGED if i % 2 else ARCHIVED) for i in range(SS.MAX_BATCHES + 1)]
    r = SS.ShareStateCoordinator().write(W(*batches))
    assert r.response.error == SS.INVALID_REQUEST


# ------------------------------------------------------------------------------ records


def test_records_round_trip_through_cbor():
    state = ShareState(2, 7, 10, (B(10, 12, DEAD_LETTER_PENDING, 5, 0, "poison"),
                                  B(13, 20, AVAILABLE, 2, 123_456)))
    for record in (SR.ShareStateRecord(K, state), SR.ShareStateRecord(K2, None)):
        key, value = SR.to_kv(record)
        decoded = SR.from_kv(cbor2.loads(cbor2.dumps(key)),
                             None if value is None else cbor2.loads(cbor2.dumps(value)))
        assert decoded == record


@pytest.mark.parametrize("key, value", [
    ({"type": "transaction", "transactional_id": "x"}, None),
    ({"type": "share", "group_id": "g", "topic": "t", "partition": "0"}, None),
    ({"type": "share", "group_id": "g", "topic": "t", "partition": 0},
     {"version": 1, "state_epoch": 0, "leader_epoch": 0, "start_offset": 0, "batches": []}),
    ({"type": "share", "group_id": "g", "topic": "t", "partition": 0},
     {"version": 0, "state_epoch": 0, "leader_epoch": 0, "start_offset": 0,
      "batches": [[5, 9, 0, 1, 0, ""], [8, 10, 0, 1, 0, ""]]}),  # overlapping
    ({"type": "share", "group_id": "g", "topic": "t", "partition": 0},
     {"version": 0, "state_epoch": 0, "leader_epoch": 0, "start_offset": 0,
      "batches": [[5, 9, 1, 1, 0, ""]]}),  # ACQUIRED
    ({"type": "share", "group_id": "g", "topic": "t", "partition": 0},
     {"version": 0, "state_epoch": 0, "leader_epoch": 0, "start_offset": 0}),
])
def test_foreign_records_are_refused(key, value):
    with pytest.raises(SR.InvalidShareRecord):
        SR.from_kv(key, value)


# --------------------------------------------------------------------------- properties

_states = st.sampled_from([AVAILABLE, ACKNOWLEDGED, ARCHIVED, DEAD_LETTER_PENDING])


@st.composite
def _batch(draw):
    first = draw(st.integers(0, 60))
    return B(first, first + draw(st.integers(0, 15)), draw(_states), draw(st.integers(0, 3)),
             draw(st.sampled_from([0, 1000])), draw(st.sampled_from(["", "r"])))


@st.composite
def _op(draw):
    kind = draw(st.sampled_from(["delta", "delta", "delta", "replace", "delete", "read"]))
    key = draw(st.sampled_from([K, K2]))
    return kind, key, draw(st.lists(_batch(), max_size=4)), draw(st.integers(-1, 40)), \
        draw(st.integers(0, 2)), draw(st.integers(-1, 3))


def _expand(state: ShareState | None) -> dict[int, tuple]:
    out = {}
    for b in state.batches if state else ():
        for o in range(b.first_offset, b.last_offset + 1):
            out[o] = (b.delivery_state, b.delivery_count, b.available_at_ms, b.reason)
    return out


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(_op(), max_size=30))
def test_replaying_the_records_gives_the_state_the_writes_built(ops):
    core = SS.ShareStateCoordinator()
    log: list[SR.ShareStateRecord] = []
    model: dict[SharePartitionKey, dict[int, tuple]] = {}  # offset by offset
    for kind, key, batches, start, state_epoch, leader_epoch in ops:
        if kind == "read":
            r = core.read(key, leader_epoch)
        else:
            before = core.states.get(key)
            r = core.write(W(*batches, key=key, start=start, state_epoch=state_epoch,
                             leader_epoch=leader_epoch, replace=kind == "replace",
                             delete=kind == "delete"))
            if r.response.error == SS.NONE and kind == "delta":
                cells = model.setdefault(key, _expand(before))
                for b in batches:  # later batches win, offset by offset
                    cells.update(_expand(ShareState(0, 0, 0, (b,))))
                start_now = core.states[key].start_offset
                model[key] = {o: v for o, v in cells.items() if o >= start_now}
            elif r.response.error == SS.NONE:
                model[key] = _expand(core.states.get(key))
        log.extend(r.records)
        for k, s in core.states.items():  # the invariants of a stored state
            assert all(b.first_offset >= s.start_offset for b in s.batches)
            assert all(a.last_offset < b.first_offset for a, b in itertools.pairwise(s.batches))
            assert not any(a.last_offset + 1 == b.first_offset and a.same_state(b)
                           for a, b in itertools.pairwise(s.batches))
            if k in model:
                assert _expand(s) == model[k]
    # each record CBOR-encoded as the topic holds it, then replayed: the same states
    encoded = [SR.to_kv(r) for r in log]
    decoded = [SR.from_kv(cbor2.loads(cbor2.dumps(k)),
                          None if v is None else cbor2.loads(cbor2.dumps(v))) for k, v in encoded]
    assert SR.replay(decoded) == core.states
    # compaction keeps only the latest record per key: the same states again
    latest = {r.key: r for r in decoded}
    assert SS.ShareStateCoordinator.load(latest.values()).states == core.states
