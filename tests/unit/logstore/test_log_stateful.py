"""Model-based test of PartitionLog (reliability.md 5.4): hypothesis drives a real log in a temp
dir and a list of batches side by side, with crashes that cut or garble unflushed bytes.

Properties: reads always equal the model; the recovered log is a prefix of what was written
and contains every flushed batch; nothing corrupt is ever returned (every read validates).
"""

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
)
from rillet.logstore.batch import iter_batches, records
from rillet.logstore.log import LogConfig, PartitionLog
from rillet.logstore.segment import segment_name

from .helpers import NoSyncFS, make_batch

CONFIG = LogConfig(
    segment_bytes=700, index_interval_bytes=150, retention_ms=-1, retention_bytes=2500
)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="rillet-logmodel-"))
        self.fs = NoSyncFS()  # crashes are simulated by cutting files, so fsync is moot
        self.log = PartitionLog.open(self.dir, CONFIG, 0, fs=self.fs)
        self.batches: list[tuple[int, list[bytes]]] = []  # (base offset, values)
        self.start = 0
        self.flushed = 0  # every batch below this offset was fsynced
        self.epoch = 0
        self.now = 0
        self.counter = 0

    # -------------------------------------------------------------------------- model helpers

    @property
    def leo(self) -> int:
        if not self.batches:
            return self.start
        base, values = self.batches[-1]
        return base + len(values)

    def model_records(self, from_offset: int) -> list[tuple[int, bytes]]:
        out = []
        for base, values in self.batches:
            if base + len(values) > from_offset:
                out.extend((base + i, v) for i, v in enumerate(values))
        return out

    def cut_model(self, end: int) -> None:
        """Keep only the batches that end at or before ``end``."""
        self.batches = [(b, v) for b, v in self.batches if b + len(v) <= end]

    # ---------------------------------------------------------------------------------- rules

    @rule(n=st.integers(1, 4), size=st.integers(0, 60))
    def append(self, n, size):
        values = []
        for _ in range(n):
            self.counter += 1
            values.append(b"%d:" % self.counter + b"x" * size)
        info = self.log.append(make_batch(values, ts=self.now), self.epoch, self.now)
        assert info.base_offset == self.leo
        self.batches.append((info.base_offset, values))

    @rule()
    def new_epoch(self):
        self.epoch += 1

    @rule(ms=st.integers(0, 500))
    def tick(self, ms):
        self.now += ms

    @rule()
    def flush(self):
        assert self.log.flush() == self.leo
        self.flushed = self.leo

    @rule()
    def roll(self):
        self.log.roll(self.now)

    @rule(data=st.data())
    def read(self, data):
        offset = data.draw(st.integers(self.start, self.leo))
        max_bytes = data.draw(st.integers(1, 1500))
        hw = data.draw(st.none() | st.integers(self.start, self.leo))
        got = self.log.read(offset, max_bytes, hw)
        headers = [h for h, _ in iter_batches(got)]  # validates every batch
        if not headers:  # only at the end, or when the batch at offset reaches the HW
            if offset < self.leo:
                base, values = next((b, v) for b, v in self.batches if b + len(v) > offset)
                assert hw is not None and base + len(values) - 1 >= hw
            return
        assert headers[0].base_offset <= offset <= headers[0].last_offset
        assert len(headers) == 1 or len(got) <= max_bytes
        if hw is not None:
            assert headers[-1].last_offset < hw
        recs = [(r.offset, r.value) for r in records(got)]
        assert recs == self.model_records(offset)[: len(recs)]

    @rule(data=st.data())
    def truncate(self, data):
        offset = data.draw(st.integers(self.start, self.leo))
        self.log.truncate_to(offset)
        self.cut_model(offset)
        self.flushed = min(self.flushed, self.leo)

    @rule()
    def retention(self):
        self.log.delete_old_segments(self.now)
        new_start = self.log.log_start_offset
        assert self.start <= new_start <= self.leo
        assert new_start in {b for b, _ in self.batches} | {self.leo}
        self.batches = [(b, v) for b, v in self.batches if b >= new_start]
        self.start = new_start

    @rule()
    def clean_restart(self):
        self.log.close()  # flushes
        self.flushed = self.leo
        self.reopen()
        assert self.log.recovered_from is None
        self.check_everything()

    @rule(data=st.data())
    def crash_with_torn_tail(self, data):
        """Power loss: of the bytes never fsynced, only a prefix (any length) survives."""
        spans = self.unflushed_spans()
        total = sum(end - start for _, start, end in spans)
        keep = data.draw(st.integers(0, total))
        drop_new_files = data.draw(st.booleans())
        self.log.abandon()
        for path, start, end in spans:
            take = min(keep, end - start)
            keep -= take
            if take == 0 and start == 0 and drop_new_files:
                path.unlink()
            else:
                with open(path, "r+b") as f:
                    f.truncate(start + take)
        self.recover_and_check()

    @precondition(lambda self: self.leo > self.flushed)
    @rule(data=st.data())
    def crash_with_garbled_unflushed_byte(self, data):
        spans = [s for s in self.unflushed_spans() if s[2] > s[1]]
        path, start, end = data.draw(st.sampled_from(spans))
        pos = data.draw(st.integers(start, end - 1))
        self.log.abandon()
        self.flip(path, pos, data.draw(st.integers(0, 7)))
        self.recover_and_check()

    @precondition(lambda self: self.leo > self.start)
    @rule(data=st.data())
    def bit_rot_anywhere_then_full_recovery(self, data):
        """A flipped bit anywhere, found by a full revalidation (no recovery point)."""
        segs = [s for s in self.log.segments if s.size > 0]
        seg = data.draw(st.sampled_from(segs))
        path = self.dir / segment_name(seg.base_offset)
        pos = data.draw(st.integers(0, seg.size - 1))
        self.log.abandon()
        self.flip(path, pos, data.draw(st.integers(0, 7)))
        (self.dir / "recovery-point.checkpoint").unlink(missing_ok=True)
        self.flushed = 0  # flushed data after the flip may be cut: only a prefix is promised
        self.recover_and_check()

    # ------------------------------------------------------------------------------ checking

    def unflushed_spans(self) -> list[tuple[Path, int, int]]:
        """(file, first unflushed byte, end) for every segment holding unflushed data."""
        spans = []
        for seg in self.log.segments:
            if seg.next_offset <= self.flushed:
                continue
            start = seg.find(self.flushed)[0] if seg.base_offset < self.flushed else 0
            spans.append((self.dir / segment_name(seg.base_offset), start, seg.size))
        return spans

    def flip(self, path: Path, pos: int, bit: int) -> None:
        raw = bytearray(path.read_bytes())
        raw[pos] ^= 1 << bit
        path.write_bytes(raw)

    def reopen(self) -> None:
        self.log = PartitionLog.open(self.dir, CONFIG, self.now, fs=self.fs)

    def recover_and_check(self) -> None:
        written = self.model_records(self.start)
        self.reopen()
        assert self.log.log_start_offset == self.start
        leo = self.log.log_end_offset
        assert leo >= self.flushed, "a flushed batch was lost"
        self.cut_model(leo)
        assert self.leo == leo or (not self.batches and leo == self.start), "not a batch prefix"
        got = self.read_everything()
        assert got == written[: len(got)], "recovered log is not a prefix of what was written"
        assert got == self.model_records(self.start)
        self.flushed = leo  # recovery fsyncs what it keeps
        self.epoch = max(self.epoch, self.log.epochs.latest_epoch)

    def read_everything(self) -> list[tuple[int, bytes]]:
        out = []
        offset = self.log.log_start_offset
        while offset < self.log.log_end_offset:
            data = self.log.read(offset, 1000)
            assert data, f"read at {offset} returned nothing before the log end"
            headers = [h for h, _ in iter_batches(data)]
            out.extend((r.offset, r.value) for r in records(data))
            offset = headers[-1].next_offset
        return out

    def check_everything(self) -> None:
        assert self.read_everything() == self.model_records(self.start)

    @invariant()
    def offsets_match(self):
        assert self.log.log_end_offset == self.leo
        assert self.log.log_start_offset == self.start
        assert self.log.recovery_point >= self.flushed

    def teardown(self):
        try:
            self.log.abandon()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

TestLogModel = LogMachine.TestCase
TestLogModel.settings = settings(max_examples=40, stateful_step_count=35, **_common)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_log_model_many_examples():
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        LogMachine, settings=settings(max_examples=1000, stateful_step_count=80, **_common)
    )
