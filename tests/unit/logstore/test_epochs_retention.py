"""Leader-epoch cache (KIP-101/279 lookups, persistence) and retention."""

from __future__ import annotations

from rillet.logstore.epochs import LeaderEpochCache
from rillet.logstore.log import LogConfig, PartitionLog

from .helpers import make_batch, read_all, segment_files


def test_end_offset_for_follows_kip_279():
    c = LeaderEpochCache([(0, 0), (2, 120), (5, 300)], log_end_offset=lambda: 410)
    assert c.latest_epoch == 5
    assert c.end_offset_for(5) == (5, 410)
    assert c.end_offset_for(2) == (2, 300)
    assert c.end_offset_for(3) == (2, 300)  # unknown epoch: largest below it
    assert c.end_offset_for(0) == (0, 120)
    assert c.end_offset_for(7) == (-1, -1)
    assert c.end_offset_for(-1) == (-1, -1)
    assert LeaderEpochCache([(3, 50)]).end_offset_for(1) == (1, 50)  # older than all known
    assert LeaderEpochCache().end_offset_for(0) == (-1, -1)
    assert c.epoch_for_offset(119) == 0 and c.epoch_for_offset(120) == 2


def test_assign_and_truncate_persist_every_change():
    saved, durable = [], []
    c = LeaderEpochCache(persist=lambda entries, d: (saved.append(entries), durable.append(d)))
    assert c.assign(1, 0) and not c.assign(1, 10) and not c.assign(0, 10)
    c.assign(3, 50)
    c.assign(4, 50)  # same start offset: supersedes epoch 3
    assert c.entries == [(1, 0), (4, 50)]
    c.truncate_from_end(50)
    assert c.entries == [(1, 0)]
    c.assign(6, 80)
    c.assign(7, 90)
    c.truncate_from_start(85)
    assert c.entries == [(6, 85), (7, 90)]
    assert saved[-1] == c.entries and len(saved) == 7
    # a new epoch is written unfsynced (the log's next flush makes it durable); truncations
    # are durable at once
    assert durable == [False, False, False, True, False, False, True]


def test_epoch_cache_survives_restart_and_truncation(tmp_path):
    cfg = LogConfig(segment_bytes=600)
    log = PartitionLog.open(tmp_path, cfg, 0)
    for epoch in (1, 1, 2, 2, 4):
        log.append(make_batch([b"a", b"b"]), epoch, 0)
    assert log.epochs.entries == [(1, 0), (2, 4), (4, 8)]
    assert log.epochs.end_offset_for(2) == (2, 8)
    assert log.epochs.end_offset_for(4) == (4, 10)
    log.truncate_to(6)
    assert log.epochs.entries == [(1, 0), (2, 4)]
    log.abandon()  # crash: the checkpoint was written atomically on every change
    log = PartitionLog.open(tmp_path, cfg, 0)
    assert log.epochs.entries == [(1, 0), (2, 4)]
    log.close()


def test_lost_epoch_checkpoint_is_rebuilt_from_the_log(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=600), 0)
    for epoch in (0, 3, 3, 7):
        log.append(make_batch([b"x"]), epoch, 0)
    log.close()
    (tmp_path / "leader-epoch.checkpoint").write_bytes(b"garbage")
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=600), 0)
    assert log.epochs.entries == [(0, 0), (3, 1), (7, 3)]


def test_epoch_checkpoint_ahead_of_log_is_truncated(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    log.append(make_batch([b"x"]), 1, 0)
    log.flush()
    log.append(make_batch([b"y"]), 2, 0)  # epoch 2 checkpointed, batch never reaches disk
    log.abandon()
    seg = segment_files(tmp_path)[0]
    seg.write_bytes(seg.read_bytes()[:-10])
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    assert log.log_end_offset == 1 and log.epochs.entries == [(1, 0)]


def _segments_log(tmp_path, cfg, n=30, ts_step=1000):
    log = PartitionLog.open(tmp_path, cfg, 0)
    for i in range(n):
        log.append(make_batch([b"v" * 50], ts=i * ts_step), 0, i)
    return log


def test_retention_ms_deletes_old_segments_never_the_active(tmp_path):
    cfg = LogConfig(segment_bytes=500, retention_ms=10_000)
    log = _segments_log(tmp_path, cfg)
    segs = len(log.segments)
    assert segs > 4
    assert log.delete_old_segments(now_ms=0) == 0
    deleted = log.delete_old_segments(now_ms=20_000)
    assert deleted >= 1
    assert all(s.max_timestamp >= 10_000 for s in log.segments[:-1])
    assert log.log_start_offset == log.segments[0].base_offset > 0
    assert [r.offset for r in read_all(log)] == list(range(log.log_start_offset, 30))
    remaining = len(log.segments)
    assert log.delete_old_segments(now_ms=10**12) == remaining - 1
    assert len(log.segments) == 1 and log.log_end_offset == 30  # active segment kept
    assert len(segment_files(tmp_path)) == 1
    log.close()
    log = PartitionLog.open(tmp_path, cfg, 0)
    assert log.log_start_offset == log.segments[0].base_offset


def test_retention_bytes(tmp_path):
    cfg = LogConfig(segment_bytes=500, retention_bytes=1200, retention_ms=-1)
    log = _segments_log(tmp_path, cfg)
    assert log.delete_old_segments(now_ms=10**12) > 0
    assert log.size_in_bytes <= 1200 + log.segments[0].size
    assert log.size_in_bytes - log.segments[0].size < 1200
    assert log.delete_old_segments(now_ms=10**12) == 0


def test_retention_is_off_for_compact_only(tmp_path):
    cfg = LogConfig(segment_bytes=500, retention_ms=1, cleanup_policy="compact")
    log = _segments_log(tmp_path, cfg)
    assert log.delete_old_segments(now_ms=10**12) == 0


def test_crash_between_log_start_checkpoint_and_file_deletion(tmp_path):
    cfg = LogConfig(segment_bytes=500, retention_ms=10_000)
    log = _segments_log(tmp_path, cfg)
    doomed = [p.read_bytes() for p in segment_files(tmp_path)[:2]]
    names = [p.name for p in segment_files(tmp_path)[:2]]
    log.delete_old_segments(now_ms=20_000)
    start = log.log_start_offset
    log.close()
    for name, data in zip(names, doomed, strict=True):  # "the unlink never happened"
        (tmp_path / name).write_bytes(data)
    log = PartitionLog.open(tmp_path, cfg, 0)
    assert log.log_start_offset == start
    assert not (tmp_path / names[0]).exists()


def test_delete_records_before_drops_whole_segments_below_the_offset(tmp_path):
    cfg = LogConfig(segment_bytes=500, retention_ms=-1)
    log = _segments_log(tmp_path, cfg)
    assert log.delete_records_before(0, now_ms=0) == 0
    first_next = log.segments[0].next_offset
    assert log.delete_records_before(first_next - 1, now_ms=0) == 0  # not wholly below
    cut = log.segments[2].next_offset
    assert log.delete_records_before(cut, now_ms=0) == 3
    assert log.log_start_offset == cut == log.segments[0].base_offset
    assert [r.offset for r in read_all(log)] == list(range(cut, 30))
    sealed = len(log.segments) - 1
    assert sealed > 0 and log.delete_records_before(10**9, now_ms=0) == sealed
    assert len(segment_files(tmp_path)) == 1 and log.log_end_offset == 30  # active kept
    start = log.log_start_offset
    log.close()
    log = PartitionLog.open(tmp_path, cfg, 0)
    assert log.log_start_offset == start
