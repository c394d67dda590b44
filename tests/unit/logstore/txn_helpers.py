"""Helpers of the transaction tests: batch factories and a read_committed reader."""

from __future__ import annotations

from rillet.logstore import transactions as T
from rillet.logstore.batch import BatchBuilder, iter_batches, records

NOW = 1_700_000_000_000


def txn_batch(pid: int, seq: int, values, *, epoch: int = 0, transactional: bool = True) -> bytes:
    b = BatchBuilder(
        producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=transactional
    )
    for v in values:
        b.append(NOW, None, v)
    return b.build()


def plain_batch(values) -> bytes:
    b = BatchBuilder()
    for v in values:
        b.append(NOW, None, v)
    return b.build()


def read_committed(log, producers, high_watermark: int) -> list[tuple[int, bytes]]:
    """(offset, value) of every record a read_committed consumer may see: below the LSO,
    no control records, nothing of an aborted transaction (by the aborted-transaction index,
    as a read_committed fetch will filter)."""
    lso = T.last_stable_offset(producers, high_watermark)
    aborted = log.txn_index.aborted_transactions(log.log_start_offset, lso)
    out = []
    offset = log.log_start_offset
    while offset < lso:
        data = log.read(offset, 1 << 20, max_offset=lso)
        if not data:
            break
        for header, view in iter_batches(data):
            offset = header.next_offset
            if header.is_control:
                continue
            if header.is_transactional and any(
                t.producer_id == header.producer_id
                and t.first_offset <= header.base_offset < t.last_offset
                for t in aborted
            ):
                continue
            out.extend((r.offset, r.value) for r in records(bytes(view)))
    return out


def read_uncommitted_values(log) -> list[bytes]:
    """Every data record's value (what read_uncommitted sees), control records skipped."""
    out = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20)
        if not data:
            break
        for header, view in iter_batches(data):
            offset = header.next_offset
            if not header.is_control:
                out.extend(r.value for r in records(bytes(view)))
    return out
