"""Which compacted logs are cleaned (logstore/cleaner_select.py): min.cleanable.dirty.ratio,
max.compaction.lag.ms (which also rolls the active segment), the cleaner checkpoint."""

from __future__ import annotations

import pytest
from rillet.logstore import cleaner_select as CS
from rillet.logstore.config import LONG_MAX, LogConfig
from rillet.logstore.errors import LogConfigError
from rillet.logstore.log import PartitionLog

from .helpers import NoSyncFS, make_batch


def _log(tmp_path, **cfg):
    cfg = {"segment_bytes": 300, "cleanup_policy": "compact", **cfg}
    return PartitionLog.open(tmp_path, LogConfig(**cfg), 0, fs=NoSyncFS())


def _write(log, key: bytes, n: int, ts: int) -> None:
    for i in range(n):
        log.append(make_batch([b"value-%d" % i], key=key, ts=ts), 0, ts)


def test_the_worked_example_of_the_docstring(tmp_path) -> None:
    log = _log(tmp_path)
    _write(log, b"k", 12, ts=1000)  # several sealed segments and an active one
    sealed = log.segments[:-1]
    assert len(sealed) >= 3
    first_dirty = sealed[-1].base_offset  # the last pass ended before the last sealed one
    d = CS.dirtiness(log, first_dirty, now_ms=2000)
    assert d.clean_bytes == sum(s.size for s in sealed[:-1])
    assert d.dirty_bytes == sealed[-1].size  # the active segment never counts
    assert d.ratio == pytest.approx(d.dirty_bytes / (d.clean_bytes + d.dirty_bytes))
    assert not d.due(LogConfig(cleanup_policy="compact"))  # 0.2 < 0.5
    assert d.due(LogConfig(cleanup_policy="compact", min_cleanable_dirty_ratio=0.1))
    # a stale or unknown checkpoint means everything is dirty
    for stale in (None, log.log_end_offset + 5, -1):
        assert CS.dirtiness(log, stale, 2000).first_dirty_offset == log.log_start_offset


def test_the_ratio_gates_compaction_and_the_checkpoint_remembers_the_clean_part(tmp_path):
    log = _log(tmp_path)  # min.cleanable.dirty.ratio 0.5 (Kafka's default)
    for rnd in range(2):  # 12 keys written twice: compaction keeps 12 records
        for k in range(12):
            _write(log, b"k%02d" % k, 1, ts=1000 + rnd)
    first = log.compact(now_ms=2000)  # nothing clean yet: ratio 1.0
    assert first.records_removed >= 10  # (the active segment keeps its two)
    assert CS.read_checkpoint(log)[0] == first.upper_offset == log.first_dirty_offset
    _write(log, b"k00", 4, ts=3000)  # a little more: a small dirty part
    d = CS.dirtiness(log, log.first_dirty_offset, 4000)
    assert d.dirty_bytes > 0 and d.ratio < 0.5
    assert log.compact(now_ms=4000).records_removed == 0  # not due
    # a reopened log reads the checkpoint: still not due
    log.close()
    log = _log(tmp_path)
    assert log.compact(now_ms=4000).records_removed == 0
    _write(log, b"k01", 30, ts=5000)  # now the dirty part dominates
    assert CS.dirtiness(log, log.first_dirty_offset, 6000).ratio > 0.5
    assert log.compact(now_ms=6000).records_removed > 0


def test_max_compaction_lag_makes_a_log_cleanable_whatever_its_ratio(tmp_path) -> None:
    # ratio 1.0 never triggers (Kafka's test is strictly above the ratio)
    log = _log(tmp_path, min_cleanable_dirty_ratio=1.0, max_compaction_lag_ms=10_000)
    _write(log, b"k", 12, ts=1000)
    assert CS.dirtiness(log, None, 5000).max_compaction_delay_ms == 0
    assert log.compact(now_ms=5000).records_removed == 0
    d = CS.dirtiness(log, None, 11_500)  # the first dirty batch (ts 1000) is 10.5 s old
    assert d.max_compaction_delay_ms == 500 and d.due(log.config)
    assert log.compact(now_ms=11_500).records_removed > 0
    # the default max lag (Long.MAX_VALUE) never triggers
    assert CS.dirtiness(_log(tmp_path / "d", min_cleanable_dirty_ratio=1.0), None,
                        10**13).max_compaction_delay_ms == 0


def test_max_compaction_lag_rolls_the_active_segment_of_a_compacted_log(tmp_path) -> None:
    log = _log(tmp_path, segment_bytes=10**6, max_compaction_lag_ms=1_000)
    assert log.config.roll_ms == 1_000
    _write(log, b"k", 3, ts=0)
    log.append(make_batch([b"late"], key=b"k", ts=1_500), 0, 1_500)  # older than the lag: roll
    assert len(log.segments) == 2
    # a delete-only topic ignores it (Kafka: maxSegmentMs only for compacted logs)
    assert LogConfig(max_compaction_lag_ms=1_000).roll_ms == LogConfig().segment_ms


def test_a_kept_tombstone_makes_a_pass_due_once_delete_retention_passes(tmp_path) -> None:
    log = _log(tmp_path, delete_retention_ms=1_000, min_cleanable_dirty_ratio=1.0,
               max_compaction_lag_ms=100)
    _write(log, b"k", 10, ts=0)
    log.append(make_batch([None], key=b"k", ts=50), 0, 50)  # a tombstone, latest for k
    log.roll(60)
    first = log.compact(now_ms=500)  # the max lag passed: cleaned, the tombstone kept
    assert first.records_removed > 0 and first.tombstones_removed == 0
    assert log.cleaner_removable_at_ms == 1_050
    assert log.compact(now_ms=900).segments_cleaned == 0  # not dirty, the tombstone young
    assert log.compact(now_ms=1_100).tombstones_removed == 1


def test_config_validation_of_the_cleaner_keys() -> None:
    c = LogConfig.from_topic_config({"min.cleanable.dirty.ratio": "0.1",
                                     "max.compaction.lag.ms": "60000"})
    assert (c.min_cleanable_dirty_ratio, c.max_compaction_lag_ms) == (0.1, 60_000)
    assert LogConfig().max_compaction_lag_ms == LONG_MAX
    for bad, says in [({"min.cleanable.dirty.ratio": "1.5"}, "must be in"),
                      ({"min.cleanable.dirty.ratio": "nan"}, "not a number"),
                      ({"min.cleanable.dirty.ratio": "half"}, "not a number"),
                      ({"max.compaction.lag.ms": "0"}, ">= 1"),
                      ({"min.compaction.lag.ms": "5000", "max.compaction.lag.ms": "1000"},
                       "above max.compaction.lag.ms")]:
        with pytest.raises(LogConfigError, match=says):
            LogConfig.from_topic_config(bad)
