"""Transactions on the partition side: markers, open transactions, LSO, KIP-890 verification
(logstore/transactions.py, producer_state.py, txn_markers.py, validator.py)."""

from __future__ import annotations

import struct

import pytest
from rillet.logstore import producer_state as PS
from rillet.logstore import transactions as T
from rillet.logstore.batch import read_header
from rillet.logstore.config import LogConfig
from rillet.logstore.errors import CorruptBatchError
from rillet.logstore.log import PartitionLog
from rillet.logstore.txn_markers import (
    ControlType,
    EndTxnMarker,
    build_marker_batch,
    parse_marker,
)
from rillet.logstore.validator import append_validated

from .txn_helpers import NOW, plain_batch, read_committed, read_uncommitted_values, txn_batch

ABORT, COMMIT = ControlType.ABORT, ControlType.COMMIT


def yes(pid, epoch):
    return True


@pytest.fixture
def log(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), NOW)
    yield log
    if not log._closed:
        log.close()


def produce(log, ps, *batches, verified=yes):
    r = append_validated(log, ps, b"".join(batches), 0, NOW, verified)
    return r


def marker(log, ps, pid, ctype, *, epoch=None, coordinator_epoch=0):
    """Append a marker; by default with the bumped epoch the coordinator sends (KIP-890
    part 2: the producer's current epoch here + 1)."""
    if epoch is None:
        entry = ps.entry(pid)
        epoch = entry.producer_epoch + 1 if entry is not None else 0
    return T.append_marker(log, ps, EndTxnMarker(pid, epoch, ctype, coordinator_epoch), 0, NOW)


# ------------------------------------------------------------------------------------ markers


def test_marker_batch_is_kafkas_format_and_round_trips() -> None:
    m = EndTxnMarker(42, 3, COMMIT, 7)
    batch = build_marker_batch(m, NOW)
    header = read_header(batch)
    assert header.is_control and header.is_transactional
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, -1)
    assert parse_marker(header, batch) == m
    from rillet.logstore.batch import decode_records

    (rec,) = decode_records(batch)
    assert rec.key == struct.pack(">hh", 0, 1) and rec.value == struct.pack(">hi", 0, 7)


def test_malformed_markers_are_refused() -> None:
    from rillet.logstore.batch import BatchBuilder

    for key, value in [(b"\x00\x00\x00\x05", b"\x00\x00\x00\x00\x00\x00"), (b"x", b"y")]:
        b = BatchBuilder(producer_id=1, producer_epoch=0, is_transactional=True, is_control=True)
        b.append(NOW, key, value)
        data = b.build()
        with pytest.raises(CorruptBatchError):
            parse_marker(read_header(data), data)
    with pytest.raises(CorruptBatchError):
        data = plain_batch([b"a"])
        parse_marker(read_header(data), data)


# ------------------------------------------------------------------------- open transactions


def test_a_transaction_opens_at_its_first_batch_and_holds_the_lso(log) -> None:
    ps = PS.ProducerStateManager()
    produce(log, ps, plain_batch([b"a", b"b"]))  # 0, 1
    assert produce(log, ps, txn_batch(7, 0, [b"t1", b"t2"])).base_offset == 2  # 2, 3
    produce(log, ps, plain_batch([b"c"]))  # 4
    produce(log, ps, txn_batch(7, 2, [b"t3"]))  # 5: same transaction, first offset stays
    assert ps.ongoing_transactions() == {7: 2}
    assert T.last_stable_offset(ps, high_watermark=6) == 2
    assert T.last_stable_offset(ps, high_watermark=1) == 1  # never above the HW
    assert read_committed(log, ps, 6) == [(0, b"a"), (1, b"b")]
    r = marker(log, ps, 7, COMMIT)
    assert (r.error, r.offset, r.completed) == ("NONE", 6, PS.CompletedTxn(7, 2, 6, False))
    assert ps.ongoing_transactions() == {}
    # the marker is not replicated yet: a new leader may still see the transaction open
    assert T.last_stable_offset(ps, high_watermark=6) == 2
    ps.on_high_watermark_updated(7)
    assert T.last_stable_offset(ps, high_watermark=7) == 7
    assert [v for _, v in read_committed(log, ps, 7)] == [b"a", b"b", b"t1", b"t2", b"c", b"t3"]
    assert log.txn_index.all() == []  # a commit is not indexed


