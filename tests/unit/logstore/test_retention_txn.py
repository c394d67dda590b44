"""Retention with transactions (issue #14): the LSO never points below the log start, the
completed transactions wholly below it are forgotten, and retention waits for the high
watermark (nothing unreplicated, no marker a new leader may still need, is deleted)."""

from __future__ import annotations

from rillet.logstore import transactions as T
from rillet.logstore.config import LogConfig

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
