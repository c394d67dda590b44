"""The Raft log interface (``RaftLog``) and its in-memory implementation (``MemoryRaftLog``).

Indexes are 1-based; index 0 (term 0) is the empty log. A log may begin with a snapshot:
entries ``1 .. snapshot_index`` are then replaced by ``Snapshot(index, term, data)`` (the state
machine serialized at that index) and ``term_at(snapshot_index)`` is still answered.

The core mutates the log directly (``append``, ``truncate_from``, ``compact``, ``reset``); those
writes are buffered, like ``PartitionLog.append``, and become durable on ``flush()``, which the
owner calls when it executes a ``FlushLog`` effect. A production ``RaftLog`` is backed by the
``__cluster_metadata`` partition log: entry ``index`` at offset ``index - 1``, ``term`` as the
batch leader epoch, ``control`` as the batch control bit, the snapshot as a checkpoint file
beside the segments. Not thread-safe: one owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rillet.frozen import frozen


@frozen
class LogEntry:
    """One log entry: the leader's ``term`` when it was appended, an opaque ``payload``, and
    ``control`` for entries the state machine does not see (the new leader's no-op)."""

    term: int
    payload: bytes
    control: bool = False


@frozen
class Snapshot:
    """The state machine serialized after applying every entry up to ``index`` (of ``term``)."""

    index: int
    term: int
    data: bytes


class RaftLog(Protocol):
    """What the core needs from a log. Entries live at ``snapshot_index + 1 .. last_index``."""

    @property
    def snapshot_index(self) -> int: ...

    @property
    def snapshot_term(self) -> int: ...

    @property
    def last_index(self) -> int: ...

    @property
    def last_term(self) -> int: ...

    def snapshot(self) -> Snapshot | None:
        """The latest snapshot, or None if the log starts at index 1."""

    def term_at(self, index: int) -> int | None:
        """Term of entry ``index`` for ``snapshot_index <= index <= last_index``, else None."""

    def entry(self, index: int) -> LogEntry:
        """Entry ``index``; IndexError outside ``snapshot_index + 1 .. last_index``."""

    def entries(self, start: int, stop: int) -> list[LogEntry]:
        """Entries ``start .. stop - 1`` (clipped to ``last_index``)."""

    def append(self, entries: Sequence[LogEntry]) -> None:
        """Append after ``last_index``."""

    def truncate_from(self, index: int) -> None:
        """Remove entries ``index .. last_index`` (``index > snapshot_index``)."""

    def compact(self, snapshot: Snapshot) -> None:
        """Store ``snapshot`` and drop entries up to ``snapshot.index``, keeping later ones.
        Requires ``snapshot_index < snapshot.index <= last_index`` and matching terms."""

    def reset(self, snapshot: Snapshot) -> None:
        """Replace the whole log by ``snapshot`` (a follower installing the leader's)."""

    def flush(self) -> None:
        """Make every change so far durable."""


class EntryListReads:
    """The read side of a ``RaftLog`` that holds the entries after its snapshot in a list:
    subclasses keep ``_snap`` (the latest Snapshot or None) and ``_entries`` (entries
    ``snapshot_index + 1 .. last_index``, in order)."""

    __slots__ = ()
    _snap: Snapshot | None
    _entries: list[LogEntry]

    @property
    def snapshot_index(self) -> int:
        return self._snap.index if self._snap else 0

    @property
    def snapshot_term(self) -> int:
        return self._snap.term if self._snap else 0

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot_term

    def snapshot(self) -> Snapshot | None:
        return self._snap

    def term_at(self, index: int) -> int | None:
        base = self.snapshot_index
        if index == base:
            return self.snapshot_term
        if base < index <= base + len(self._entries):
            return self._entries[index - base - 1].term
        return None

    def entry(self, index: int) -> LogEntry:
        base = self.snapshot_index
        if not base < index <= base + len(self._entries):
            raise IndexError(f"entry {index} outside {base + 1}..{self.last_index}")
        return self._entries[index - base - 1]

    def entries(self, start: int, stop: int) -> list[LogEntry]:
        base = self.snapshot_index
        if start <= base:
            raise IndexError(f"entry {start} is compacted (snapshot at {base})")
        return self._entries[start - base - 1 : max(stop - base - 1, 0)]


class MemoryRaftLog(EntryListReads):
    """``RaftLog`` in memory that also models durability: ``durable()`` returns what a crash
    would leave behind, i.e. the state as of the last ``flush()``."""

    __slots__ = ("_snap", "_entries", "_d_snap", "_d_entries", "_dirty_from")

    def __init__(self, entries: Sequence[LogEntry] = (), snapshot: Snapshot | None = None) -> None:
        self._snap = snapshot
        self._entries = list(entries)
        self._d_snap = snapshot
        self._d_entries = list(entries)
        self._dirty_from: int | None = None  # list position of the first unflushed change

    # -- buffered writes
    def _touch(self, pos: int) -> None:
        if self._dirty_from is None or pos < self._dirty_from:
            self._dirty_from = pos

    def append(self, entries: Sequence[LogEntry]) -> None:
        self._touch(len(self._entries))
        self._entries.extend(entries)

    def truncate_from(self, index: int) -> None:
        base = self.snapshot_index
        if index <= base:
            raise IndexError(f"cannot truncate at {index}: compacted up to {base}")
        pos = index - base - 1
        if pos < len(self._entries):
            self._touch(pos)
            del self._entries[pos:]

    def compact(self, snapshot: Snapshot) -> None:
        base = self.snapshot_index
        if not base < snapshot.index <= self.last_index:
            raise IndexError(f"snapshot {snapshot.index} outside {base + 1}..{self.last_index}")
        if self.term_at(snapshot.index) != snapshot.term:
            raise ValueError(f"snapshot term {snapshot.term} != log term at {snapshot.index}")
        del self._entries[: snapshot.index - base]
        self._snap = snapshot
        self._dirty_from = 0  # positions shifted: the next flush rewrites everything

    def reset(self, snapshot: Snapshot) -> None:
        self._snap = snapshot
        self._entries = []
        self._dirty_from = 0

    def flush(self) -> None:
        if self._dirty_from is None:
            return
        if self._d_snap is not self._snap:
            self._d_snap = self._snap
            self._d_entries = list(self._entries)
        else:
            self._d_entries[self._dirty_from :] = self._entries[self._dirty_from :]
        self._dirty_from = None

    # -- crash model
    def durable(self) -> MemoryRaftLog:
        """A new log holding only what was flushed (what a restarted node finds on disk)."""
        return MemoryRaftLog(self._d_entries, self._d_snap)

    def durably_holds(self, index: int, term: int) -> bool:
        """True if a crash now would keep entry ``index`` of ``term`` (or a snapshot past it)."""
        base = self._d_snap.index if self._d_snap else 0
        if index <= base:
            return True
        pos = index - base - 1
        return pos < len(self._d_entries) and self._d_entries[pos].term == term
