"""The read_committed filter: which fetched batches belong to aborted transactions.

A read_committed fetch answers below the partition's last stable offset, with the
``aborted_transactions`` that overlap the answer: (producer id, first offset) of each
transaction whose ABORT marker is at or after the fetch offset and which began before the end
of the answer (docs/transactions.md, "The aborted-transaction index"). The consumer drops,
per producer, every transactional batch from the transaction's first offset up to that
producer's ABORT marker; control batches (the markers) are never handed out at all, at either
isolation level (``scan_batches`` already leaves them out).

Kafka's algorithm (``CompletedFetch``), batch by batch in offset order:

1. A batch with a producer id whose last offset is at or after the first offset of the next
   aborted transaction (in first-offset order) opens it: its producer is "aborting".
2. A control batch of an aborting producer that is an ABORT marker closes it.
3. A transactional data batch of an aborting producer is dropped.

Worked example (P and Q two producers; offsets on the left)::

    0  P data (txn)        aborted_transactions = [(P, 0)]: P aborting from here; dropped
    1  Q data (txn)        kept (Q is not aborting)
    2  P data (txn)        dropped
    3  Q COMMIT marker     control: never handed out
    4  P ABORT marker      P's aborted transaction ends here
    5  P data (txn)        kept (P's next transaction)

Pure: bytes in, a list out.
"""

from __future__ import annotations

import heapq

from rillet.logstore.batch import (
    CONTROL_FLAG,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    TRANSACTIONAL_FLAG,
    digest_at,
    read_header,
)
from rillet.logstore.errors import CorruptBatchError
from rillet.logstore.txn_markers import ControlType, parse_marker

_unpack = HEADER.unpack_from


def aborted_positions(buf: bytes, aborted, check_digests: bool = False) -> set[int]:
    """The byte positions in ``buf`` (whole batches, as fetched) of the data batches that
    belong to the aborted transactions ``aborted`` (``AbortedTransaction``-like objects with
    ``producer_id`` and ``first_offset``). With ``check_digests`` a batch whose digest does
    not match is never dropped (it is left for the decoder to report as corrupt, since its
    producer id or attributes cannot be trusted). A framing error ends the walk (the
    consumer's framing reports it)."""
    if not aborted:
        return set()
    queue = [(a.first_offset, a.producer_id) for a in aborted]
    heapq.heapify(queue)
    aborting: set[int] = set()
    out: set[int] = set()
    mv = memoryview(buf)
    pos, total = 0, len(buf)
    while total - pos >= HEADER_SIZE:
        (base, length, _epoch, magic, digest, attributes, last_delta, _first, _max_ts,
         producer_id, _pe, _seq, _count) = _unpack(buf, pos)
        end = pos + length
        if magic != MAGIC or length < HEADER_SIZE or end > total:
            break
        if producer_id >= 0:
            last = base + last_delta
            while queue and queue[0][0] <= last:
                aborting.add(heapq.heappop(queue)[1])
            if producer_id in aborting:
                if attributes & CONTROL_FLAG:
                    if _is_abort(mv, pos, end):
                        aborting.discard(producer_id)
                elif attributes & TRANSACTIONAL_FLAG and not (
                        check_digests and digest_at(mv, pos, end) != digest):
                    out.add(pos)
        pos = end
    return out


def _is_abort(mv: memoryview, pos: int, end: int) -> bool:
    """An ABORT marker? A marker that cannot be parsed ends the aborted transaction too: a
    producer has one transaction at a time, so its next control batch is that one's end."""
    try:
        return parse_marker(read_header(mv, pos), mv[pos:end]).control_type is ControlType.ABORT
    except CorruptBatchError:
        return True


def drop_aborted(buf: bytes, batches: list, aborted, check_digests: bool = False) -> list:
    """``batches`` (``scan_batches`` tuples over ``buf``; index 5 is the batch's start) without
    those of aborted transactions."""
    skip = aborted_positions(buf, aborted, check_digests)
    if not skip:
        return batches
    return [b for b in batches if b[5] not in skip]
