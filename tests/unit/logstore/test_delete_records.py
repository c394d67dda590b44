"""DeleteRecords in the log store (Kafka's ``UnifiedLog.maybeIncrementLogStartOffset``): the
log start offset moves to exactly the offset asked for, durably; reads below it are out of
range; whole segments below it go; retention never moves it backwards."""

from __future__ import annotations

import pytest
from rillet.logstore.errors import OffsetOutOfRangeError
from rillet.logstore.log import LogConfig, PartitionLog

from .helpers import make_batch, read_all, segment_files


def _log(tmp_path, **cfg):
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=500, **cfg), 0)
    for i in range(10):  # 10 batches of 3 records: offsets 0..29, several segments
        log.append(make_batch([f"v{i}-{j}".encode() for j in range(3)], ts=1000 + i), 0, i)
    log.flush()
    return log


def test_log_start_moves_to_the_exact_offset_and_reads_below_are_out_of_range(tmp_path):
    log = _log(tmp_path)
    segments_before = len(log.segments)
    assert segments_before > 2
    assert log.delete_records(13, now_ms=100) == 13  # inside a batch, inside a segment
    assert log.log_start_offset == 13
    with pytest.raises(OffsetOutOfRangeError):
        log.read(12, 1 << 20)
    assert [r.offset for r in read_all(log)] == list(range(13, 30))
    assert len(log.segments) < segments_before  # the segments wholly below went
    assert all(s.next_offset > 13 for s in log.segments)
    # not above the start: nothing happens; above the log end: refused
    assert log.delete_records(5, now_ms=101) == 13
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records(31, now_ms=102)
    assert log.log_start_offset == 13


def test_the_log_start_survives_a_crash_and_a_clean_reopen(tmp_path):
    log = _log(tmp_path)
    log.delete_records(13, now_ms=100)
    log.abandon()  # a crash right after: the checkpoint was durable
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=500), 200)
    assert log.log_start_offset == 13
    assert [r.offset for r in read_all(log)][0] == 13
    log.delete_records(20, now_ms=300)
    log.close()
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=500), 400)
    assert log.log_start_offset == 20
    assert log.offset_for_timestamp(0) == 20


def test_up_to_the_log_end_keeps_the_active_segment_and_appends_continue(tmp_path):
    log = _log(tmp_path)
    assert log.delete_records(30, now_ms=100) == 30
    assert len(segment_files(tmp_path)) == 1  # only the active segment is left
    assert read_all(log) == []
    info = log.append(make_batch([b"after"]), 0, 200)
    assert info.base_offset == 30
    assert [r.value for r in read_all(log)] == [b"after"]


def test_retention_never_moves_the_log_start_backwards(tmp_path):
    log = _log(tmp_path, retention_ms=10)
    first_kept = log.segments[1]
    target = first_kept.base_offset + 1  # inside the second segment
    log.delete_records(target, now_ms=100)
    log.delete_old_segments(now_ms=10_000_000)  # every sealed segment is old
    assert log.log_start_offset >= target
    with pytest.raises(OffsetOutOfRangeError):
        log.read(target - 1, 1 << 20)


def test_retention_deletes_a_sealed_segment_left_wholly_below_the_log_start(tmp_path):
    log = _log(tmp_path, retention_ms=-1)
    end = log.log_end_offset
    log.delete_records(end, now_ms=100)  # the active segment is below the start but stays
    log.append(make_batch([b"x" * 600]), 0, 200)  # rolls: the old active is sealed
    assert log.segments[0].next_offset <= log.log_start_offset
    assert log.delete_old_segments(now_ms=300) == 1
    assert len(log.segments) == 1 and log.log_start_offset == end


def test_the_records_below_a_new_log_start_are_flushed_first(tmp_path):
    """A crash must not leave the log end below the log start: recovery cuts only above the
    recovery point, so the log is flushed up to the new start before it is recorded."""
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=500), 0)
    for i in range(5):
        log.append(make_batch([b"x%d" % i]), 0, i)
    assert log.recovery_point == 0 and log.unflushed
    log.delete_records(3, now_ms=10)
    assert log.recovery_point >= 3
