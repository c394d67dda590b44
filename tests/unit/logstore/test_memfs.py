"""MemFileSystem: the in-memory FileSystem seam with page-cache crash semantics, and the
real PartitionLog (append, flush, recovery, verification) running on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from rillet.logstore.batch import iter_batches
from rillet.logstore.errors import CorruptBatchError, DamagedLogError
from rillet.logstore.fs import FileSystem
from rillet.logstore.log import LogConfig, PartitionLog
from rillet.logstore.memfs import MemFileSystem
from rillet.logstore.segment import segment_name

from .helpers import make_batch, read_all

D = Path("/mem/t-0")
SMALL = LogConfig(segment_bytes=1500, index_interval_bytes=200)


def fill(log, n_batches, per_batch=3, epoch=0):
    for i in range(n_batches):
        vals = [b"v%d" % (log.log_end_offset + j) for j in range(per_batch)]
        log.append(make_batch(vals, ts=1_000 + log.log_end_offset), epoch, i)


def values(log):
    return [r.value for r in read_all(log)]


def test_files_directories_and_checkpoints():
    fs = MemFileSystem()
    with pytest.raises(FileNotFoundError):
        fs.listdir(D)
    fs.makedirs(D)
    assert fs.listdir(D) == [] and fs.exists(D) and fs.exists(D.parent)
    f = fs.open_segment(D / "a.log")
    f.write_at(0, b"hello")
    f.write_parts_at(5, [b" ", memoryview(b"world")])
    assert f.read_at(0, 100) == b"hello world" and f.size() == 11
    f.truncate(5)
    assert fs.read_bytes(D / "a.log") == b"hello"
    fs.write_checkpoint(D / "x.checkpoint", {"a": 1})
    assert fs.read_checkpoint(D / "x.checkpoint") == {"a": 1}
    assert fs.listdir(D) == ["a.log", "x.checkpoint"]
    fs.rename(D / "a.log", D / "b.log")
    fs.remove(D / "x.checkpoint")
    fs.remove(D / "missing")  # like the real one: removing nothing is fine
    assert fs.listdir(D) == ["b.log"] and fs.read_bytes(D / "a.log") is None
    with pytest.raises(FileNotFoundError):
        fs.open_segment(Path("/elsewhere/c.log"))


def test_crash_keeps_only_what_was_fsynced():
    fs = MemFileSystem()
    fs.makedirs(D)
    f = fs.open_segment(D / "a.log")
    f.write_at(0, b"durable")
    f.fsync()
    fs.fsync_dir(D)
    f.write_at(7, b"-pending")
    g = fs.open_segment(D / "new.log")  # its directory entry was never fsynced
    g.write_at(0, b"x")
    g.fsync()
    fs.crash()
    assert fs.listdir(D) == ["a.log"] and fs.read_bytes(D / "a.log") == b"durable"
    with pytest.raises(OSError):
        f.write_at(0, b"after the crash")  # the old process's handles are gone
    f.close()


def test_crash_can_tear_the_unsynced_tail():
    fs = MemFileSystem()
    fs.makedirs(D)
    f = fs.open_segment(D / "a.log")
    f.write_at(0, b"abc")
    f.fsync()
    fs.fsync_dir(D)
    f.write_at(3, b"defgh")
    assert fs.unsynced_bytes(D / "a.log") == 5
    seen = []
    fs.crash(lambda path, pending: seen.append((path, pending)) or 2)
    assert seen == [(str(D / "a.log"), 5)] and fs.read_bytes(D / "a.log") == b"abcde"


def test_flip_changes_the_durable_bytes_too():
    fs = MemFileSystem()
    fs.makedirs(D)
    f = fs.open_segment(D / "a.log")
    f.write_at(0, b"\x00\x00")
    f.fsync()
    fs.fsync_dir(D)
    fs.flip(D / "a.log", 1, 0x80)
    fs.crash()
    assert fs.read_bytes(D / "a.log") == b"\x00\x80"


def test_log_crash_keeps_flushed_batches_and_recovers():
    fs = MemFileSystem()
    log = PartitionLog.open(D, SMALL, 0, fs=fs)
    fill(log, 30)  # several segments
    assert log.flush() == 90
    flushed = values(log)
    fill(log, 5)
    fs.crash()
    log = PartitionLog.open(D, SMALL, 0, fs=fs)
    assert log.log_end_offset == 90 and values(log) == flushed
    assert log.epochs.entries == [(0, 0)]
    fill(log, 1)  # and it goes on from there
    assert log.log_end_offset == 93


def test_log_crash_cuts_a_torn_tail_at_a_batch_boundary():
    fs = MemFileSystem()
    log = PartitionLog.open(D, LogConfig(), 0, fs=fs)
    fill(log, 2)
    log.flush()
    fill(log, 2)
    path = D / segment_name(0)
    sizes = [h.length for h, _ in iter_batches(fs.read_bytes(path))]
    pending = fs.unsynced_bytes(path)
    assert pending == sizes[2] + sizes[3]
    # one whole unsynced batch and part of the next reach the disk
    fs.crash(lambda _path, _n: sizes[2] + sizes[3] // 2)
    log = PartitionLog.open(D, LogConfig(), 0, fs=fs)
    assert log.log_end_offset == 9 and isinstance(log.recovered_from, CorruptBatchError)
    assert fs.size(path) == sum(sizes[:3])  # recovery cut the torn batch off the file


def test_log_crash_finds_a_flipped_unflushed_batch():
    """A flipped byte above the recovery point: recovery re-validates and truncates there."""
    fs = MemFileSystem()
    log = PartitionLog.open(D, LogConfig(), 0, fs=fs)
    fill(log, 2)
    log.flush()
    log.maybe_flush(10**9)  # recovery-point checkpoint at 6
    fill(log, 3)
    log.flush()  # durable, but the checkpoint still says 6
    path = D / segment_name(0)
    first = [h.length for h, _ in iter_batches(fs.read_bytes(path))][0]
    fs.flip(path, 3 * first + 60)
    fs.crash()
    log = PartitionLog.open(D, LogConfig(), 0, fs=fs)
    assert log.log_end_offset == 9 and isinstance(log.recovered_from, CorruptBatchError)


def test_flip_below_the_recovery_point_is_found_on_read_and_by_scrub():
    fs = MemFileSystem()
    log = PartitionLog.open(D, LogConfig(), 0, fs=fs)
    fill(log, 4)
    log.close()  # clean shutdown: the next open trusts everything
    path = D / segment_name(0)
    first = [h.length for h, _ in iter_batches(fs.read_bytes(path))][0]
    fs.flip(path, 2 * first + 60)
    log = PartitionLog.open(D, LogConfig(), 0, fs=fs)
    assert log.log_end_offset == 12 and log.damage is None
    assert log.scrub(1 << 20).damage.offset == 6
    with pytest.raises(DamagedLogError):
        log.read(6, 1 << 20)
    good = log.read(0, 1 << 20)  # the good batches before it are still served
    assert [h.next_offset for h, _ in iter_batches(good)] == [3, 6]


def test_same_behaviour_as_the_real_filesystem(tmp_path):
    """The same operations on real files and in memory leave the same logs and files."""
    mem = MemFileSystem()
    logs = {
        "real": PartitionLog.open(tmp_path, SMALL, 0, fs=FileSystem()),
        "mem": PartitionLog.open(D, SMALL, 0, fs=mem),
    }
    for log in logs.values():
        fill(log, 20, epoch=1)
        fill(log, 5, epoch=3)
        log.truncate_to(50)
        fill(log, 4, epoch=4)
        log.flush()
        log.delete_records_before(10, 5)
        log.close()
    real = PartitionLog.open(tmp_path, SMALL, 0)
    memlog = PartitionLog.open(D, SMALL, 0, fs=mem)
    assert values(real) == values(memlog) and len(values(real)) > 0
    assert real.epochs.entries == memlog.epochs.entries
    assert (real.log_start_offset, real.log_end_offset) == (
        memlog.log_start_offset,
        memlog.log_end_offset,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == mem.listdir(D)
    for name in mem.listdir(D):
        if name.endswith(".log"):
            assert (tmp_path / name).read_bytes() == mem.read_bytes(D / name)


def test_a_periodic_checkpoint_is_not_fsynced_and_a_crash_after_it_loses_no_record():
    """maybe_flush's minute checkpoint skips fsyncs (issue #12). A crash then leaves the old
    checkpoint, or a torn one once a later directory fsync made the rename durable; either
    way recovery revalidates more and every flushed record is still there."""
    for torn in (False, True):
        fs = MemFileSystem()
        fs.makedirs(D)
        log = PartitionLog.open(D, SMALL, 0, fs=fs)
        fill(log, 3)
        log.flush()
        log.maybe_flush(61_000)  # the minute checkpoint: written, not fsynced
        assert fs.read_checkpoint(D / "recovery-point.checkpoint") == 9
        fill(log, 8)  # rolls segments: their creation fsyncs the directory on flush
        log.flush()
        if torn:
            fs.fsync_dir(D)  # the new file's entry is durable, its content never was
        fs.crash()
        assert fs.read_checkpoint(D / "recovery-point.checkpoint") is None  # never fsynced
        again = PartitionLog.open(D, SMALL, 100_000, fs=fs)
        assert values(again) == [b"v%d" % i for i in range(33)]


def test_a_new_epoch_is_made_durable_by_the_next_flush_not_by_the_append():
    # the first append of each epoch no longer fsyncs the epoch checkpoint (thousands of
    # fsyncs when a broker takes over many partitions); the log's next flush makes it durable
    fs = MemFileSystem()
    log = PartitionLog.open(D, SMALL, 0, fs=fs)
    fill(log, 2, epoch=1)
    log.close()
    log = PartitionLog.open(D, SMALL, 0, fs=fs)  # the checkpoint now durably says epoch 1
    fill(log, 2, epoch=2)
    log.flush()
    fs.crash()  # power loss after the flush: epoch 2 survives with its batches
    log = PartitionLog.open(D, SMALL, 0, fs=fs)
    assert log.log_end_offset == 12 and log.epochs.entries == [(1, 0), (2, 6)]
    fill(log, 2, epoch=3)  # not flushed: after a power loss neither batches nor epoch remain
    fs.crash()
    log = PartitionLog.open(D, SMALL, 0, fs=fs)
    assert log.log_end_offset == 12 and log.epochs.entries == [(1, 0), (2, 6)]
    assert log.recovered_from is None
