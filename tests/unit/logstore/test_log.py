"""PartitionLog: append, read, roll, indexes, truncation, recovery, flush policies, failure."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rillet.logstore.batch import iter_batches, read_header, records
from rillet.logstore.errors import (
    CorruptBatchError,
    LogFailedError,
    LogStoreError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StaleLeaderEpochError,
    UnexpectedOffsetError,
)
from rillet.logstore.log import LogConfig, PartitionLog
from rillet.logstore.segment import segment_name

from .helpers import FaultyFS, NoSyncFS, make_batch, read_all, segment_files

SMALL = LogConfig(segment_bytes=1500, index_interval_bytes=200)


def fill(log, n_batches, per_batch=3, epoch=0, t0=0):
    for i in range(n_batches):
        vals = [b"v%d" % (log.log_end_offset + j) for j in range(per_batch)]
        log.append(make_batch(vals, ts=1_000 + log.log_end_offset), epoch, t0 + i)


def test_append_stamps_offsets_and_epoch(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    a = log.append(make_batch([b"a", b"b"], ts=5), 3, 0)
    b = log.append(make_batch([b"c"], ts=9), 3, 0)
    assert (a.base_offset, a.last_offset, a.record_count, a.max_timestamp) == (0, 1, 2, 6)
    assert (b.base_offset, b.last_offset) == (2, 2)
    data = log.read(0, 1 << 20)
    assert [(h.base_offset, h.leader_epoch) for h, _ in iter_batches(data)] == [(0, 3), (2, 3)]
    assert [(r.offset, r.value) for r in records(data)] == [(0, b"a"), (1, b"b"), (2, b"c")]
    assert log.read(3, 100) == b""
    assert log.epochs.entries == [(3, 0)]


def test_append_rejects_bad_batches_and_keeps_log_intact(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(max_message_bytes=500), 0)
    log.append(make_batch([b"x"]), 1, 0)
    bad = bytearray(make_batch([b"y"]))
    bad[-1] ^= 1
    with pytest.raises(CorruptBatchError):
        log.append(bytes(bad), 1, 0)
    with pytest.raises(RecordTooLargeError):
        log.append(make_batch([b"z" * 600]), 1, 0)
    with pytest.raises(StaleLeaderEpochError):
        log.append(make_batch([b"old"]), 0, 0)
    with pytest.raises(CorruptBatchError):
        log.append(make_batch([b"a"]) + make_batch([b"b"]), 1, 0)
    assert log.log_end_offset == 1
    assert [r.value for r in read_all(log)] == [b"x"]


def test_roll_on_segment_bytes_and_ms(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=1000, segment_ms=100), 0)
    fill(log, 30)
    assert len(log.segments) > 2
    assert all(s.size <= 1000 for s in log.segments)
    names = [p.name for p in segment_files(tmp_path)]
    assert names == [segment_name(s.base_offset) for s in log.segments]
    assert names[0] == "00000000000000000000.log"
    n = len(log.segments)
    log.append(make_batch([b"late"]), 0, 10_000)  # segment.ms elapsed since the active began
    assert len(log.segments) == n + 1
    assert [r.offset for r in read_all(log)] == list(range(log.log_end_offset))


def test_read_bounds_max_bytes_and_max_offset(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 30)
    one = read_header(log.read(0, 1 << 20)).length
    # at least one whole batch even if it exceeds max_bytes
    assert len(log.read(0, 1)) == one
    # a read inside a batch starts with that batch
    assert read_header(log.read(4, 1 << 20)).base_offset == 3
    # whole batches only, never more than max_bytes beyond the first
    data = log.read(0, 3 * one + 10)
    assert len(data) <= 3 * one + 10 and len(data) % one == 0
    # the high watermark bound: no batch whose last offset >= max_offset
    data = log.read(0, 1 << 20, max_offset=7)
    assert max(r.offset for r in records(data)) < 7
    assert log.read(6, 1 << 20, max_offset=7) == b""  # batch 6..8 straddles the HW
    assert log.read(log.log_end_offset, 100) == b""
    with pytest.raises(OffsetOutOfRangeError) as err:
        log.read(log.log_end_offset + 1, 100)
    assert err.value.log_end_offset == log.log_end_offset
    # every offset is readable through the index
    for off in range(log.log_end_offset):
        assert any(r.offset == off for r in records(log.read(off, 1)))


@pytest.mark.parametrize("interval", [0, 100, 10**6])
def test_read_with_sparse_or_no_index(tmp_path, interval):
    log = PartitionLog.open(tmp_path, LogConfig(index_interval_bytes=interval), 0)
    fill(log, 20)
    one = read_header(log.read(0, 1 << 20)).length
    for max_bytes in (1, one, int(1.5 * one), 2 * one + 10, 7 * one - 1, 1 << 20):
        for start in range(0, 60, 7):
            data = log.read(start, max_bytes)
            sizes = [h.length for h, _ in iter_batches(data)]  # whole batches only
            assert sum(sizes) <= max(max_bytes, sizes[0])
            assert read_header(data).base_offset == start - start % 3
            if interval == 0 and max_bytes >= 2 * one + 10 and start < 57:
                assert len(sizes) >= 2  # with a dense index or a scan, reads are not starved
    assert [r.offset for r in read_all(log, max_bytes=int(2.5 * one))] == list(range(60))


def test_offset_for_timestamp(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    for i in range(40):
        log.append(make_batch([b"a", b"b"], ts=10_000 + 10 * i), 0, 0)
    assert log.offset_for_timestamp(0) == 0
    assert log.offset_for_timestamp(10_000 + 10 * 17) == 34
    assert log.offset_for_timestamp(10_000 + 10 * 17 + 1) == 35  # second record of batch 17
    assert log.offset_for_timestamp(10_000 + 10 * 17 + 2) == 36
    assert log.offset_for_timestamp(10**12) is None


def test_truncate_to(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 20, epoch=1)
    log.append(make_batch([b"e2"]), 2, 0)
    fill(log, 10, epoch=2)
    leo = log.log_end_offset
    log.flush()
    log.truncate_to(31)  # inside batch 30..32: cut at its start
    assert log.log_end_offset == 30
    assert log.recovery_point == 30
    assert [r.offset for r in read_all(log)] == list(range(30))
    assert log.epochs.entries == [(1, 0)]
    assert len(segment_files(tmp_path)) == len(log.segments)
    log.truncate_to(leo)  # no-op
    fill(log, 2, epoch=3)
    assert [r.offset for r in read_all(log)] == list(range(36))
    log.close()
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert log.log_end_offset == 36 and log.epochs.entries == [(1, 0), (3, 30)]


def test_truncate_fully_and_start_at(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 10)
    log.truncate_fully_and_start_at(500)
    assert (log.log_start_offset, log.log_end_offset) == (500, 500)
    assert log.append(make_batch([b"x"]), 4, 0).base_offset == 500
    log.close()
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert (log.log_start_offset, log.log_end_offset) == (500, 501)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)


def test_append_replicated(tmp_path):
    leader = PartitionLog.open(tmp_path / "leader", SMALL, 0)
    fill(leader, 6, epoch=1)
    fill(leader, 4, epoch=2)
    follower = PartitionLog.open(tmp_path / "follower", SMALL, 0)
    while follower.log_end_offset < leader.log_end_offset:
        data = leader.read(follower.log_end_offset, 100)
        assert follower.append_replicated(data, 0) == follower.log_end_offset
    assert read_all(follower) == read_all(leader)
    assert follower.epochs.entries == leader.epochs.entries == [(1, 0), (2, 18)]
    with pytest.raises(UnexpectedOffsetError):
        follower.append_replicated(leader.read(0, 100), 0)
    bad = bytearray(leader.read(0, 100))
    bad[-1] ^= 0x40
    follower.truncate_to(0)
    with pytest.raises(CorruptBatchError):
        follower.append_replicated(bytes(bad), 0)
    assert follower.log_end_offset == 0


def test_clean_restart_uses_indexes(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 40)
    before = read_all(log)
    log.close()
    assert (tmp_path / "clean-shutdown").exists()
    with pytest.raises(LogFailedError):
        log.read(0, 10)
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert not (tmp_path / "clean-shutdown").exists()
    assert read_all(log) == before and log.recovery_point == log.log_end_offset


@pytest.mark.parametrize("victim", ["index", "timeindex", "both"])
def test_missing_or_corrupt_indexes_are_rebuilt(tmp_path, victim):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 40)
    before = read_all(log)
    positions = [list(s.positions) for s in log.segments]
    log.close()
    for p in tmp_path.iterdir():
        if victim in ("index", "both") and p.suffix == ".index":
            p.unlink()
        if victim in ("timeindex", "both") and p.suffix == ".timeindex":
            p.write_bytes(p.read_bytes()[:-3] + b"xyz")
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert read_all(log) == before
    assert [list(s.positions) for s in log.segments] == positions
    assert log.offset_for_timestamp(1_000 + 30) == 30


def test_unclean_stop_with_torn_tail_at_every_byte(tmp_path):
    src = tmp_path / "src"
    log = PartitionLog.open(src, LogConfig(), 0)
    fill(log, 3)
    log.abandon()
    data = (src / segment_name(0)).read_bytes()
    sizes = [0]
    for h, _ in iter_batches(data):
        sizes.append(sizes[-1] + h.length)
    for cut in range(len(data) + 1):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / segment_name(0)).write_bytes(data[:cut])
        log = PartitionLog.open(d, LogConfig(), 0, fs=NoSyncFS())
        whole = max(s for s in sizes if s <= cut)
        assert log.active_segment.size == whole
        assert log.log_end_offset == 3 * sizes.index(whole)
        assert (d / segment_name(0)).stat().st_size == whole
        log.close()


def test_unclean_stop_with_flipped_bit_truncates_there(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 30)
    log.abandon()
    seg = segment_files(tmp_path)[1]
    base = int(seg.stem)
    raw = bytearray(seg.read_bytes())
    second = read_header(raw).length
    raw[second + 60] ^= 0x08  # inside the digest-covered part of the 2nd batch
    seg.write_bytes(raw)
    (tmp_path / "recovery-point.checkpoint").unlink(missing_ok=True)  # a new log may have none yet
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert log.log_end_offset == base + 3
    assert isinstance(log.recovered_from, CorruptBatchError)
    assert [r.offset for r in read_all(log)] == list(range(base + 3))
    assert len(segment_files(tmp_path)) == len(log.segments)


def test_damaged_last_batch_of_a_sealed_segment_is_damage_not_a_torn_tail(tmp_path):
    """Found by the replication simulator: a bad batch at the end of a segment that later
    segments follow is not the torn end of a write (the log rolled after it was written).
    Recovery used to call it a torn tail and silently delete the later segments' records."""
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 30)  # several segments, all above the recovery point (0)
    log.abandon()  # a kill -9: the page cache (every byte written) survives
    first = segment_files(tmp_path)[0]
    raw = bytearray(first.read_bytes())
    sizes = [h.length for h, _ in iter_batches(bytes(raw))]
    raw[sum(sizes[:-1]) + 60] ^= 0x08  # inside the digest-covered part of its last batch
    first.write_bytes(raw)
    log = PartitionLog.open(tmp_path, SMALL, 0)
    cut = 3 * (len(sizes) - 1)
    assert log.log_end_offset == cut
    assert log.recovery.torn_tail is None and log.recovery.damage.offset == cut


