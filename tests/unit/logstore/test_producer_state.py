"""Idempotent-producer state: sequence checks, duplicates, epochs, snapshots, rebuild."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.logstore.batch import BatchBuilder
from rillet.logstore.log import LogConfig, PartitionLog
from rillet.logstore.producer_state import (
    INVALID_PRODUCER_EPOCH,
    MAX_SEQUENCE,
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    UNKNOWN_PRODUCER_ID,
    ProducerSnapshotError,
    ProducerStateManager,
    increment_sequence,
    rebuild,
    rebuild_from_log,
)

PID = 7


def _append(state: ProducerStateManager, seq: int, n: int = 1, epoch: int = 0, pid: int = PID):
    """Check then append an n-record batch at the state's end; the check's verdict."""
    verdict = state.check(pid, epoch, seq, n - 1)
    if verdict.should_append:
        first = state.map_end_offset
        last_seq = increment_sequence(seq, n - 1)
        state.update(pid, epoch, seq, last_seq, first, first + n - 1, 1000 + first)
    return verdict


def test_unknown_producer_starts_at_zero_then_requires_the_next():
    s = ProducerStateManager()
    v = _append(s, 42, 3)
    assert v.error == UNKNOWN_PRODUCER_ID and not v.should_append
    assert _append(s, 0, 3).should_append
    assert s.entry(PID).last_seq == 2
    assert _append(s, 3).should_append
    v = _append(s, 5)
    assert v.error == OUT_OF_ORDER_SEQUENCE_NUMBER and "expected 4" in v.message


def test_duplicate_of_each_of_the_last_five_batches_returns_the_original_offsets():
    s = ProducerStateManager()
    for i in range(7):
        assert _append(s, 2 * i, 2).should_append  # batches at offsets 0-1, 2-3, ...
    for i in range(2, 7):
        v = s.check(PID, 0, 2 * i, 1)
        assert v.duplicate is not None and not v.should_append
        assert (v.duplicate.first_offset, v.duplicate.last_offset) == (2 * i, 2 * i + 1)
    # the sixth-newest batch fell out of the window: no longer a known duplicate
    assert s.check(PID, 0, 2, 1).error == OUT_OF_ORDER_SEQUENCE_NUMBER
    # same first sequence but another length is not a duplicate
    assert s.check(PID, 0, 12, 0).error == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_epochs_fence_zombies_and_a_new_epoch_starts_at_zero():
    s = ProducerStateManager()
    _append(s, 0, 1, epoch=3)
    assert s.check(PID, 2, 1, 0).error == INVALID_PRODUCER_EPOCH
    v = s.check(PID, 4, 5, 0)
    assert v.error == OUT_OF_ORDER_SEQUENCE_NUMBER and "new epoch" in v.message
    assert _append(s, 0, 1, epoch=4).should_append
    assert s.entry(PID).producer_epoch == 4 and len(s.entry(PID).batches) == 1
    # a retry from the old epoch, even of a batch it wrote, is fenced
    assert s.check(PID, 3, 0, 0).error == INVALID_PRODUCER_EPOCH


def test_sequence_wraps_after_max():
    assert increment_sequence(MAX_SEQUENCE, 1) == 0
    assert increment_sequence(MAX_SEQUENCE - 1, 3) == 1
    s = ProducerStateManager()
    s.update(PID, 0, MAX_SEQUENCE - 3, MAX_SEQUENCE - 2, 0, 1, 0)  # a long-lived producer
    _append(s, MAX_SEQUENCE - 1, 2)
    assert s.entry(PID).last_seq == MAX_SEQUENCE
    assert _append(s, 0, 2).should_append
    assert s.check(PID, 0, MAX_SEQUENCE - 1, 1).duplicate is not None


def test_non_idempotent_batches_are_not_checked():
    s = ProducerStateManager()
    assert s.check(-1, -1, -1, 0).should_append
    assert s.check(PID, 0, -1, 0).error == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_snapshot_round_trip_and_corruption():
    s = ProducerStateManager()
    for i in range(8):
        assert _append(s, i // 3, 1, pid=PID + i % 3).should_append
    data = s.snapshot()
    back = ProducerStateManager.load(data)
    assert back.snapshot() == data and back.map_end_offset == 8
    assert back.entry(PID).batches == s.entry(PID).batches
    flipped = bytearray(data)
    flipped[10] ^= 1
    for bad in (bytes(flipped), data[:-3], b"", data + b"x"):
        with pytest.raises(ProducerSnapshotError):
            ProducerStateManager.load(bad)


def test_truncate_to_drops_batches_and_says_when_a_reload_is_needed():
    s = ProducerStateManager()
    for i in range(4):
        _append(s, i, 1, pid=PID)
    _append(s, 0, 1, pid=99)  # offset 4
    assert s.truncate_to(4) is False  # producer 99 lost everything it had
    assert s.entry(99) is None and s.entry(PID).last_seq == 3 and s.map_end_offset == 4
    assert s.truncate_to(2) is True
    assert s.entry(PID).last_seq == 1


def test_expired_producers_are_removed():
    s = ProducerStateManager()
    _append(s, 0)
    assert s.remove_expired(now_ms=1000 + 10, expiration_ms=100) == []
    assert s.remove_expired(now_ms=1000 + 101, expiration_ms=100) == [PID]
    assert s.entry(PID) is None


def _idempotent_batch(pid: int, epoch: int, seq: int, n: int) -> bytes:
    b = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    for i in range(n):
        b.append(1000 + i, None, b"v%d" % i)
    return b.build()


@pytest.mark.timeout(30)
def test_rebuild_from_a_real_log_with_and_without_snapshots(tmp_path):
    log = PartitionLog.open(tmp_path / "p", LogConfig(segment_bytes=600), now_ms=0)
    live = ProducerStateManager()
    snapshots = {}
    seqs = {1: 0, 2: 0}
    for i in range(30):
        pid = 1 + i % 2
        n = 1 + i % 3
        batch = _idempotent_batch(pid, 0, seqs[pid], n)
        assert live.check(pid, 0, seqs[pid], n - 1).should_append
        info = log.append(batch, 0, now_ms=i)
        live.update(
            pid, 0, seqs[pid], seqs[pid] + n - 1, info.base_offset, info.last_offset, 1000 + n - 1
        )
        seqs[pid] += n
        if i in (9, 20):
            snapshots[live.map_end_offset] = live.snapshot()
    full = rebuild_from_log(log)
    from_snap = rebuild_from_log(log, snapshots)
    assert full.snapshot() == live.snapshot() == from_snap.snapshot()
    # a corrupt newest snapshot is skipped for an older one
    newest = max(snapshots)
    bad = dict(snapshots)
    bad[newest] = b"garbage"
    assert rebuild_from_log(log, bad).snapshot() == live.snapshot()
    # after truncation: rebuild from the snapshots below the truncation point
    cut = newest - 3
    log.truncate_to(cut)
    below = {o: d for o, d in snapshots.items() if o <= log.log_end_offset}
    after = rebuild_from_log(log, below)
    assert after.map_end_offset == log.log_end_offset
    replayed = rebuild(log.batch_headers())
    assert after.snapshot() == replayed.snapshot()
    log.close()


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), min_size=1, max_size=40),
    snap_at=st.integers(0, 40),
)
def test_snapshot_plus_replay_equals_full_replay(ops, snap_at):
    """Property: for any history, state(snapshot at k) + headers after k == state(all)."""

    class H:
        def __init__(self, base, pid, seq, n):
            self.base_offset, self.last_offset_delta = base, n - 1
            self.producer_id, self.producer_epoch, self.base_sequence = pid, 0, seq
            self.max_timestamp = base
            self.is_control = self.is_transactional = False

    headers, seqs, offset = [], {}, 0
    for pid, n in ops:
        headers.append(H(offset, pid, seqs.get(pid, 0), n))
        seqs[pid] = seqs.get(pid, 0) + n
        offset += n
    k = min(snap_at, len(headers))
    snap = rebuild(headers[:k]).snapshot()
    assert rebuild(headers[k:], snap).snapshot() == rebuild(headers).snapshot()
