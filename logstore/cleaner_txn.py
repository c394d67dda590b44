"""What the cleaner must know about transactions (Kafka's ``CleanedTransactionMetadata``).

The cleaner (cleaner.py) only cleans below the last stable offset, so every transaction with
data in the cleaned range is decided; the aborted-transaction index (txn_index.py) says which
ones aborted. One :class:`CleanedTransactions` walks the cleaned range in offset order, once,
before anything is rewritten, and decides:

- **aborted data**: a transactional batch of producer P at ``first_offset <= base_offset <
  last_offset`` of one of P's aborted entries (the read_committed filter's own rule). It is
  removed, and its records never enter the offset map, so an aborted record cannot shadow an
  older committed record of its key.
- **markers**: the data of P's transaction closed by the marker at M is P's transactional
  batches since P's previous marker. A marker is kept while any of that data is still in the
  log at the start of the pass; the pass that removes the last of it keeps the marker, and a
  later pass may remove it once its timestamp is older than ``delete.retention.ms`` (Kafka's
  two passes). A marker removed before its data would reopen the transaction for whoever
  rebuilds the producer state from the log (an open transaction pins the LSO for good).
- **index entries**: an ABORT whose marker is in the cleaned range has all its data there
  (data precedes its marker, and the range starts at the log start), all aborted, so all
  removed by this pass: its entry goes. Entries of transactions with no data left go
  *before* any segment is rewritten (so a marker never disappears while its entry remains:
  a later batch of the same producer, stretched back over the removed marker, could
  otherwise fall inside the stale range and be hidden), the others right *after* the rewrite
  (while the data is still there, the entry must be too). A crash in between leaves an entry
  that covers no data: harmless, and dropped by the next pass.

Pure: no I/O; the cleaner feeds it batch headers.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from . import batch as B
from .txn_index import AbortedTxn


class CleanedTransactions:
    """The transactional verdicts of one cleaning pass over ``[range_start, upper)``.

    ``aborted``: the aborted-transaction index entries that may cover the range
    (``txn_index.aborted_transactions(range_start, upper)``). Feed every batch of the range in
    offset order to :meth:`on_batch`, then read :attr:`aborted_batches`,
    :meth:`removable_markers` and :meth:`entries_to_drop`."""

    def __init__(self, aborted: Iterable[AbortedTxn], upper: int) -> None:
        self.upper = upper
        self._ranges: dict[int, tuple[list[int], list[int]]] = {}
        for t in sorted(aborted, key=lambda t: t.first_offset):
            firsts, lasts = self._ranges.setdefault(t.producer_id, ([], []))
            firsts.append(t.first_offset)
            lasts.append(t.last_offset)
        self._with_data: set[int] = set()  # producers whose current txn has data in the log
        self.aborted_batches: set[int] = set()  # base offsets of aborted data batches
        # marker base offset -> (producer id, its transaction still had data, max timestamp)
        self.markers: dict[int, tuple[int, bool, int]] = {}
        # producer id -> [(base offset, next offset)] of its markers whose transaction still
        # had data (a marker's record may not sit at its batch's base offset: compaction
        # stretches batches over the offsets it removed)
        self._closed_with_data: dict[int, list[tuple[int, int]]] = {}
        self._marker_ends: dict[int, int] = {}

    def is_aborted(self, header: B.BatchHeader) -> bool:
        """Whether ``header`` is a data batch of an aborted transaction."""
        if not header.is_transactional or header.is_control:
            return False
        found = self._ranges.get(header.producer_id)
        if found is None:
            return False
        firsts, lasts = found
        i = bisect.bisect_right(firsts, header.base_offset) - 1
        return i >= 0 and header.base_offset < lasts[i]

    def on_batch(self, header: B.BatchHeader) -> bool:
        """Account for the next batch of the range; True if its records count (neither a
        marker nor aborted data), i.e. may enter the offset map."""
        if header.is_control:
            pid = header.producer_id
            had_data = pid in self._with_data
            self.markers[header.base_offset] = (pid, had_data, header.max_timestamp)
            self._marker_ends[header.base_offset] = header.next_offset
            if had_data:
                self._closed_with_data.setdefault(pid, []).append(
                    (header.base_offset, header.next_offset)
                )
            self._with_data.discard(pid)
            return False
        if header.is_transactional and header.producer_id >= 0:
            self._with_data.add(header.producer_id)
        if self.is_aborted(header):
            self.aborted_batches.add(header.base_offset)
            return False
        return True

    def removable_markers(self, horizon_ms: int) -> set[int]:
        """Base offsets of the markers this pass removes: their transaction had no data left
        when the pass began, and they are older than ``horizon_ms``
        (now - delete.retention.ms)."""
        return {
            offset
            for offset, (_pid, had_data, ts) in self.markers.items()
            if not had_data and ts < horizon_ms
        }

    def markers_end(self, offsets: Iterable[int]) -> int:
        """The end of the last of the marker batches at ``offsets`` (base offsets)."""
        return max((self._marker_ends[o] for o in offsets), default=-1)

    def entries_to_drop(self, entries: Iterable[AbortedTxn]) -> tuple[set, set]:
        """(drop before the rewrite, drop after it): the index entries whose ABORT marker is
        in the cleaned range, split by whether their transaction still had data."""
        before, after = set(), set()
        for t in entries:
            if t.last_offset >= self.upper:
                continue
            spans = self._closed_with_data.get(t.producer_id, ())
            if any(base <= t.last_offset < end for base, end in spans):
                after.add(t)
            else:
                before.add(t)  # (its marker may be gone already: then so is its data)
        return before, after
