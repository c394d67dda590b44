"""Retention with transactions (issue #14): the LSO never points below the log start, the
completed transactions wholly below it are forgotten, and retention waits for the high
watermark (nothing unreplicated, no marker a new leader may still need, is deleted)."""

from __future__ import annotations

from rillet.logstore import transactions as T
from rillet.logstore.config import LogConfig
from rillet.logstore.housekeeping import housekeep

from .txn_compact_helpers import Leader, open_transactions

CONFIG = LogConfig(segment_bytes=10**6, retention_ms=1_000)


def kv(*pairs):
    return [(k.encode(), v.encode()) for k, v in pairs]


def test_an_open_transaction_below_the_log_start_makes_the_lso_the_log_start(tmp_path):
    w = Leader(tmp_path, CONFIG)
    first = w.txn(1, kv(("a", "1")))
    w.roll()
    w.plain(kv(("b", "2")))
    w.txn(1, kv(("c", "3")))
    w.roll()
    # the partition's periodic producer snapshot, here at the active segment's base
    snapshot = {w.ps.map_end_offset: w.ps.snapshot()}
    w.plain(kv(("d", "4")))
    assert w.lso() == first
    w.now += 10_000
    assert w.log.delete_old_segments(w.now, high_watermark=w.hw) == 2
    start = w.log.log_start_offset
    T.on_log_start_offset_incremented(w.ps, start)
    assert start > first
    # still open (its marker will come), but the partition is unstable from the log start
    assert open_transactions(w.ps) == {1: first}
    assert w.lso() == start
    w.log.close()
    w.log = type(w.log).open(tmp_path, CONFIG, w.now)
    # reloaded with the snapshot (at the log start), the transaction is open as it is live
    loaded = T.load_transaction_state(w.log, snapshot)
    assert open_transactions(loaded) == {1: first} and w.lso(loaded) == start
    # without one, nothing of it is left in the log: it is forgotten (its marker will close
    # nothing), and the LSO is the high watermark; never below the log start either way
    loaded = T.load_transaction_state(w.log)
    assert open_transactions(loaded) == {} and w.lso(loaded) == w.hw
    w.end(1, commit=True)
    assert w.lso() == w.hw
    assert [k for _o, k, _v, _t in w.committed()] == [b"d"]


def test_completed_transactions_below_the_new_log_start_are_forgotten(tmp_path):
    w = Leader(tmp_path, CONFIG)
    w.txn(1, kv(("a", "1")))
    marker = w.end(1, commit=False)
    w.roll()
    w.plain(kv(("b", "2")))
    # the marker is not known to be replicated: the transaction is still "unreplicated"
    assert [t.last_offset for t in w.ps.unreplicated] == [marker]
    assert w.log.delete_records_before(marker + 1, w.now) == 1
    T.on_log_start_offset_incremented(w.ps, w.log.log_start_offset)
    assert w.ps.unreplicated == [] and w.ps.first_unstable_offset() is None
    assert w.ps.map_end_offset >= w.log.log_start_offset
    assert w.log.txn_index.all() == []  # the index entry went with its segment


def test_retention_never_deletes_a_segment_not_wholly_below_the_high_watermark(tmp_path):
    w = Leader(tmp_path, CONFIG)
    ends = []
    for i in range(4):
        w.plain(kv(("k", str(i))))
        ends.append(w.log.log_end_offset)
        w.roll()
    w.now += 10_000
    hw = ends[1]  # segments 0 and 1 are replicated, 2 and 3 not yet
    assert w.log.delete_old_segments(w.now, high_watermark=hw) == 2
    assert w.log.log_start_offset == hw
    assert w.log.delete_old_segments(w.now, high_watermark=hw) == 0
    assert w.log.delete_old_segments(w.now, high_watermark=w.hw) == 2


def test_housekeep_deletes_below_the_high_watermark_then_compacts_below_the_lso(tmp_path):
    config = LogConfig(
        segment_bytes=10**6,
        retention_ms=1_000,
        cleanup_policy="compact,delete", min_cleanable_dirty_ratio=0.0,
        delete_retention_ms=10**9,
    )
    w = Leader(tmp_path, config)
    w.txn(1, kv(("a", "old")))
    w.roll()
    w.now += 5_000
    w.plain(kv(("a", "p1"), ("a", "p2")))
    w.txn(2, kv(("a", "open")))
    w.plain(kv(("a", "p3"), ("a", "p4")))
    w.roll()
    w.plain(kv(("z", "active")))
    w.now += 500
    done = housekeep(w.log, w.ps, w.hw, w.now)
    # the old first segment went, with the start of producer 1's open transaction: the LSO
    # is the log start, so nothing is cleanable
    assert done.segments_deleted == 1 and done.log_start_offset == w.log.log_start_offset
    assert w.lso() == done.log_start_offset and done.compaction.upper_offset == -1
    w.end(1, commit=False)
    w.end(2, commit=True)
    w.roll()
    w.now += 1
    done = housekeep(w.log, w.ps, w.hw, w.now)
    assert done.segments_deleted == 0
    assert done.compaction.upper_offset == w.log.active_segment.base_offset
    assert [(k, v) for _o, k, v, _t in w.committed()] == [(b"a", b"p4"), (b"z", b"active")]