def test_torn_tail_of_the_last_segment_is_still_a_torn_tail(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 30)
    log.abandon()
    last = segment_files(tmp_path)[-1]
    last.write_bytes(last.read_bytes()[:-5])
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert log.log_end_offset == 87
    assert log.recovery.damage is None and log.recovery.torn_tail is not None


def test_flipped_base_offset_is_caught_by_contiguity(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    fill(log, 5)
    log.abandon()
    seg = tmp_path / segment_name(0)
    raw = bytearray(seg.read_bytes())
    third = 2 * read_header(raw).length
    raw[third + 7] ^= 0x01  # base_offset is not under the digest
    seg.write_bytes(raw)
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    assert log.log_end_offset == 6


@pytest.mark.parametrize("bit", [0, 3])
def test_flipped_leader_epoch_is_caught_by_the_epoch_cache(tmp_path, bit):
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    fill(log, 2, epoch=4)
    fill(log, 2, epoch=6)
    log.abandon()
    seg = tmp_path / segment_name(0)
    raw = bytearray(seg.read_bytes())
    last = 3 * read_header(raw).length
    raw[last + 15] ^= 1 << bit  # leader_epoch (bytes 12-15) is not under the digest
    seg.write_bytes(raw)
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    assert log.log_end_offset == 9
    assert log.epochs.entries == [(4, 0), (6, 6)]


def test_recovery_trusts_segments_below_the_recovery_point(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 40)
    log.flush()
    log.maybe_flush(10**9)  # writes the recovery-point checkpoint
    fill(log, 2)
    log.abandon()
    first = segment_files(tmp_path)[0]
    raw = bytearray(first.read_bytes())
    raw[-1] ^= 1  # corruption below the recovery point: not rescanned (like Kafka)
    first.write_bytes(raw)
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert log.log_end_offset == 126 and log.recovered_from is None


def test_group_commit_flush_and_recovery_point(tmp_path):
    fs = FaultyFS()
    log = PartitionLog.open(tmp_path, LogConfig(flush_mode="group-commit"), 0, fs=fs)
    log.append(make_batch([b"x"]), 0, 0)  # a new epoch is checkpointed (fsynced) at once
    start = fs.fsyncs
    for i in range(9):
        log.append(make_batch([b"x"]), 0, i)
    assert fs.fsyncs == start and log.recovery_point == 0 and log.unflushed
    assert log.maybe_flush(10**6) is False  # group-commit: only the owner's flush() syncs
    assert log.flush() == 10 and log.recovery_point == 10
    assert fs.fsyncs > start and not log.unflushed


def test_interval_flush(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(flush_ms=1000), 0)
    assert log.maybe_flush(5_000) is False  # nothing to flush
    log.append(make_batch([b"x"]), 0, 10_000)
    log.append(make_batch([b"y"]), 0, 10_500)
    assert log.maybe_flush(10_999) is False and log.recovery_point == 0
    assert log.maybe_flush(11_000) is True and log.recovery_point == 2


def test_failed_fsync_fails_the_log(tmp_path):
    fs = FaultyFS()
    log = PartitionLog.open(tmp_path, LogConfig(), 0, fs=fs)
    log.append(make_batch([b"x"]), 0, 0)
    fs.fail_fsync = True
    with pytest.raises(LogFailedError) as err:
        log.flush()
    assert isinstance(err.value.cause, OSError)
    fs.fail_fsync = False  # even if the disk "recovers", the log does not pretend
    for call in (
        lambda: log.flush(),
        lambda: log.append(make_batch([b"y"]), 0, 0),
        lambda: log.read(0, 100),
        lambda: log.close(),
    ):
        with pytest.raises(LogFailedError):
            call()
    assert log.recovery_point == 0
    reopened = PartitionLog.open(tmp_path, LogConfig(), 0)
    assert [r.value for r in read_all(reopened)] == [b"x"]


def test_config_from_topic_config():
    cfg = LogConfig.from_topic_config(
        {"segment.bytes": "1024", "cleanup.policy": "compact, delete", "min.insync.replicas": "2"}
    )
    assert cfg.segment_bytes == 1024 and cfg.cleanup_policy == "compact,delete"
    assert cfg.compact and cfg.delete
    assert LogConfig().retention_ms == 7 * 24 * 3600 * 1000 and LogConfig().retention_bytes == -1
    with pytest.raises(ValueError, match="retention.ms"):
        LogConfig.from_topic_config({"retention.ms": "soon"})
    with pytest.raises(ValueError, match="cleanup.policy"):
        LogConfig.from_topic_config({"cleanup.policy": "shred"})


def test_stale_temp_files_are_removed_on_open(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    fill(log, 2)
    log.close()
    (tmp_path / "recovery-point.checkpoint.tmp").write_bytes(b"half")
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert log.log_end_offset == 6
    assert os.path.exists(tmp_path / "leader-epoch.checkpoint")


def test_batch_headers(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 30)
    assert [h.base_offset for h in log.batch_headers()] == list(range(0, 90, 3))
    assert [h.base_offset for h in log.batch_headers(40)] == list(range(39, 90, 3))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.binary(max_size=400), data=st.data())
def test_hostile_appends_raise_typed_errors_and_lose_nothing(tmp_path_factory, junk, data):
    log = PartitionLog.open(tmp_path_factory.mktemp("h"), LogConfig(), 0, fs=NoSyncFS())
    log.append(make_batch([b"keep"]), 0, 0)
    valid = bytearray(make_batch([b"a", None], key=b"k"))
    pos = data.draw(st.integers(0, len(valid) - 1))
    valid[pos] ^= 1 << data.draw(st.integers(0, 7))
    for candidate in (junk, bytes(valid), bytes(valid[: data.draw(st.integers(0, len(valid)))])):
        try:
            log.append(candidate, 0, 0)
        except LogStoreError:
            pass
        try:
            log.append_replicated(candidate, 0)
        except LogStoreError:
            pass
    recs = read_all(log)
    assert recs[0].value == b"keep"
    # only a flip in the stamped fields (not under the digest) can still be accepted
    assert all(r.value in (b"keep", b"a", None) for r in recs)
    log.abandon()


def test_corrupt_recovery_point_checkpoint_means_full_revalidation(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 40)
    log.flush()
    log.maybe_flush(10**9)
    log.abandon()
    first = segment_files(tmp_path)[0]
    raw = bytearray(first.read_bytes())
    raw[-1] ^= 1
    first.write_bytes(raw)
    ckpt = tmp_path / "recovery-point.checkpoint"
    ckpt.write_bytes(ckpt.read_bytes()[:-1] + b"\x00")  # digest no longer matches
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert log.recovered_from is not None
    assert log.log_end_offset == log.segments[-1].next_offset < 120
    assert len(segment_files(tmp_path)) == 1
