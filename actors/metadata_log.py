"""The ``__cluster_metadata`` log: a ``RaftLog`` stored in a rillet ``PartitionLog``.

Raft entry ``index`` is the record at offset ``index - 1``; its batch leader epoch is the
entry's term; the record key is ``b"c"`` for a control entry (a new leader's no-op), else
null; the record value is the entry payload. Entries are cached in memory (metadata is
small), the partition log is what survives a crash.

Beside the segments live two small files written atomically (temp file, fsync, rename):

* ``quorum-state``: the voter's term and vote (``coordinator.raft.wire.encode_hard_state``);
* ``snapshot.cbor``: the latest metadata snapshot ``{"index", "term", "data"}``.

``compact(snapshot)`` writes the snapshot, then drops the log prefix: the whole log when no
entry follows the snapshot (``truncate_fully_and_start_at``), else every sealed segment the
snapshot covers (``delete_records_before``, after rolling the active segment), so the log on
disk stays within about two snapshot intervals. What remains below the snapshot is skipped
on load.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import cbor2
from rillet.coordinator.raft import HardState, LogEntry, Snapshot
from rillet.coordinator.raft.log import EntryListReads
from rillet.coordinator.raft.wire import decode_hard_state, encode_hard_state
from rillet.logstore import batch as B
from rillet.logstore.config import LogConfig
from rillet.logstore.fs import FileSystem
from rillet.logstore.log import PartitionLog

from .ticker import now_ms

CONTROL_KEY = b"c"
SNAPSHOT_FILE = "snapshot.cbor"
QUORUM_STATE_FILE = "quorum-state"
_CONFIG = LogConfig(segment_bytes=64 << 20, max_message_bytes=64 << 20, flush_mode="group-commit")


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OwnFsyncs(FileSystem):
    """The metadata log's files, fsynced one by one (as KRaft forces its own segment): a
    plain ``FileSystem`` log joins the broker's group ``syncfs`` (actors/group_sync.py),
    which waits for the dirty data of every partition on the filesystem; with 10,000
    partitions being written or created that took seconds, Raft missed its election
    timeout and the quorum changed leader every few seconds (issue #12)."""


class PartitionRaftLog(EntryListReads):
    """``coordinator.raft.RaftLog`` over a ``PartitionLog`` in ``directory``. One owner."""

    def __init__(self, directory: Path, clock: Callable[[], int] = now_ms) -> None:
        self.directory = Path(directory)
        self.clock = clock
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = PartitionLog.open(self.directory, _CONFIG, clock(), fs=OwnFsyncs())
        self._snap: Snapshot | None = None
        path = self.directory / SNAPSHOT_FILE
        if path.exists():
            d = cbor2.loads(path.read_bytes())
            self._snap = Snapshot(int(d["index"]), int(d["term"]), bytes(d["data"]))
        self._entries: list[LogEntry] = []
        start = self.snapshot_index  # offset of entry snapshot_index + 1
        if self._log.log_end_offset < start or self._log.log_start_offset > start:
            # the log does not continue the snapshot (a crash inside reset): start over there
            self._log.truncate_fully_and_start_at(start)
        offset = start
        while offset < self._log.log_end_offset:
            data = self._log.read(offset, 1 << 20)
            if not data:
                break
            for header, view in B.iter_batches(data):
                recs = B.decode_records(view)
                for r in recs:
                    if r.offset < offset:
                        continue
                    self._entries.append(
                        LogEntry(header.leader_epoch, r.value or b"", r.key == CONTROL_KEY)
                    )
                    offset = r.offset + 1

    # -- hard state (not part of RaftLog, but kept beside it)

    def load_hard_state(self) -> HardState:
        path = self.directory / QUORUM_STATE_FILE
        return decode_hard_state(path.read_bytes()) if path.exists() else HardState()

    def save_hard_state(self, term: int, voted_for: int | None) -> None:
        _write_atomically(
            self.directory / QUORUM_STATE_FILE, encode_hard_state(HardState(term, voted_for))
        )

    # -- writes (appends are buffered until flush; truncation and snapshots are immediate)

    def append(self, entries: Sequence[LogEntry]) -> None:
        now = self.clock()
        for e in entries:
            b = B.BatchBuilder()
            b.append(now, CONTROL_KEY if e.control else None, e.payload)
            self._log.append(b.build(), e.term, now)
            self._entries.append(e)

    def truncate_from(self, index: int) -> None:
        base = self.snapshot_index
        if index <= base:
            raise IndexError(f"cannot truncate at {index}: compacted up to {base}")
        if index <= self.last_index:
            del self._entries[index - base - 1 :]
            self._log.truncate_to(index - 1)

    def _write_snapshot(self, snapshot: Snapshot) -> None:
        data = cbor2.dumps({"index": snapshot.index, "term": snapshot.term, "data": snapshot.data})
        _write_atomically(self.directory / SNAPSHOT_FILE, data)
        self._snap = snapshot

    def compact(self, snapshot: Snapshot) -> None:
        base = self.snapshot_index
        if not base < snapshot.index <= self.last_index:
            raise IndexError(f"snapshot {snapshot.index} outside {base + 1}..{self.last_index}")
        if self.term_at(snapshot.index) != snapshot.term:
            raise ValueError(f"snapshot term {snapshot.term} != log term at {snapshot.index}")
        self._log.flush()
        self._write_snapshot(snapshot)
        del self._entries[: snapshot.index - base]
        if not self._entries:
            self._log.truncate_fully_and_start_at(snapshot.index)
        else:
            # Seal the segment holding the suffix, so that the next snapshot can delete it,
            # and delete every sealed segment the snapshot now covers: the log on disk stays
            # within about two snapshot intervals.
            now = self.clock()
            self._log.roll(now)
            self._log.delete_records_before(snapshot.index, now)

    def reset(self, snapshot: Snapshot) -> None:
        self._write_snapshot(snapshot)
        self._entries = []
        self._log.truncate_fully_and_start_at(snapshot.index)

    def flush(self) -> None:
        self._log.flush()

    def close(self) -> None:
        self._log.close()
