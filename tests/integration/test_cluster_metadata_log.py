"""The __cluster_metadata RaftLog on a real PartitionLog (in process): entries, terms and
control flags survive a reopen; truncation, compaction and reset behave like MemoryRaftLog."""

from __future__ import annotations

import pytest
from rillet.actors.metadata_log import PartitionRaftLog
from rillet.coordinator.raft import LogEntry, MemoryRaftLog, Snapshot

pytestmark = pytest.mark.timeout(30)


def same(log, ref) -> None:
    assert (log.snapshot_index, log.snapshot_term, log.last_index, log.last_term) == (
        ref.snapshot_index, ref.snapshot_term, ref.last_index, ref.last_term)
    if ref.last_index > ref.snapshot_index:
        assert log.entries(ref.snapshot_index + 1, ref.last_index + 1) == ref.entries(
            ref.snapshot_index + 1, ref.last_index + 1)
    assert log.snapshot() == ref.snapshot()


def test_partition_raft_log_matches_the_memory_log_across_reopens(tmp_path) -> None:
    d = tmp_path / "__cluster_metadata"
    log, ref = PartitionRaftLog(d), MemoryRaftLog()
    entries = [LogEntry(1, b"", control=True), LogEntry(1, b"a"), LogEntry(2, b"", True),
               LogEntry(2, b"b"), LogEntry(2, b"c"), LogEntry(3, b"d")]
    for x in (log, ref):
        x.append(entries)
        x.flush()
    same(log, ref)
    log.close()
    log = PartitionRaftLog(d)
    same(log, ref)
    for x in (log, ref):
        x.truncate_from(5)
        x.append([LogEntry(4, b"e")])
        x.flush()
    same(log, ref)
    log.close()
    log = PartitionRaftLog(d)
    same(log, ref)
    assert log.term_at(5) == 4 and log.entry(2).payload == b"a" and log.entry(3).control
    # compaction with a suffix keeps the suffix; without one the prefix goes
    for x in (log, ref):
        x.compact(Snapshot(3, 2, b"image-3"))
        x.flush()
    same(log, ref)
    log.close()
    log = PartitionRaftLog(d)
    same(log, ref)
    for x in (log, ref):
        x.compact(Snapshot(5, 4, b"image-5"))
        x.append([LogEntry(5, b"f")])
        x.flush()
    same(log, ref)
    log.close()
    log = PartitionRaftLog(d)
    same(log, ref)
    for x in (log, ref):
        x.reset(Snapshot(9, 6, b"image-9"))
        x.flush()
    log.close()
    log = PartitionRaftLog(d)
    same(log, ref)
    assert log.term_at(9) == 6 and log.last_index == 9
    log.save_hard_state(6, 2)
    log.close()
    hard = PartitionRaftLog(d).load_hard_state()
    assert (hard.term, hard.voted_for) == (6, 2)


def test_snapshots_with_a_suffix_keep_the_metadata_log_bounded_on_disk(tmp_path) -> None:
    d = tmp_path / "__cluster_metadata"
    log, ref = PartitionRaftLog(d), MemoryRaftLog()

    def on_disk() -> int:
        return sum(p.stat().st_size for p in d.glob("*.log"))

    index, per_round = 0, 0
    for round_ in range(1, 9):
        batch = [LogEntry(round_, b"x" * 200) for _ in range(50)]
        for x in (log, ref):
            x.append(batch)
            x.flush()
        index += len(batch)
        per_round = per_round or on_disk()
        snap = Snapshot(index - 10, round_, f"image-{round_}".encode())  # 10 entries follow
        for x in (log, ref):
            x.compact(snap)
        same(log, ref)
    # 8 rounds were written; only about the last two snapshot intervals stay on disk
    assert on_disk() <= 2.5 * per_round
    log.close()
    log = PartitionRaftLog(d)
    same(log, ref)
    assert log.entry(log.last_index).payload == b"x" * 200
