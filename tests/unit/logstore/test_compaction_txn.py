"""Compaction with transactions (issue #14): aborted data removed and never in the offset map,
markers kept while their transaction has data (then removed after delete.retention.ms, in a
later pass), nothing at or after the last stable offset touched, the producer state and the
aborted-transaction index rebuilt from the cleaned files equal to the live ones."""

from __future__ import annotations

import pytest
from rillet.logstore import transactions as T
from rillet.logstore.config import LogConfig
from rillet.logstore.producer_snapshots import ProducerSnapshots

from .test_compaction import Crash, CrashingFS
from .txn_compact_helpers import (
    Leader,
    batches,
    compacted_view,
    marker_offsets,
    open_transactions,
)

RETENTION = 1_000
CONFIG = LogConfig(segment_bytes=10**6, cleanup_policy="compact", min_cleanable_dirty_ratio=0.0, delete_retention_ms=RETENTION)
LATER = 10 * RETENTION  # compaction "much later": every tombstone and removable marker goes


def kv(*pairs):
    return [(k.encode(), None if v is None else v.encode()) for k, v in pairs]


def keys_values(view):
    return [(k, v) for _o, k, v, _t in view]


def test_aborted_records_are_removed_and_never_shadow_an_older_committed_record(tmp_path):
    w = Leader(tmp_path, CONFIG)
    w.plain(kv(("k", "committed"), ("j", "1")))
    w.txn(7, kv(("k", "aborted"), ("x", "aborted")))
    w.end(7, commit=False)
    w.roll()
    w.plain(kv(("j", "2")))
    before = w.committed()
    stats = w.compact(w.now + LATER)
    assert stats.aborted_removed == 2
    # (the active segment is never cleaned: j=1 stays)
    assert keys_values(w.committed()) == [(b"k", b"committed"), (b"j", b"1"), (b"j", b"2")]
    assert w.committed() == compacted_view(before, stats.upper_offset, 0)
    # the aborted records are gone from the log itself, not only from the committed view
    raw = [h for h, _ in batches(w.log) if h.is_transactional and not h.is_control]
    assert raw == []
    # every data of the aborted transaction went: its index entry goes too (as a rebuild
    # from the log would give), its marker stays for this pass
    assert w.log.txn_index.all() == []
    assert len(marker_offsets(w.log)) == 1


def test_committed_transactional_records_compact_like_plain_ones(tmp_path):
    w = Leader(tmp_path, CONFIG)
    w.txn(1, kv(("a", "t1"), ("b", "t1")))
    w.plain(kv(("a", "p")))
    w.end(1, commit=True)
    w.txn(1, kv(("b", "t2")))
    w.end(1, commit=True)
    w.roll()
    before = w.committed()
    stats = w.compact(w.now)
    assert keys_values(w.committed()) == [(b"a", b"p"), (b"b", b"t2")]
    assert w.committed() == compacted_view(before, stats.upper_offset, w.now - RETENTION)
    assert open_transactions(w.reopen()) == {}


def test_nothing_at_or_after_the_last_stable_offset_is_touched(tmp_path):
    w = Leader(tmp_path, CONFIG)
    w.plain(kv(("k", "1"), ("k", "2")))
    w.roll()
    first_open = w.txn(3, kv(("k", "open")))  # undecided: the LSO stays here
    w.plain(kv(("k", "3"), ("k", "4")))
    w.roll()
    w.plain(kv(("k", "5")))
    assert w.lso() == first_open
    untouched = batches(w.log, first_open)
    stats = w.compact(w.now + LATER)
    assert stats.upper_offset == first_open and stats.records_removed == 1
    assert batches(w.log, first_open) == untouched
    # the fallback bound (no LSO passed) finds the open transaction in the log itself
    assert w.log.compact(w.now + LATER).records_removed == 0
    assert batches(w.log, first_open) == untouched
    # once it commits, the range beyond it is cleanable
    w.end(3, commit=True)
    w.roll()
    w.compact(w.now + LATER)
    assert keys_values(w.committed()) == [(b"k", b"5")]


