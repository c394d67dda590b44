"""Compaction: latest record per key, offsets and order kept, tombstones, crash safety."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rillet.logstore.batch import read_header
from rillet.logstore.log import LogConfig, PartitionLog

from .helpers import NoSyncFS, make_batch, read_all, segment_files

COMPACT = LogConfig(segment_bytes=400, cleanup_policy="compact", min_cleanable_dirty_ratio=0.0, delete_retention_ms=1_000)


def append_pairs(log, pairs, ts, epoch=0):
    log.append(make_batch(pairs, ts=ts), epoch, ts)


def test_keeps_latest_per_key_with_original_offsets(tmp_path):
    log = PartitionLog.open(tmp_path, COMPACT, 0, fs=NoSyncFS())
    for i in range(40):
        append_pairs(log, [(b"k%d" % (i % 3), b"v%d" % i)], ts=10 * i)
    leo = log.log_end_offset
    before = read_all(log)
    stats = log.compact(now_ms=10**6)
    assert stats.records_removed > 0 and stats.bytes_after < stats.bytes_before
    after = read_all(log)
    assert log.log_end_offset == leo
    offsets = [r.offset for r in after]
    assert offsets == sorted(offsets)
    active_start = log.active_segment.base_offset
    sealed = [r for r in after if r.offset < active_start]
    # one record per key among the sealed segments, the latest one there
    expected = {}
    for r in before:
        if r.offset < active_start:
            expected[r.key] = r
    assert sorted(sealed, key=lambda r: r.offset) == sorted(
        expected.values(), key=lambda r: r.offset
    )
    assert [r for r in after if r.offset >= active_start] == [
        r for r in before if r.offset >= active_start
    ]
    assert log.compact(now_ms=10**6).records_removed == 0  # idempotent
    log.close()
    assert read_all(PartitionLog.open(tmp_path, COMPACT, 0, fs=NoSyncFS())) == after


def test_tombstones_kept_until_delete_retention(tmp_path):
    log = PartitionLog.open(tmp_path, COMPACT, 0, fs=NoSyncFS())
    append_pairs(log, [(b"a", b"1"), (b"b", b"1")], ts=0)
    append_pairs(log, [(b"a", None)], ts=5_000)
    append_pairs(log, [(None, b"no key")], ts=5_000)
    log.roll(5_000)
    append_pairs(log, [(b"c", b"active")], ts=6_000)
    log.compact(now_ms=5_500)  # tombstone younger than delete.retention.ms: kept
    assert [(r.key, r.value) for r in read_all(log)] == [
        (b"b", b"1"),
        (b"a", None),
        (None, b"no key"),
        (b"c", b"active"),
    ]
    stats = log.compact(now_ms=7_000)
    assert stats.tombstones_removed == 1
    assert [(r.offset, r.key) for r in read_all(log)] == [(1, b"b"), (3, None), (4, b"c")]
    assert read_all(log, start=2)[0].offset == 3  # reading inside a gap starts after it


def test_never_touches_active_segment_or_recent_records(tmp_path):
    cfg = LogConfig(segment_bytes=10**6, cleanup_policy="compact", min_cleanable_dirty_ratio=0.0)
    log = PartitionLog.open(tmp_path, cfg, 0, fs=NoSyncFS())
    for i in range(10):
        append_pairs(log, [(b"k", b"%d" % i)], ts=i)
    assert log.compact(now_ms=10**6).records_removed == 0
    assert len(read_all(log)) == 10
    lagged = LogConfig(segment_bytes=200, cleanup_policy="compact", min_cleanable_dirty_ratio=0.0, min_compaction_lag_ms=500)
    log2 = PartitionLog.open(tmp_path / "lag", lagged, 0, fs=NoSyncFS())
    for i in range(10):
        append_pairs(log2, [(b"k", b"%d" % i)], ts=100 * i)
    log2.compact(now_ms=900)  # only segments whose records are all <= 400 ms old
    kept = [r for r in read_all(log2)]
    assert all(r.timestamp > 400 for r in kept[1:])


def test_delete_policy_does_not_compact(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=200), 0)
    for i in range(10):
        append_pairs(log, [(b"k", b"%d" % i)], ts=i)
    assert log.compact(now_ms=10**6).records_removed == 0


def test_a_segment_that_becomes_empty_is_deleted(tmp_path):
    log = PartitionLog.open(tmp_path, COMPACT, 0, fs=NoSyncFS())
    for i in range(30):
        append_pairs(log, [(b"same", b"%d" % i)], ts=i)
    log.compact(now_ms=10**6)
    sealed = [r for r in read_all(log) if r.offset < log.active_segment.base_offset]
    assert len(sealed) == 1 and len(segment_files(tmp_path)) == 2
    log.abandon()
    log = PartitionLog.open(
        tmp_path, COMPACT, 0, fs=NoSyncFS()
    )  # unclean: revalidates cleaned segments
    assert [r.offset for r in read_all(log)][0] == sealed[0].offset and log.recovered_from is None


class Crash(BaseException):
    """Simulated power cut: not an OSError, so the log does not handle it."""


class CrashingFS(NoSyncFS):
    def __init__(self, op: str, after: int) -> None:
        self.op, self.after = op, after

    def _tick(self, op: str) -> None:
        if op == self.op:
            self.after -= 1
            if self.after < 0:
                raise Crash(op)

    def rename(self, src, dst):
        self._tick("rename")
        super().rename(src, dst)

    def fsync_dir(self, directory):
        self._tick("fsync_dir")
        super().fsync_dir(directory)


@pytest.mark.parametrize(("op", "after"), [("rename", 0), ("rename", 1), ("fsync_dir", 1)])
def test_interrupted_clean_leaves_log_complete(tmp_path, op, after):
    log = PartitionLog.open(tmp_path, COMPACT, 0, fs=NoSyncFS())
    for i in range(20):
        append_pairs(log, [(b"k%d" % (i % 4), b"v%d" % i), (b"u%d" % i, b"u")], ts=i)
    log.flush()
    latest_before = {r.key: (r.offset, r.value) for r in read_all(log)}
    log.fs = CrashingFS(op, after)
    with pytest.raises(Crash):
        log.compact(now_ms=10**6)
    log.abandon()
    log = PartitionLog.open(tmp_path, COMPACT, 0, fs=NoSyncFS())
    assert not any(p.name.endswith(".cleaned") for p in tmp_path.iterdir())
    after = read_all(log)
    assert {r.key: (r.offset, r.value) for r in after} == latest_before
    assert [r.offset for r in after] == sorted(r.offset for r in after)
    assert log.log_end_offset == 40
    log.compact(now_ms=10**6)
    assert {r.key: (r.offset, r.value) for r in read_all(log)} == latest_before


def test_cleaned_batches_stay_contiguous(tmp_path):
    log = PartitionLog.open(tmp_path, COMPACT, 0, fs=NoSyncFS())
    for i in range(30):
        append_pairs(log, [(b"k%d" % (i % 2), b"v"), (b"x%d" % i, b"v")], ts=i, epoch=i // 10)
    log.compact(now_ms=10**6)
    for seg in log.segments:
        expected = seg.base_offset
        for header, data in seg.batches():
            assert header.base_offset == expected
            assert read_header(data).record_count <= header.last_offset_delta + 1
            expected = header.next_offset
    assert log.segments[-2].next_offset == log.active_segment.base_offset


keys = st.sampled_from([b"a", b"b", b"c", b"d", None])
values = st.none() | st.sampled_from([b"1", b"2", b"3", b""])
batches = st.lists(
    st.lists(st.tuples(keys, values), min_size=1, max_size=4), min_size=1, max_size=25
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=batches, seg_bytes=st.integers(150, 600), tomb_age=st.integers(0, 100))
def test_compaction_property(tmp_path_factory, batches, seg_bytes, tomb_age):
    directory = tmp_path_factory.mktemp("c")
    cfg = LogConfig(segment_bytes=seg_bytes, cleanup_policy="compact", min_cleanable_dirty_ratio=0.0, delete_retention_ms=50)
    log = PartitionLog.open(directory, cfg, 0, fs=NoSyncFS())
    written = []  # (offset, key, value, ts)
    for i, pairs in enumerate(batches):
        info = log.append(make_batch(pairs, ts=10 * i), 0, 0)
        for j, (k, v) in enumerate(pairs):
            written.append((info.base_offset + j, k, v, 10 * i + j))
    now = 10 * len(batches) + tomb_age
    log.compact(now_ms=now)
    active = log.active_segment.base_offset
    latest = {}
    for off, k, _v, _ts in written:
        if off < active and k is not None:
            latest[k] = off
    expected = [
        (off, k, v)
        for off, k, v, ts in written
        if off >= active or k is None or (latest[k] == off and not (v is None and ts < now - 50))
    ]
    got = [(r.offset, r.key, r.value) for r in read_all(log)]
    assert got == expected
    # the latest value of every key is still there, with its original offset
    final = {k: (off, v) for off, k, v, ts in written if k is not None}
    got_final = {k: (off, v) for off, k, v in got if k is not None}
    for k, (off, v) in final.items():
        if k in got_final or v is not None:
            assert got_final[k] == (off, v)
    log.close()
    assert [
        (r.offset, r.key, r.value)
        for r in read_all(PartitionLog.open(directory, cfg, 0, fs=NoSyncFS()))
    ] == got



@pytest.mark.parametrize("keys, to", [(b"abab", 0), (b"abcdcdcd", 1)])
def test_truncation_below_the_cleaned_offset_lowers_it(tmp_path, keys, to):
    """A follower truncates below what its cleaner already cleaned and appends the leader's
    records there again: they are dirty (Kafka's maybeTruncateCheckpoint). The checkpoint
    used to stay above them, so they counted as clean and were never compacted (found by
    test_compaction_stateful's long run). Truncated to nothing, and to a cleaned record."""
    log = PartitionLog.open(tmp_path, COMPACT, 0, fs=NoSyncFS())
    end = len(keys)
    for i in range(end):
        append_pairs(log, [(keys[i:i + 1], b"%d" % i)], ts=i)
    log.roll(10)
    log.compact(now_ms=10)
    latest = {k: i for i, k in enumerate(keys)}
    assert [r.offset for r in read_all(log)] == sorted(latest.values())  # all of it is clean
    log.truncate_to(to)
    assert log.log_end_offset == to
    kept = [(r.offset, r.key) for r in read_all(log)]
    for i in range(to, end):
        append_pairs(log, [(b"z", b"x%d" % i)], ts=20 + i)
    log.roll(30)
    log.close()  # the checkpoint is read back from its file too
    log = PartitionLog.open(tmp_path, COMPACT, 40, fs=NoSyncFS())
    log.compact(now_ms=40)
    # the appended records are compacted too: only the latest "z" is left of them
    assert [(r.offset, r.key) for r in read_all(log)] == [*kept, (end - 1, b"z")]
    log.close()