def test_aborted_records_are_indexed_and_hidden_from_read_committed(log) -> None:
    ps = PS.ProducerStateManager()
    produce(log, ps, txn_batch(1, 0, [b"keep1"]))  # 0
    produce(log, ps, txn_batch(2, 0, [b"drop1", b"drop2"]))  # 1, 2
    produce(log, ps, txn_batch(1, 1, [b"keep2"]))  # 3
    produce(log, ps, txn_batch(2, 2, [b"drop3"]))  # 4
    assert marker(log, ps, 2, ABORT).offset == 5
    # producer 1 is still open at 0: the abort's last stable offset is 0
    assert log.txn_index.all() == [T.AbortedTxn(2, 1, 5, 0)]
    assert marker(log, ps, 1, COMMIT).offset == 6
    ps.on_high_watermark_updated(7)
    assert read_committed(log, ps, 7) == [(0, b"keep1"), (3, b"keep2")]
    assert read_uncommitted_values(log) == [b"keep1", b"drop1", b"drop2", b"keep2", b"drop3"]
    assert log.txn_index.aborted_transactions(0, 7) == [T.AbortedTxn(2, 1, 5, 0)]
    assert log.txn_index.aborted_transactions(6, 7) == []  # marker before the range
    assert log.txn_index.aborted_transactions(0, 1) == []  # began after the range


def test_markers_from_an_old_producer_or_coordinator_epoch_are_refused(log) -> None:
    ps = PS.ProducerStateManager()
    produce(log, ps, txn_batch(3, 0, [b"x"], epoch=2))
    before = log.log_end_offset
    assert marker(log, ps, 3, ABORT, epoch=1).error == "INVALID_PRODUCER_EPOCH"
    # KIP-890 part 2: the marker of a transaction carries its bumped epoch
    assert marker(log, ps, 3, COMMIT, epoch=3, coordinator_epoch=5).error == "NONE"
    assert log.log_end_offset == before + 1
    assert ps.entry(3).producer_epoch == 3 and not ps.entry(3).batches
    produce(log, ps, txn_batch(3, 0, [b"y"], epoch=3))  # the next transaction
    fenced = marker(log, ps, 3, COMMIT, epoch=4, coordinator_epoch=4)
    assert fenced.error == "TRANSACTION_COORDINATOR_FENCED"
    assert log.log_end_offset == before + 2  # nothing written
    assert marker(log, ps, 3, ABORT, epoch=4, coordinator_epoch=5).error == "NONE"
    assert ps.entry(3).producer_epoch == 4 and not ps.entry(3).batches
    # a late write of the ended transaction (its old epoch) cannot slip into the next one
    late = produce(log, ps, txn_batch(3, 1, [b"late"], epoch=3))
    assert late.error == "INVALID_PRODUCER_EPOCH"
    assert produce(log, ps, txn_batch(3, 0, [b"z"], epoch=4)).error == "NONE"


def test_a_late_copy_of_the_previous_marker_cannot_close_the_next_transaction(log) -> None:
    """Found by tests/sim/test_txn_sim.py (seed 7): the coordinator's WriteTxnMarkers for
    transaction 1 (COMMIT, epoch 1) is retried; the first copy, delayed, arrives after
    transaction 2 (data at epoch 1, the marker's) opened here. It used to be written and to
    close transaction 2 as committed, whatever the coordinator decides for it."""
    ps = PS.ProducerStateManager()
    produce(log, ps, txn_batch(4, 0, [b"t1"], epoch=0))  # 0
    assert marker(log, ps, 4, COMMIT, epoch=1).error == "NONE"  # 1
    # a repeat while nothing is open is harmless: written, it completes nothing
    again = marker(log, ps, 4, COMMIT, epoch=1)
    assert again.error == "NONE" and again.completed is None
    produce(log, ps, txn_batch(4, 0, [b"t2"], epoch=1))  # 3: transaction 2 opens
    before = log.log_end_offset
    late = marker(log, ps, 4, COMMIT, epoch=1)
    assert late.error == "INVALID_PRODUCER_EPOCH" and log.log_end_offset == before
    assert ps.ongoing_transactions() == {4: 3}
    r = marker(log, ps, 4, ABORT, epoch=2)  # the coordinator aborts transaction 2
    assert r.error == "NONE" and r.completed == PS.CompletedTxn(4, 3, 4, True)
    ps.on_high_watermark_updated(log.log_end_offset)
    assert [v for _, v in read_committed(log, ps, log.log_end_offset)] == [b"t1"]