def test_a_marker_outlives_its_data_by_one_pass_and_delete_retention(tmp_path):
    w = Leader(tmp_path, CONFIG)
    w.txn(1, kv(("a", "old")))
    commit = w.end(1, commit=True)
    w.txn(2, kv(("b", "old")))
    abort = w.end(2, commit=False)
    w.plain(kv(("a", "new")))
    w.roll()
    w.plain(kv(("z", "active")))

    # pass 1: the superseded and the aborted data go; their markers stay (data was there)
    stats = w.compact(w.now + RETENTION // 2)
    assert (stats.records_removed, stats.aborted_removed, stats.markers_removed) == (2, 1, 0)
    assert marker_offsets(w.log) == [commit, abort]
    # pass 2, no data left but younger than delete.retention.ms: still kept
    assert w.compact(w.now + RETENTION - 1).markers_removed == 0
    assert marker_offsets(w.log) == [commit, abort]
    # pass 3, older: removed
    assert w.compact(w.now + LATER).markers_removed == 2
    assert marker_offsets(w.log) == []
    assert keys_values(w.committed()) == [(b"a", b"new"), (b"z", b"active")]
    loaded = w.reopen(drop_txn_indexes=True)
    assert open_transactions(loaded) == {} and w.lso(loaded) == w.hw
    assert w.log.txn_index.all() == []


def test_a_marker_whose_transaction_still_has_data_is_never_removed(tmp_path):
    w = Leader(tmp_path, CONFIG)
    w.txn(1, kv(("a", "kept"), ("b", "superseded")))
    marker = w.end(1, commit=True)
    w.plain(kv(("b", "new")))
    w.roll()
    for _ in range(3):
        w.compact(w.now + LATER)
    assert marker_offsets(w.log) == [marker]
    # without it, a rebuild would reopen the transaction and pin the LSO at its first record
    for drop in (False, True):
        loaded = w.reopen(drop_txn_indexes=drop)
        assert open_transactions(loaded) == {}
        assert w.lso(loaded) == w.hw


def test_an_abort_whose_marker_is_after_the_cleaned_range_still_hides_its_data(tmp_path):
    # p2's aborted data lies in the cleaned segment, its marker after the LSO bound (p1's
    # transaction opened in between): the index names it, the cleaner removes the data.
    w = Leader(tmp_path, CONFIG)
    w.plain(kv(("k", "committed")))
    w.txn(2, kv(("k", "aborted")))
    w.roll()
    first_open = w.txn(1, kv(("q", "open")))
    w.end(2, commit=False)
    w.roll()
    stats = w.compact(w.now + LATER)
    assert stats.upper_offset == first_open and stats.aborted_removed == 1
    assert keys_values(w.committed()) == [(b"k", b"committed")]
    assert len(w.log.txn_index.all()) == 1  # its marker is beyond the range: kept
    w.end(1, commit=True)
    assert keys_values(w.committed()) == [(b"k", b"committed"), (b"q", b"open")]


CRASH_POINTS = [(1, "rename", n) for n in range(6)] + [(1, "fsync_dir", n) for n in (0, 4, 8)]
CRASH_POINTS += [(2, "rename", n) for n in range(2)] + [(2, "fsync_dir", n) for n in (0, 2, 5)]


@pytest.mark.parametrize(("crash_pass", "op", "after"), CRASH_POINTS)
def test_an_interrupted_clean_never_shows_aborted_data(tmp_path, crash_pass, op, after):
    # pass 1 removes aborted and superseded data, pass 2 the markers left without data
    w = Leader(
        tmp_path,
        LogConfig(segment_bytes=300, cleanup_policy="compact", min_cleanable_dirty_ratio=0.0, delete_retention_ms=RETENTION),
    )
    markers = []
    for i in range(6):
        w.plain(kv((f"k{i % 3}", f"p{i}")))
        w.txn(1 + i % 2, kv((f"k{i % 3}", f"t{i}")))
        markers.append(w.end(1 + i % 2, commit=i % 3 != 0))
    w.roll()
    before = w.committed()
    if crash_pass == 2:
        w.compact(w.now + LATER)
    fs = w.log.fs
    w.log.fs = w.log.txn_index.fs = CrashingFS(op, after)
    with pytest.raises(Crash):
        w.log.compact(w.now + crash_pass * LATER, last_stable_offset=w.lso())
    w.log.abandon()
    w.log = type(w.log).open(tmp_path, w.config, w.now, fs=fs)
    w.ps = T.load_transaction_state(w.log)  # rebuilds the .txnindex files recovery dropped
    assert open_transactions(w.ps) == {}
    mid = w.committed()
    assert set(mid) <= set(before)  # never an aborted record
    assert w.committed(log=w.log) == mid
    rebuilt = w.reopen(drop_txn_indexes=True)  # a stale entry, if any, hides nothing
    assert open_transactions(rebuilt) == {} and w.committed() == mid
    for n in (1, 2):
        w.compact(w.now + (crash_pass + n) * LATER)
    done = w.committed()
    assert set(done) <= set(mid)
    assert done == compacted_view(before, w.log.active_segment.base_offset, 0)
    # t4 and t5 are the latest records of k1 and k2: only their markers stay
    assert marker_offsets(w.log) == markers[4:]


def test_a_removed_abort_marker_takes_its_index_entry_with_it(tmp_path):
    # P aborts, then commits in the same segment. Pass 1 removes the aborted data (the
    # marker's batch now starts where that data did), pass 2 the marker: P's committed batch
    # then starts inside the aborted range. Had the index entry outlived the marker, a
    # read_committed fetch would hide that committed record.
    w = Leader(tmp_path, CONFIG)
    w.txn(5, kv(("a", "aborted")))
    w.end(5, commit=False)
    w.txn(5, kv(("b", "committed")))
    w.end(5, commit=True)
    w.roll()
    w.compact(w.now + LATER)
    w.compact(w.now + 2 * LATER)
    assert keys_values(w.committed()) == [(b"b", b"committed")]
    assert w.log.txn_index.all() == []
    for drop in (False, True):
        loaded = w.reopen(drop_txn_indexes=drop)
        assert keys_values(w.committed(w.lso(loaded))) == [(b"b", b"committed")]


def test_a_producer_snapshot_inside_a_transaction_whose_marker_goes_is_deleted(tmp_path):
    # A snapshot taken while p1's transaction was open remembers it open; the replay after it
    # would never see the marker once compaction removed it, and reopen the transaction.
    w = Leader(tmp_path, CONFIG)
    w.txn(1, kv(("a", "old")))
    w.plain(kv(("x", "1")))
    snapshots = ProducerSnapshots(w.log.fs, tmp_path)
    assert snapshots.write(w.ps, w.log.log_end_offset)  # p1 open in it
    w.end(1, commit=True)
    w.plain(kv(("a", "new")))
    w.roll()
    snapshots.write(w.ps, w.log.log_end_offset)  # after the marker: stays valid
    w.compact(w.now + LATER)
    assert len(snapshots.files()) == 2  # the marker stays this pass
    assert w.compact(w.now + 2 * LATER).markers_removed == 1
    assert sorted(snapshots.files()) == [w.log.active_segment.base_offset]
    w.log.close()
    w.log = type(w.log).open(tmp_path, CONFIG, w.now)
    newest = max(snapshots.files())
    snapshots.files()[newest].write_bytes(b"corrupt")  # the loader falls back to older ones
    loaded = T.load_transaction_state(w.log, snapshots.read())
    assert open_transactions(loaded) == {} and w.lso(loaded) == w.hw


def test_crashes_between_segment_and_index_writes_never_hide_committed_data(tmp_path):
    # As above, with a crash after each pass's segment swap. Pass 1 leaves the entry of the
    # abort (its data gone) on disk; pass 2 must drop it before the swap that removes its
    # marker, or P's committed batch, stretched back over the marker, would be hidden.
    w = Leader(tmp_path, CONFIG)
    w.txn(5, kv(("a", "aborted")))
    w.end(5, commit=False)
    w.txn(5, kv(("b", "committed")))
    w.end(5, commit=True)
    w.roll()
    fs = w.log.fs
    for n in (1, 2):
        w.log.fs = w.log.txn_index.fs = CrashingFS("rename", 2)
        with pytest.raises(Crash):
            w.log.compact(w.now + n * LATER, last_stable_offset=w.lso())
        w.log.abandon()
        w.log = type(w.log).open(tmp_path, w.config, w.now, fs=fs)
        w.ps = T.load_transaction_state(w.log)
        assert keys_values(w.committed()) == [(b"b", b"committed")]
    w.compact(w.now + 3 * LATER)
    assert keys_values(w.committed()) == [(b"b", b"committed")]
    assert w.log.txn_index.all() == []
