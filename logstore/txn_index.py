"""The aborted-transaction index of a partition (Kafka's TransactionIndex), one per segment.

A read_committed fetch must drop the records of aborted transactions without decoding the
log: it asks :meth:`TransactionIndex.aborted_transactions` which aborted transactions overlap
the offsets it returns, and the client skips those producers' records between each
transaction's first offset and its ABORT marker.

An entry is written when an ABORT marker is appended, under the segment that holds the
marker: ``(producer_id, first_offset, last_offset, last_stable_offset)`` where
``last_offset`` is the marker's offset and ``last_stable_offset`` the first offset still
unstable after the abort (the smallest first offset of another open transaction, else the
marker's offset + 1), as Kafka records it.

Files: ``<base>.txnindex`` next to ``<base>.log``, entries back to back in Kafka's layout
(version int16 = 0, producer id int64, first offset int64, last offset int64, last stable
offset int64; 34 bytes each). A sealed segment always has its file (written when it rolls,
empty if it saw no abort); the active segment's is rewritten on each abort and, if it has
any entry, at a clean close. So a missing (or unreadable) file means "unknown" (rebuilt from
the log, cheap for one active segment): recovery deletes the file of every
segment it revalidates, and the owner rebuilds the missing ones from the log
(``transactions.load_transaction_state``). The file goes with its segment (retention,
truncation, compaction's deletes: ``recovery.remove_segment_files``).

Owned by the partition's single owner thread; not thread-safe.
"""

from __future__ import annotations

import bisect
import struct
from pathlib import Path

from rillet.frozen import frozen

from .fs import FileSystem

TXN_INDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
_VERSION = 0


@frozen
class AbortedTxn:
    """One aborted transaction: its data lies in [first_offset, last_offset) for its producer;
    ``last_offset`` is the ABORT marker's offset."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def txn_index_name(base_offset: int) -> str:
    return f"{base_offset:020d}{TXN_INDEX_SUFFIX}"


def encode(entries: list[AbortedTxn]) -> bytes:
    return b"".join(
        _ENTRY.pack(_VERSION, t.producer_id, t.first_offset, t.last_offset, t.last_stable_offset)
        for t in entries
    )


def decode(data: bytes) -> list[AbortedTxn] | None:
    """The entries of a file, or None if it is not a whole number of valid entries."""
    if len(data) % _ENTRY.size:
        return None
    out = []
    for pos in range(0, len(data), _ENTRY.size):
        version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
        if version != _VERSION or pid < 0 or not 0 <= first <= last:
            return None
        out.append(AbortedTxn(pid, first, last, lso))
    return out


class TransactionIndex:
    """The aborted transactions of every segment of one partition, by segment base offset."""

    def __init__(self, fs: FileSystem, directory: Path) -> None:
        self.fs = fs
        self.directory = Path(directory)
        self.entries: dict[int, list[AbortedTxn]] = {}
        self._bases: list[int] = []  # sorted keys of ``entries``
        # Segments whose file was missing or unreadable at load: rebuild them from the log.
        self.missing: set[int] = set()
        # Segments rebuilt but not written yet (the active one, at open): their file on disk,
        # if any, is stale and must be overwritten at close even with no entries
        self.unwritten: set[int] = set()

    def _path(self, base: int) -> Path:
        return self.directory / txn_index_name(base)

    def load(self, bases: list[int], empty: frozenset[int] = frozenset()) -> set[int]:
        """Read the files of the segments ``bases``; returns (and keeps in ``missing``) those
        whose file is missing or corrupt, but for the ``empty`` segments (nothing to index).
        OSError propagates."""
        self.entries, self.missing, self.unwritten = {}, set(), set()
        for base in bases:
            data = self.fs.read_bytes(self._path(base))
            found = decode(data) if data is not None else None
            if found is None:
                if base not in empty:
                    self.missing.add(base)
                found = []
            self.entries[base] = found
        self._bases = sorted(self.entries)
        return set(self.missing)

    def _ensure(self, base: int) -> list[AbortedTxn]:
        if base not in self.entries:
            self.entries[base] = []
            bisect.insort(self._bases, base)
        return self.entries[base]

    def append(self, segment_base: int, txn: AbortedTxn) -> None:
        """Index an aborted transaction whose marker is in the segment ``segment_base``, and
        rewrite that segment's file (unless it is still ``missing``). OSError propagates
        (the caller fails the log)."""
        self._ensure(segment_base).append(txn)
        self.write(segment_base)

    def write(self, base: int) -> None:
        """Persist the entries of segment ``base`` (empty too: the file then says "none").
        A segment still ``missing`` (not rebuilt yet) is not written: its entries in memory
        are not known to be complete, and no file is better than a wrong one."""
        if base in self.missing:
            return
        self.fs.write_atomic(self._path(base), encode(self._ensure(base)))
        self.unwritten.discard(base)

    def needs_write(self, base: int) -> bool:
        """Whether closing must write segment ``base``'s file: it has entries, or it was
        rebuilt (maybe to nothing) over a file that may still say otherwise."""
        return bool(self.entries.get(base)) or base in self.unwritten

    def replace(self, base: int, txns: list[AbortedTxn], persist: bool) -> None:
        """Set the entries of segment ``base`` (a rebuild from the log): it is known now."""
        self._ensure(base)
        self.entries[base] = list(txns)
        self.missing.discard(base)
        if persist:
            self.write(base)
        else:
            self.unwritten.add(base)

    def drop_segment(self, base: int) -> None:
        """Forget a deleted segment (its file is removed with the segment's files)."""
        if self.entries.pop(base, None) is not None:
            self._bases.remove(base)
        self.missing.discard(base)
        self.unwritten.discard(base)

    def truncate_to(self, offset: int) -> None:
        """The log was truncated to end at ``offset``: forget aborts whose marker is gone."""
        for base in list(self._bases):
            kept = [t for t in self.entries[base] if t.last_offset < offset]
            if len(kept) != len(self.entries[base]):
                self.entries[base] = kept
                self.write(base)

    def aborted_transactions(self, from_offset: int, to_offset: int) -> list[AbortedTxn]:
        """Aborted transactions with data in [from_offset, to_offset), ordered by marker:
        those whose marker is at or after ``from_offset`` and that began before
        ``to_offset``. A marker at or after ``from_offset`` is in the segment containing
        ``from_offset`` or a later one, so earlier segments are not looked at (a marker
        in a later segment may close a transaction that began early, so those all are)."""
        i = max(bisect.bisect_right(self._bases, from_offset) - 1, 0)
        out = []
        for base in self._bases[i:]:
            out.extend(
                t
                for t in self.entries[base]
                if t.last_offset >= from_offset and t.first_offset < to_offset
            )
        return out

    def all(self) -> list[AbortedTxn]:
        return [t for base in self._bases for t in self.entries[base]]