def test_a_marker_for_a_partition_without_data_completes_nothing(log) -> None:
    ps = PS.ProducerStateManager()
    r = marker(log, ps, 9, ABORT)
    assert r.error == "NONE" and r.completed is None and log.txn_index.all() == []
    assert T.last_stable_offset(ps, log.log_end_offset) == log.log_end_offset


# --------------------------------------------------------------------------- KIP-890 part 1


def test_unverified_transactional_batches_are_refused_and_nothing_is_written(log) -> None:
    ps = PS.ProducerStateManager()
    asked = []

    def verified(pid, epoch):
        asked.append((pid, epoch))
        return pid == 1

    r = produce(log, ps, txn_batch(2, 0, [b"x"]), verified=verified)
    assert r.error == "INVALID_TXN_STATE" and log.log_end_offset == 0
    r = append_validated(log, ps, txn_batch(1, 0, [b"x"]), 0, NOW)  # no predicate: refused
    assert r.error == "INVALID_TXN_STATE" and log.log_end_offset == 0
    assert produce(log, ps, txn_batch(1, 0, [b"x"]), verified=verified).error == "NONE"
    assert asked == [(2, 0), (1, 0)]
    # an idempotent non-transactional batch never asks, and is unaffected
    r = produce(log, ps, txn_batch(5, 0, [b"i"], transactional=False), verified=verified)
    assert r.error == "NONE" and asked == [(2, 0), (1, 0)]
    # a transactional batch must have a producer id
    from rillet.logstore.batch import BatchBuilder

    b = BatchBuilder(is_transactional=True)
    b.append(NOW, None, b"v")
    assert produce(log, ps, b.build()).error == "INVALID_RECORD"
    assert ps.entry(2) is None and ps.ongoing_transactions() == {1: 0}


def test_a_non_transactional_batch_inside_an_open_transaction_is_refused(log) -> None:
    ps = PS.ProducerStateManager()
    produce(log, ps, txn_batch(1, 0, [b"t"]))
    r = produce(log, ps, txn_batch(1, 1, [b"x"], transactional=False))
    assert r.error == "INVALID_TXN_STATE" and log.log_end_offset == 1
    marker(log, ps, 1, COMMIT)  # epoch 1: the producer's next batches carry it
    assert produce(log, ps, txn_batch(1, 0, [b"x"], epoch=1, transactional=False)).error == "NONE"


def test_clients_still_cannot_write_markers(log) -> None:
    ps = PS.ProducerStateManager()
    r = produce(log, ps, build_marker_batch(EndTxnMarker(1, 0, COMMIT, 0), NOW))
    assert r.error == "INVALID_RECORD" and log.log_end_offset == 0


# ------------------------------------------------------------------- producer state survives


def test_snapshot_format_2_keeps_transactions_and_format_1_still_loads() -> None:
    ps = PS.ProducerStateManager()
    ps.update(1, 0, 0, 0, 10, 10, NOW, True)
    ps.update(2, 4, 0, 1, 11, 12, NOW, False)
    ps.apply_marker(2, 5, 3, 13, NOW, False)
    data = ps.snapshot()
    assert data[:5] == b"RPSV\x02"
    back = PS.ProducerStateManager.load(data)
    assert back.snapshot() == data
    assert back.ongoing_transactions() == {1: 10}
    e2 = back.entry(2)
    assert (e2.producer_epoch, e2.coordinator_epoch, e2.last_marker_offset) == (5, 3, 13)
    # a format-1 snapshot written before transactions existed
    body = struct.pack(">4sqI", b"RPS1", 2, 1) + struct.pack(">qhqB", 7, 1, NOW, 1)
    body += struct.pack(">iiqqq", 0, 1, 0, 1, NOW)
    import zlib

    old = PS.ProducerStateManager.load(body + struct.pack(">I", zlib.crc32(body)))
    assert old.entry(7).last_seq == 1 and old.ongoing_transactions() == {}
    # an unknown future version is refused, not misread
    future = bytearray(data[:-4])
    future[4] = 3
    future = bytes(future)
    with pytest.raises(PS.ProducerSnapshotError, match="version"):
        PS.ProducerStateManager.load(future + struct.pack(">I", zlib.crc32(future)))


