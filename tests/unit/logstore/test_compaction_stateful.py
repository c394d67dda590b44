"""Model-based test of a compacted log: appends, rolls, compaction, truncation and crashes with
torn tails, against a list of records. After every step the log reads back exactly the model;
after a crash it holds a prefix of it that includes everything flushed."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rillet.logstore.log import LogConfig, PartitionLog
from rillet.logstore.segment import segment_name

from .helpers import NoSyncFS, make_batch, read_all

CONFIG = LogConfig(
    segment_bytes=400, index_interval_bytes=120, cleanup_policy="compact", min_cleanable_dirty_ratio=0.0, delete_retention_ms=300
)
KEYS = st.sampled_from([b"a", b"b", b"c", None])
VALUES = st.none() | st.sampled_from([b"1", b"22", b"333"])


class CompactedLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="rillet-compactmodel-"))
        self.fs = NoSyncFS()
        self.log = PartitionLog.open(self.dir, CONFIG, 0, fs=self.fs)
        self.model: list[tuple[int, bytes | None, bytes | None, int]] = []  # offset, k, v, ts
        self.leo = 0
        self.flushed = 0
        self.now = 0

    @rule(pairs=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3), ms=st.integers(0, 200))
    def append(self, pairs, ms):
        self.now += ms
        info = self.log.append(make_batch(pairs, ts=self.now), 0, self.now)
        assert info.base_offset == self.leo
        for i, (k, v) in enumerate(pairs):
            self.model.append((self.leo + i, k, v, self.now + i))
        self.leo += len(pairs)
        self.now += len(pairs)  # record i has timestamp now + i: keep the clock ahead of them

    @rule()
    def roll(self):
        self.log.roll(self.now)

    @rule()
    def flush(self):
        self.flushed = self.log.flush()

    @rule(ms=st.integers(0, 400))
    def compact(self, ms):
        self.now += ms
        active = self.log.active_segment.base_offset
        self.log.compact(self.now)
        self.flushed = self.leo  # compaction flushes first
        latest = {}
        for off, k, _v, _ts in self.model:
            if off < active and k is not None:
                latest[k] = off
        horizon = self.now - CONFIG.delete_retention_ms
        self.model = [
            (off, k, v, ts)
            for off, k, v, ts in self.model
            if off >= active or k is None or (latest[k] == off and not (v is None and ts < horizon))
        ]

    @rule(data=st.data())
    def truncate(self, data):
        offset = data.draw(st.integers(0, self.leo))
        self.log.truncate_to(offset)
        self.leo = self.log.log_end_offset
        assert self.leo <= offset
        self.model = [r for r in self.model if r[0] < self.leo]
        self.flushed = min(self.flushed, self.leo)

    @rule()
    def clean_restart(self):
        self.log.close()
        self.flushed = self.leo
        self.log = PartitionLog.open(self.dir, CONFIG, self.now, fs=self.fs)
        assert self.log.recovered_from is None

    @precondition(lambda self: self.leo > self.flushed)
    @rule(data=st.data())
    def crash_with_torn_tail(self, data):
        spans = []
        for seg in self.log.segments:
            if seg.next_offset <= self.flushed:
                continue
            start = seg.find(self.flushed)[0] if seg.base_offset < self.flushed else 0
            spans.append((self.dir / segment_name(seg.base_offset), start, seg.size))
        keep = data.draw(st.integers(0, sum(e - s for _, s, e in spans)))
        self.log.abandon()
        for path, start, end in spans:
            take = min(keep, end - start)
            keep -= take
            with open(path, "r+b") as f:
                f.truncate(start + take)
        self.log = PartitionLog.open(self.dir, CONFIG, self.now, fs=self.fs)
        leo = self.log.log_end_offset
        assert self.flushed <= leo <= self.leo
        self.leo = self.flushed = leo
        self.model = [r for r in self.model if r[0] < leo]
        self.check_reads()

    @invariant()
    def check_reads(self):
        assert self.log.log_end_offset == self.leo
        got = [(r.offset, r.key, r.value) for r in read_all(self.log)]
        assert got == [(off, k, v) for off, k, v, _ts in self.model]

    def teardown(self):
        try:
            self.log.abandon()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


TestCompactedLogModel = CompactedLogMachine.TestCase
TestCompactedLogModel.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_compacted_log_model_many_examples():
    run_state_machine_as_test(
        CompactedLogMachine,
        settings=settings(
            max_examples=500,
            stateful_step_count=60,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
