"""Producer-state snapshot files (logstore/producer_snapshots.py)."""

from __future__ import annotations

from pathlib import Path

from rillet.logstore.batch import BatchBuilder, iter_batches
from rillet.logstore.fs import FileSystem
from rillet.logstore.log import LogConfig, PartitionLog
from rillet.logstore.memfs import MemFileSystem
from rillet.logstore.producer_snapshots import SNAPSHOTS_KEPT, ProducerSnapshots
from rillet.logstore.producer_state import ProducerStateManager, rebuild_from_log
from rillet.logstore.validator import append_validated


def _state(end: int, producers: int = 1) -> ProducerStateManager:
    s = ProducerStateManager(0)
    for pid in range(producers):
        s.update(pid, 0, 0, 0, pid, pid, 1000)
    s.map_end_offset = end
    return s


def test_written_only_when_it_covers_the_log_and_is_new(tmp_path) -> None:
    snaps = ProducerSnapshots(FileSystem(), tmp_path)
    assert not snaps.write(_state(5), log_end_offset=6)  # behind the log: not valid there
    assert not snaps.write(_state(5, producers=0), log_end_offset=5)  # nothing to keep
    assert snaps.write(_state(5), log_end_offset=5)
    assert not snaps.pending(_state(5)) and snaps.pending(_state(6))
    assert not snaps.write(_state(5), log_end_offset=5)  # the same offset again
    assert sorted(snaps.read()) == [5]


def test_the_newest_are_kept_and_truncation_drops_those_above(tmp_path) -> None:
    snaps = ProducerSnapshots(FileSystem(), tmp_path)
    for end in range(10, 10 + SNAPSHOTS_KEPT + 2):
        snaps.write(_state(end), log_end_offset=end)
    kept = sorted(snaps.files())
    assert kept == list(range(10 + 2, 10 + SNAPSHOTS_KEPT + 2))
    assert sorted(snaps.read(max_offset=kept[1])) == kept[:2]
    snaps.delete_above(kept[0])
    assert sorted(snaps.files()) == kept[:1]
    # a stray file that is not a snapshot is left alone
    (tmp_path / "notes.snapshot").write_text("x")
    assert sorted(snaps.files()) == kept[:1]


def test_open_drops_snapshots_above_a_log_that_recovery_cut() -> None:
    """Found by the replication simulator: recovery cut the log below a snapshot, the file
    stayed, and once the log had grown past its offset again with other records, a rebuild
    loaded it: producer state of records that no longer exist (wrong duplicate checks)."""
    fs, d = MemFileSystem(), Path("/mem/t-0")

    def produce(log, state, epoch, seq):
        b = BatchBuilder(producer_id=7, producer_epoch=epoch, base_sequence=seq)
        b.append(0, None, b"v")
        assert append_validated(log, state, b.build(), 0, 0).error == "NONE"

    log = PartitionLog.open(d, LogConfig(), 0, fs=fs)
    snaps, state = ProducerSnapshots(fs, d), ProducerStateManager()
    for seq in range(4):
        produce(log, state, 0, seq)
    assert snaps.write(state, log.log_end_offset)  # a snapshot at 4
    log.abandon()  # the process dies; batch 2 rots meanwhile
    seg = d / "00000000000000000000.log"
    sizes = [h.length for h, _ in iter_batches(fs.read_bytes(seg))]
    fs.flip(seg, sum(sizes[:2]) + 60)  # inside the digest-covered part of batch 2
    log = PartitionLog.open(d, LogConfig(), 0, fs=fs)
    assert log.log_end_offset == 2 and log.recovery.damage is not None
    snaps = ProducerSnapshots(fs, d)
    state = snaps.recover_state(log)
    assert sorted(snaps.files()) == []  # the snapshot at 4 described records now gone
    for seq in range(2):  # the log grows past 4 again, a new producer epoch
        produce(log, state, 1, seq)
    produce(log, state, 1, 2)
    rebuilt = rebuild_from_log(log, snaps.read())
    assert rebuilt.entry(7).producer_epoch == state.entry(7).producer_epoch == 1
    assert rebuilt.entry(7).last_seq == state.entry(7).last_seq == 2