def test_producer_truncation_reopens_or_forgets_transactions() -> None:
    ps = PS.ProducerStateManager()
    ps.update(1, 0, 0, 0, 0, 0, NOW, True)
    ps.update(1, 0, 1, 1, 1, 1, NOW, True)
    ps.apply_marker(1, 0, 0, 2, NOW, True)
    ps.update(2, 0, 0, 0, 3, 3, NOW, False)
    ps.update(2, 0, 1, 1, 4, 4, NOW, True)
    # cutting at 4 forgets producer 2's transaction exactly
    assert ps.truncate_to(4) is True and ps.ongoing_transactions() == {}
    # cutting below producer 1's marker reopens its transaction: not exact, reload needed
    assert ps.truncate_to(2) is False and ps.unreplicated == []


def test_producers_with_open_transactions_do_not_expire() -> None:
    ps = PS.ProducerStateManager()
    ps.update(1, 0, 0, 0, 0, 0, 0, True)
    ps.update(2, 0, 0, 0, 1, 1, 0, False)
    assert ps.remove_expired(now_ms=10**12, expiration_ms=1) == [2]
    assert ps.ongoing_transactions() == {1: 0}


def test_rebuild_from_the_log_equals_the_live_state(log, tmp_path) -> None:
    ps = PS.ProducerStateManager()
    produce(log, ps, txn_batch(1, 0, [b"a"]))
    produce(log, ps, txn_batch(2, 0, [b"b"]))
    marker(log, ps, 1, ABORT, coordinator_epoch=2)
    produce(log, ps, txn_batch(2, 1, [b"c"]))
    rebuilt = PS.rebuild_from_log(log)
    assert rebuilt.snapshot() == ps.snapshot()
    assert rebuilt.unreplicated == ps.unreplicated


def test_a_transaction_version_1_marker_closes_a_transaction_of_its_own_epoch(log) -> None:
    """Kafka clients on the KAFKA listener keep their epoch across transactions (TV1): the
    coordinator's marker carries the data's epoch, which must close the open transaction
    (the TV2 rule above would refuse it), and the producer's sequences go on."""
    ps = PS.ProducerStateManager()
    produce(log, ps, txn_batch(4, 0, [b"t1", b"t1b"], epoch=3))  # 0-1, sequences 0-1
    tv1 = EndTxnMarker(4, 3, COMMIT, 0, transaction_version=1)
    r = T.append_marker(log, ps, tv1, 0, NOW)  # 2
    assert r.error == "NONE" and r.completed == PS.CompletedTxn(4, 0, 2, False)
    # the next transaction, same epoch, sequences continuing
    assert produce(log, ps, txn_batch(4, 2, [b"t2"], epoch=3)).error == "NONE"  # 3
    r = T.append_marker(log, ps, EndTxnMarker(4, 3, ABORT, 0, transaction_version=1), 0, NOW)
    assert r.error == "NONE" and r.completed == PS.CompletedTxn(4, 3, 4, True)
    # an older epoch is still a zombie's
    stale = T.append_marker(log, ps, EndTxnMarker(4, 2, ABORT, 0, transaction_version=1), 0, NOW)
    assert stale.error == "INVALID_PRODUCER_EPOCH"
    ps.on_high_watermark_updated(log.log_end_offset)
    assert [v for _, v in read_committed(log, ps, log.log_end_offset)] == [b"t1", b"t1b"]
