"""Producer-state snapshot files (logstore/producer_snapshots.py)."""

from __future__ import annotations

from rillet.logstore.fs import FileSystem
from rillet.logstore.producer_snapshots import SNAPSHOTS_KEPT, ProducerSnapshots
from rillet.logstore.producer_state import ProducerStateManager


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
