"""The aborted-transaction index on disk: written, sealed, deleted with its segment,
truncated, rebuilt on open when missing; followers build the same (txn_index.py)."""

from __future__ import annotations

import pytest
from rillet.logstore import producer_state as PS
from rillet.logstore import transactions as T
from rillet.logstore.config import LogConfig
from rillet.logstore.log import PartitionLog
from rillet.logstore.txn_index import TXN_INDEX_SUFFIX, AbortedTxn, decode
from rillet.logstore.txn_markers import ControlType, EndTxnMarker
from rillet.logstore.validator import append_validated

from .txn_helpers import NOW, plain_batch, read_committed, txn_batch

CONFIG = LogConfig(segment_bytes=600, retention_ms=-1)


def yes(pid, epoch):
    return True


def open_log(d):
    return PartitionLog.open(d, CONFIG, NOW)


def fill(log, ps):
    """Three aborted and two committed transactions over several segments."""
    epochs = {}  # KIP-890 part 2: each marker bumps the epoch, the next transaction uses it
    for round_ in range(5):
        pid = 10 + round_ % 2
        epoch = epochs.get(pid, 0)
        for seq in range(2):
            batch = txn_batch(pid, seq, [b"v" * 80], epoch=epoch)
            assert append_validated(log, ps, batch, 0, NOW, yes).error == "NONE"
        append_validated(log, ps, plain_batch([b"p" * 80]), 0, NOW)
        ctype = ControlType.ABORT if round_ % 2 == 0 else ControlType.COMMIT
        marker = EndTxnMarker(pid, epoch + 1, ctype, 0)
        assert T.append_marker(log, ps, marker, 0, NOW).error == "NONE"
        epochs[pid] = epoch + 1


def index_files(d):
    return sorted(p.name for p in d.iterdir() if p.name.endswith(TXN_INDEX_SUFFIX))


def test_files_are_written_on_abort_and_at_roll_and_read_back(tmp_path) -> None:
    d = tmp_path / "t-0"
    log = open_log(d)
    ps = PS.ProducerStateManager()
    fill(log, ps)
    assert len(log.segments) >= 3
    live = log.txn_index.all()
    assert [t.producer_id for t in live] == [10, 10, 10] and len(live) == 3
    # every sealed segment has a file; each file holds what memory holds
    sealed = {f"{s.base_offset:020d}{TXN_INDEX_SUFFIX}" for s in log.segments[:-1]}
    assert sealed <= set(index_files(d))
    on_disk = []
    for name in index_files(d):
        on_disk.extend(decode((d / name).read_bytes()))
    assert sorted(on_disk, key=lambda t: t.last_offset) == live
    log.close()
    again = open_log(d)
    assert again.txn_index.missing == set() and again.txn_index.all() == live
    assert T.load_transaction_state(again).snapshot() == ps.snapshot()
    again.close()


@pytest.mark.parametrize("how", ["deleted", "corrupt", "unclean"])
def test_a_missing_index_is_rebuilt_from_the_log(tmp_path, how) -> None:
    d = tmp_path / "t-0"
    log = open_log(d)
    ps = PS.ProducerStateManager()
    fill(log, ps)
    live = log.txn_index.all()
    hw = log.log_end_offset
    ps.on_high_watermark_updated(hw)
    expected = read_committed(log, ps, hw)
    if how == "unclean":
        log.abandon()  # a crash: nothing closed cleanly, active segment revalidated
    else:
        log.close()
        victim = d / index_files(d)[0]
        if how == "deleted":
            victim.unlink()
        else:
            victim.write_bytes(b"\x00\x01garbage")
    again = open_log(d)
    assert again.txn_index.missing
    state = T.load_transaction_state(again)
    assert again.txn_index.missing == set()
    assert again.txn_index.all() == live
    assert state.snapshot() == ps.snapshot()
    state.on_high_watermark_updated(hw)
    assert read_committed(again, state, hw) == expected
    again.close()
    assert open_log(d).txn_index.all() == live  # and the rebuilt files were written


def test_rebuild_starts_at_a_snapshot_when_one_is_early_enough(tmp_path) -> None:
    d = tmp_path / "t-0"
    log = open_log(d)
    ps = PS.ProducerStateManager()
    fill(log, ps)
    live = log.txn_index.all()
    snaps = {ps.map_end_offset: ps.snapshot()}  # a snapshot at the log end
    log.close()
    (d / index_files(d)[-1]).unlink()  # the active segment's file
    again = open_log(d)
    assert T.load_transaction_state(again, snaps).snapshot() == ps.snapshot()
    assert again.txn_index.all() == live


def test_index_files_go_with_their_segments(tmp_path) -> None:
    d = tmp_path / "t-0"
    log = open_log(d)
    ps = PS.ProducerStateManager()
    fill(log, ps)
    first = log.segments[0].base_offset
    second = log.segments[1].base_offset
    assert f"{first:020d}{TXN_INDEX_SUFFIX}" in index_files(d)
    log.delete_records_before(second, NOW)
    assert f"{first:020d}{TXN_INDEX_SUFFIX}" not in index_files(d)
    assert first not in log.txn_index.entries
    assert all(t.last_offset >= second for t in log.txn_index.all())
    # truncation below the last abort marker forgets it, in memory and on disk
    last = log.txn_index.all()[-1]
    log.truncate_to(last.last_offset)
    assert last not in log.txn_index.all()
    log.close()
    assert last not in open_log(d).txn_index.all()


def test_a_follower_builds_the_same_state_and_index(tmp_path) -> None:
    leader = open_log(tmp_path / "leader")
    ps = PS.ProducerStateManager()
    fill(leader, ps)
    follower = open_log(tmp_path / "follower")
    fps = PS.ProducerStateManager()
    offset = 0
    while offset < leader.log_end_offset:
        data = leader.read(offset, 1000)
        follower.append_replicated(data, NOW)
        T.apply_replicated(follower, fps, data)
        offset = follower.log_end_offset
    assert fps.snapshot() == ps.snapshot()
    assert follower.txn_index.all() == leader.txn_index.all()
    assert follower.txn_index.aborted_transactions(0, offset) == [
        AbortedTxn(t.producer_id, t.first_offset, t.last_offset, t.last_stable_offset)
        for t in leader.txn_index.all()
    ]


def test_recovery_forgets_an_abort_whose_marker_a_crash_cut_off(tmp_path) -> None:
    d = tmp_path / "t-0"
    log = open_log(d)
    ps = PS.ProducerStateManager()
    append_validated(log, ps, txn_batch(5, 0, [b"x"]), 0, NOW, yes)
    r = T.append_marker(log, ps, EndTxnMarker(5, 1, ControlType.ABORT, 0), 0, NOW)
    assert log.txn_index.all() == [AbortedTxn(5, 0, r.offset, r.offset + 1)]
    active = log.segments[-1]
    marker_position = active.find(r.offset)[0]
    log.abandon()
    # the crash lost the marker's bytes (never fsynced) but the index file survived
    seg_file = d / f"{active.base_offset:020d}.log"
    with open(seg_file, "r+b") as f:
        f.truncate(marker_position + 10)
    again = open_log(d)
    assert again.log_end_offset == r.offset
    state = T.load_transaction_state(again)
    assert again.txn_index.all() == []
    assert state.ongoing_transactions() == {5: 0}  # the transaction is open again
    assert T.last_stable_offset(state, again.log_end_offset) == 0
