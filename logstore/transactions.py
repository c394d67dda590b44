"""The partition side of transactions: markers, the last stable offset, loading.

What lives where (docs/transactions.md has the whole design):

- ``producer_state.py`` knows each producer's open transaction (its first offset), and the
  completed transactions whose marker is not yet below the high watermark;
- ``txn_markers.py`` is the marker's format; ``txn_index.py`` the aborted-transaction index;
- ``validator.py`` (the leader's produce path) refuses a transactional batch whose partition
  the transaction coordinator has not verified as part of the producer's transaction
  (KIP-890 part 1);
- this module appends markers (only the broker does, when the transaction coordinator asks),
  computes the last stable offset, applies what a follower replicated, and loads the state
  when a log is opened (rebuilding missing ``.txnindex`` files from the log).

The last stable offset (LSO) is the offset below which every transaction is decided::

    LSO = min(high watermark,
              first offset of every open transaction,
              first offset of every completed transaction whose marker is >= high watermark)

The last clause is Kafka's too: until the marker is replicated, a new leader may not have it,
and would then see the transaction as still open. The result is never below the log start
(retention may delete the first records of an open transaction; Kafka clamps the same way). A read_committed fetch reads below the LSO
and asks ``log.txn_index.aborted_transactions(from, to)`` which records to drop.

All functions run on the partition's owner thread; pure but for the log they are given.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import NamedTuple

from . import batch as B
from . import producer_state as PS
from .log import PartitionLog
from .txn_index import AbortedTxn
from .txn_markers import EndTxnMarker, build_marker_batch, parse_marker, read_marker

OK = "NONE"


class MarkerAppended(NamedTuple):
    """The outcome of :func:`append_marker`."""

    error: str  # "NONE", INVALID_PRODUCER_EPOCH or TRANSACTION_COORDINATOR_FENCED
    offset: int = -1  # where the marker went
    completed: PS.CompletedTxn | None = None  # the transaction it closed here, if any


def last_stable_offset(
    producers: PS.ProducerStateManager, high_watermark: int, log_start_offset: int = 0
) -> int:
    """The LSO of the partition (see the module docstring); never above the high watermark,
    never below ``log_start_offset``: a transaction whose first records retention deleted
    stays open, but makes the partition unstable from the log start only (Kafka's rule)."""
    lso = high_watermark
    for t in producers.unreplicated:
        if t.last_offset >= high_watermark and t.first_offset < lso:
            lso = t.first_offset
    for first in producers.ongoing_transactions().values():
        if first < lso:
            lso = first
    return max(lso, min(log_start_offset, high_watermark))


def on_log_start_offset_incremented(
    producers: PS.ProducerStateManager, log_start_offset: int
) -> None:
    """Retention or DeleteRecords moved the log start: forget the completed transactions
    that lie wholly below it (Kafka's ``onLogStartOffsetIncremented``). Producers and their
    open transactions stay (they expire by ``producer.id.expiration.ms``; an open one ends
    with its marker); the LSO is clamped to the log start by :func:`last_stable_offset`."""
    if any(t.last_offset < log_start_offset for t in producers.unreplicated):
        producers.unreplicated = [
            t for t in producers.unreplicated if t.last_offset >= log_start_offset
        ]
    producers.map_end_offset = max(producers.map_end_offset, log_start_offset)


def _stable_after(producers: PS.ProducerStateManager, marker_offset: int) -> int:
    """Kafka's ``lastStableOffset`` of an aborted-index entry: the first offset still open
    once the transaction closed by the marker at ``marker_offset`` is complete."""
    firsts = producers.ongoing_transactions().values()
    return min(firsts) if firsts else marker_offset + 1


def _segment_of(log: PartitionLog, offset: int) -> int:
    bases = [s.base_offset for s in log.segments]
    return bases[max(bisect.bisect_right(bases, offset) - 1, 0)]


def append_marker(
    log: PartitionLog,
    producers: PS.ProducerStateManager,
    marker: EndTxnMarker,
    leader_epoch: int,
    now_ms: int,
) -> MarkerAppended:
    """Leader: write the end-transaction ``marker`` (as the transaction coordinator asked in
    WriteTxnMarkers), close the producer's transaction and, for an ABORT, index it.

    A marker from an older producer epoch or an older coordinator epoch is refused and
    nothing is written. Log errors propagate as the log store's exceptions."""
    error = producers.check_marker(
        marker.producer_id,
        marker.producer_epoch,
        marker.coordinator_epoch,
        transaction_version=marker.transaction_version,
    )
    if error != PS.NONE:
        return MarkerAppended(error)
    info = log.append(build_marker_batch(marker, now_ms), leader_epoch, now_ms)
    completed = producers.apply_marker(
        marker.producer_id,
        marker.producer_epoch,
        marker.coordinator_epoch,
        info.base_offset,
        info.max_timestamp,
        marker.is_abort,
    )
    _index(log, producers, completed)
    return MarkerAppended(OK, info.base_offset, completed)


def _index(log: PartitionLog, producers, completed: PS.CompletedTxn | None) -> None:
    if completed is None or not completed.is_aborted:
        return
    entry = AbortedTxn(
        completed.producer_id,
        completed.first_offset,
        completed.last_offset,
        _stable_after(producers, completed.last_offset),
    )
    log._io(log.txn_index.append, _segment_of(log, completed.last_offset), entry)


def apply_replicated(log: PartitionLog, producers: PS.ProducerStateManager, data) -> None:
    """Follower: after ``log.append_replicated(data)``, apply its batches to the producer
    state and index the aborted transactions its markers close."""
    for header, view in B.iter_batches(data, validate=False):
        marker = parse_marker(header, view) if header.is_control else None
        _index(log, producers, producers.update_from_header(header, marker))


def load_transaction_state(
    log: PartitionLog, snapshots: Mapping[int, bytes] | None = None
) -> PS.ProducerStateManager:
    """The producer state of a freshly opened ``log`` (latest snapshot + replay), with the
    ``.txnindex`` of every segment recovery left without one rebuilt by the same replay
    (started early enough: at a snapshot at or below the first such segment)."""
    index = log.txn_index
    bases = [s.base_offset for s in log.segments]
    missing = sorted(b for b in index.missing if b in bases)
    if not missing:
        return PS.rebuild_from_log(log, snapshots)
    found = PS.latest_snapshot(snapshots or {}, missing[0], log.log_start_offset)
    if found is None:
        start, state = log.log_start_offset, PS.ProducerStateManager(log.log_start_offset)
    else:
        start, state = found
    rebuilt: dict[int, list[AbortedTxn]] = {b: [] for b in missing}
    if start < log.log_end_offset:
        for header in log.batch_headers(start):
            marker = read_marker(log, header) if header.is_control else None
            done = state.update_from_header(header, marker)
            if done is not None and done.is_aborted:
                base = bases[bisect.bisect_right(bases, done.last_offset) - 1]
                if base in rebuilt:
                    rebuilt[base].append(
                        AbortedTxn(
                            done.producer_id,
                            done.first_offset,
                            done.last_offset,
                            _stable_after(state, done.last_offset),
                        )
                    )
    active = bases[-1]
    for base, txns in rebuilt.items():
        # The active segment's file is written at its next abort, roll or close.
        log._io(index.replace, base, txns, base != active)
    return state
