"""The read_committed filter (rillet/_read_committed.py) on synthetic fetched logs: data
batches built with logstore's BatchBuilder, markers with logstore/txn_markers.py."""

from __future__ import annotations

import pytest
from rillet.logstore import batch as rb
from rillet.logstore.batch_fast import scan_batches
from rillet.logstore.txn_markers import ControlType, EndTxnMarker, build_marker_batch
from rillet.transport.protocol import AbortedTransaction

from rillet._read_committed import aborted_positions, drop_aborted

ABORT, COMMIT = ControlType.ABORT, ControlType.COMMIT


def data(pid: int, txn: bool = True, n: int = 1):
    return ("data", pid, txn, n)


def marker(pid: int, kind: ControlType):
    return ("marker", pid, kind, 1)


def log_of(*specs, start: int = 0) -> bytes:
    """The batches of ``specs`` stamped at consecutive offsets from ``start``, as fetched."""
    out = bytearray()
    offset = start
    for kind, pid, arg, n in specs:
        if kind == "data":
            b = rb.BatchBuilder(producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                                base_sequence=0 if pid >= 0 else -1, is_transactional=arg)
            for i in range(n):
                b.append(1000, None, f"{pid}-{offset + i}".encode())
            raw = bytearray(b.build())
        else:
            raw = bytearray(build_marker_batch(EndTxnMarker(pid, 0, arg, 0), 1000))
        rb.stamp(raw, 0, offset, 0)
        offset += n
        out += raw
    return bytes(out)


def visible(buf: bytes, aborted, fetch_offset: int = 0) -> list[int]:
    """Base offsets of the data batches a read_committed consumer gets."""
    batches, _next, _bad = scan_batches(buf, fetch_offset, True, stop_at_corrupt=True)
    return [b[0] for b in drop_aborted(buf, batches, aborted, check_digests=True)]


def ab(pid: int, first: int) -> AbortedTransaction:
    return AbortedTransaction(producer_id=pid, first_offset=first)


def test_the_docstring_example() -> None:
    buf = log_of(data(1), data(2), data(1), marker(2, COMMIT), marker(1, ABORT), data(1))
    assert visible(buf, [ab(1, 0)]) == [1, 5]
    # read_uncommitted (no aborted list): every data batch, never a marker
    assert visible(buf, None) == [0, 1, 2, 5]


def test_a_producer_with_an_aborted_then_a_committed_transaction() -> None:
    buf = log_of(data(1), data(1, n=3), marker(1, ABORT),        # 0-3, marker at 4
                 data(1), data(1), marker(1, COMMIT),            # 5, 6, marker at 7
                 data(1), marker(1, ABORT))                      # 8, marker at 9
    assert visible(buf, [ab(1, 0), ab(1, 8)]) == [5, 6]


def test_an_aborted_transaction_that_began_before_the_fetched_range() -> None:
    # the fetch starts at offset 10, inside producer 3's transaction begun at 4
    buf = log_of(data(3), data(4), data(3), marker(3, ABORT), data(3), start=10)
    assert visible(buf, [ab(3, 4)], fetch_offset=10) == [11, 14]


def test_an_aborted_transaction_that_begins_inside_the_range() -> None:
    buf = log_of(data(5), marker(5, COMMIT), data(6), data(5), data(6), marker(5, ABORT))
    # producer 5's second transaction begins at 3; its first (committed) one is kept
    assert visible(buf, [ab(5, 3)]) == [0, 2, 4]


def test_non_transactional_batches_of_an_aborting_producer_are_kept() -> None:
    # an idempotent producer's plain batch (its id, no transactional bit) and a producer
    # without id are never part of a transaction
    buf = log_of(data(7), data(7, txn=False), data(-1, txn=False), marker(7, ABORT))
    assert visible(buf, [ab(7, 0)]) == [1, 2]


def test_the_marker_type_matters_not_only_the_producer() -> None:
    # (a COMMIT marker cannot close an aborted transaction; here a malformed history where
    # one sits inside it: the batches after it still belong to the aborted one)
    buf = log_of(data(8), marker(8, COMMIT), data(8), marker(8, ABORT), data(8))
    assert visible(buf, [ab(8, 0)]) == [4]


def test_no_aborted_transactions_keeps_everything() -> None:
    buf = log_of(data(1), data(2), marker(1, COMMIT))
    batches, _next, _bad = scan_batches(buf, 0, True, stop_at_corrupt=True)
    assert drop_aborted(buf, batches, ()) is batches
    assert aborted_positions(buf, ()) == set()


def test_a_batch_whose_digest_does_not_match_is_not_dropped_silently() -> None:
    buf = bytearray(log_of(data(1, n=2), marker(1, ABORT)))
    buf[rb.HEADER_SIZE + 5] ^= 0xFF  # damage the first batch's payload
    # its producer id cannot be trusted: left to the decoder, which reports it corrupt
    assert aborted_positions(bytes(buf), [ab(1, 0)], check_digests=True) == set()
    assert aborted_positions(bytes(buf), [ab(1, 0)], check_digests=False) == {0}


@pytest.mark.parametrize("cut", [1, rb.HEADER_SIZE - 1, rb.HEADER_SIZE + 3])
def test_a_truncated_response_ends_the_walk(cut: int) -> None:
    whole = log_of(data(1), data(1))
    first_len = rb.read_header(whole).length
    buf = whole[:first_len + cut]
    assert aborted_positions(buf, [ab(1, 0)]) == {0}
