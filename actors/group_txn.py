"""The group coordinator's side of transactions (KIP-447), for actors/group_coordinator.py:
how a shard's partition is decoded for the replay (plain batches, transactional batches and
end-transaction markers, in log order) and how a TxnOffsetCommit's records are framed and
its append errors answered. No actor state here: pure functions over bytes and values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cbor2
from rillet.coordinator import groups as G
from rillet.coordinator.groups.txn_offsets import increment_sequence
from rillet.logstore.batch import BatchBuilder, decode_records, iter_batches
from rillet.logstore.errors import CorruptBatchError
from rillet.logstore.txn_markers import parse_marker
from rillet.transport import protocol as P

E = P.ErrorCode

#: the key of the load barrier (a tombstone: compaction drops it, the replay skips it). A new
#: leader's high watermark may lag records the old leader had committed (followers learn it a
#: fetch late); a record this leadership appended with acks=all proves all before it is
#: committed, so loading up to the high watermark after it misses nothing (as txn_shard.py).
BARRIER_KEY = cbor2.dumps({"type": "load_barrier"})


def barrier_batch(timestamp_ms: int) -> bytes:
    return build_batch([(BARRIER_KEY, None)], timestamp_ms, None)


def is_barrier_batch(data: bytes) -> bool:
    """True for a batch made by ``barrier_batch`` (test fakes of the replica use it)."""
    for _header, mv in iter_batches(data, validate=True):
        return [r.key for r in decode_records(mv, validate=False)] == [BARRIER_KEY]
    return False


def decode_entries(
    data: bytes, from_offset: int, warn: Callable[[str, int], None]
) -> tuple[list[G.LogBatch | G.LogMarker], int]:
    """The replay entries of the batches in ``data`` at or after ``from_offset``, and the
    offset after the last batch read (``from_offset`` if none). An unreadable record or
    marker is skipped with ``warn(message, offset)``; the load goes on."""
    entries: list[G.LogBatch | G.LogMarker] = []
    next_offset = from_offset
    for header, mv in iter_batches(data, validate=True):
        if header.next_offset <= from_offset:
            continue
        next_offset = header.next_offset
        if header.is_control:
            try:
                marker = parse_marker(header, mv)
            except CorruptBatchError:
                warn("skipping an unreadable control batch at offset {}", header.base_offset)
                continue
            entries.append(G.LogMarker(marker.producer_id, not marker.is_abort))
            continue
        records = []
        for rec in decode_records(mv, validate=False):
            if rec.offset < from_offset or rec.key == BARRIER_KEY:
                continue
            try:
                key = cbor2.loads(rec.key)
                value = None if rec.value is None else cbor2.loads(rec.value)
                records.append(G.from_kv(key, value))
            except Exception:  # noqa: BLE001 - a foreign record: skip it, keep loading
                warn("skipping an unreadable record at offset {}", rec.offset)
        if header.is_transactional and header.producer_id >= 0:
            producer = G.TxnProducer(producer_id=header.producer_id,
                                     producer_epoch=header.producer_epoch,
                                     base_sequence=header.base_sequence)
            last = increment_sequence(header.base_sequence, header.last_offset_delta)
            entries.append(G.LogBatch(tuple(records), producer, last))
        elif records:
            entries.append(G.LogBatch(tuple(records)))
    return entries, next_offset


def build_batch(
    pairs: Sequence[tuple[bytes, bytes | None]], timestamp_ms: int, producer: G.TxnProducer | None
) -> bytes:
    """One batch of CBOR-encoded (key, value) pairs; transactional for ``producer``."""
    if producer is None:
        batch = BatchBuilder()
    else:
        batch = BatchBuilder(producer_id=producer.producer_id,
                             producer_epoch=producer.producer_epoch,
                             base_sequence=producer.base_sequence, is_transactional=True)
    for key, value in pairs:
        batch.append(timestamp_ms, key, value)
    return batch.build()


def txn_append_error(code: int) -> tuple[int, str]:
    """The TxnOffsetCommit answer when the partition refused the transactional batch."""
    if code == E.NOT_LEADER_OR_FOLLOWER:
        return E.NOT_COORDINATOR, "the coordinator moved while writing"
    if code in (E.INVALID_PRODUCER_EPOCH, E.PRODUCER_FENCED):
        return E.PRODUCER_FENCED, "a newer epoch of the producer wrote to this partition"
    if code == E.INVALID_TXN_STATE:
        return E.INVALID_TXN_STATE, "the partition refused the transactional offsets"
    return E.COORDINATOR_NOT_AVAILABLE, f"could not write the offsets (error {code})"


def resets_sequence(code: int) -> bool:
    """The partition no longer knows the producer (its state expired) while the coordinator
    continued its sequence: the next batch starts the producer over at 0."""
    return code == E.UNKNOWN_PRODUCER_ID
