"""The log of one partition: segments, append/read, recovery, flush, retention, compaction.

Directory layout (docs/storage.md has the full story)::

    00000000000000000000.log         batches back to back (20-digit base offset, like Kafka)
    00000000000000000000.index       offset -> position (derived, rebuildable)
    00000000000000000000.timeindex   timestamp -> offset (derived, rebuildable)
    recovery-point.checkpoint        everything below this offset was fsynced
    log-start-offset.checkpoint      first offset still in the log
    00000000000000000000.txnindex    aborted transactions whose marker is in the segment
    leader-epoch.checkpoint          [(epoch, start offset)]
    clean-shutdown                   present only while the log is closed cleanly

``PartitionLog`` is synchronous and not thread-safe: one owner (the partition's actor) calls it.
It takes ``now_ms`` as an argument and never reads the clock. Durability: ``flush()`` fsyncs
everything appended so far and returns the new recovery point; with ``flush_mode="group-commit"``
the owner calls it once for a group of appends and only then acknowledges them, with
``"interval"`` it calls ``maybe_flush(now_ms)`` periodically. Any I/O error (a failed fsync
above all) marks the log failed: every later call raises LogFailedError, because after a
failed fsync nobody knows what reached the disk; the broker must reopen it from disk.
"""

from __future__ import annotations

import bisect
import os
import struct
from pathlib import Path
from typing import NamedTuple

from . import batch as B
from . import verify as V
from .config import LogConfig
from .epochs import LeaderEpochCache
from .errors import (
    CorruptBatchError,
    DamagedLogError,
    LogFailedError,
    LogStoreError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StaleLeaderEpochError,
    UnexpectedOffsetError,
)
from .fs import FileSystem
from .recovery import (
    CLEAN_SHUTDOWN_FILE,
    EPOCH_FILE,
    LOG_START_FILE,
    RECOVERY_POINT_FILE,
    LoadedLog,
    RecoveryReport,
    recover,
    remove_segment_files,
)
from .segment import Segment, segment_name, walk
from .txn_index import TransactionIndex

__all__ = ["AppendInfo", "LogConfig", "PartitionLog"]

_validate_fields = B.validate_fields
# A header's first 16 bytes, the fields the broker stamps: base_offset, length, leader_epoch.
_pack_head = struct.Struct(">qii").pack
# Batches per pwritev in append_many: two buffers each, within the kernel's IOV_MAX.
_MAX_RUN = max(1, os.sysconf("SC_IOV_MAX") // 2) if hasattr(os, "sysconf") else 512

# Kafka's log.flush.offset.checkpoint.interval.ms: a stale recovery point is safe (recovery
# just revalidates more), so it is not rewritten on every flush.
CHECKPOINT_INTERVAL_MS = 60_000
# With the broker's flusher (FileSystem.group_sync) an unflushed log's owner comes back this
# long after flush.ms to advance the recovery point, if no append did it first.
FLUSHER_CREDIT_MS = CHECKPOINT_INTERVAL_MS


class AppendInfo(NamedTuple):
    """Where an appended batch went. A NamedTuple, not a frozen dataclass: it is built once
    per append on the hot path, and a tuple builds ~3x faster."""

    base_offset: int
    last_offset: int
    max_timestamp: int
    record_count: int


class PartitionLog:
    """One partition's log in ``directory``. Open with ``PartitionLog.open``."""

    def __init__(self, directory: Path, config: LogConfig, fs: FileSystem) -> None:
        self.directory = Path(directory)
        self.config = config
        self.fs = fs
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self._log_start_offset = 0
        self._recovery_point = 0
        self._checkpointed_recovery_point = -1
        self._last_checkpoint_ms = 0
        self._dirty: list[Segment] = []
        self._dir_dirty = False
        self._epochs_dirty = False
        self._first_unflushed_ms: int | None = None
        # the interval flush through the broker's flusher (FileSystem.group_sync): [syncs
        # started when written, log end offset then], oldest first; a completed sync
        # numbered above the first makes everything up to its offset durable (_credit)
        self._marks: list[list[int]] = []
        self._group = None
        self._now_ms = 0  # the latest now_ms the owner passed in
        self._failure: BaseException | None = None
        self._closed = False
        self.epochs = LeaderEpochCache(
            persist=self._persist_epochs, log_end_offset=lambda: self.log_end_offset
        )
        self.recovered_from: CorruptBatchError | None = None  # what the last recovery cut off
        self.recovery: RecoveryReport | None = None  # what opening found (recovery.py)
        # The first damaged batch found (verify.py): nothing is served from its offset on.
        self.damage: V.Damage | None = None
        self._scrub_cursor: V.ScrubCursor | None = None
        # Aborted transactions per segment (txn_index.py); its ``missing`` segments are
        # rebuilt by the owner (transactions.load_transaction_state).
        self.txn_index = TransactionIndex(fs, self.directory)
        # where the last compaction pass ended (cleaner_select.py); None: not read yet
        self.first_dirty_offset: int | None = None
        # when a tombstone or marker the last pass kept may go (-1: none known)
        self.cleaner_removable_at_ms = -1

    # ------------------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls, directory: Path, config: LogConfig, now_ms: int, *, fs: FileSystem | None = None
    ) -> PartitionLog:
        """Create the log, or recover it from ``directory`` (see docs/storage.md)."""
        log = cls(Path(directory), config, fs or FileSystem())
        log._now_ms = now_ms
        loaded = recover(log.fs, log.directory, config, now_ms)
        log._take_over(loaded, now_ms)
        log._scrub_cursor = V.ScrubCursor(log.segments)
        return log

    def _take_over(self, loaded: LoadedLog, now_ms: int) -> None:
        """Start from what recovery left, and make it durable before it counts as recovered
        (the recovery point is the log end after this)."""
        self.segments = loaded.segments
        self._bases = [s.base_offset for s in self.segments]
        self._log_start_offset = loaded.log_start_offset
        self.recovered_from = loaded.cut
        self.recovery = loaded.report  # its damage is already cut off: the owner acts
        self.epochs = LeaderEpochCache(
            loaded.epochs, persist=self._persist_epochs, log_end_offset=lambda: self.log_end_offset
        )
        empty = frozenset(s.base_offset for s in self.segments if not s.size)
        self.txn_index.load(self._bases, empty)
        self._dirty = list(loaded.unflushed)
        self._dir_dirty = True
        if loaded.fresh:
            # creating thousands of partitions costs no checkpoint fsyncs (issue #12): the
            # segment and the directory are fsynced with the first data flush
            self._recovery_point = self._checkpointed_recovery_point = 0
            self._last_checkpoint_ms = now_ms
            return
        self._persist_epochs(self.epochs.entries)
        self._flush_files()
        self._recovery_point = self.log_end_offset
        self._write_offsets_checkpoints(now_ms)
        if loaded.report.clean:
            self.fs.remove(self.directory / CLEAN_SHUTDOWN_FILE)
            self.fs.fsync_dir(self.directory)

    # ---------------------------------------------------------------------------- properties

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def size_in_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def active_segment(self) -> Segment:
        return self.segments[-1]

    # ------------------------------------------------------------------------------ writing

    def append(self, batch: bytes, leader_epoch: int, now_ms: int) -> AppendInfo:
        """Leader path: validate one producer batch, stamp its base offset and ``leader_epoch``
        in place, and write it (buffered until the next flush).

        The hot path of a produce: one struct unpack and one blake3 pass validate the batch
        (B.validate_fields), the stamped 16-byte head is packed fresh and the payload is
        written straight from the caller's buffer (one pwritev, no 64 KiB copy), and the
        segment accounts for it from plain ints (no header object is built).
        """
        if self._failure is not None or self._closed:
            self._check_usable()
        size = len(batch)
        if size > self.config.max_message_bytes:
            raise RecordTooLargeError(size, self.config.max_message_bytes)
        fields = _validate_fields(batch)
        last_delta = fields[6]
        if fields[12] != last_delta + 1:
            raise CorruptBatchError("a produced batch must have dense offset deltas", 0)
        epochs = self.epochs
        latest = epochs.latest_epoch
        if leader_epoch < latest:
            raise StaleLeaderEpochError(leader_epoch, latest)
        active = self.segments[-1]
        base = active.next_offset
        next_offset = base + last_delta + 1
        max_timestamp = fields[8]
        self._now_ms = now_ms
        try:
            if active.size > 0 and (
                active.size + size > self.config.segment_bytes
                or now_ms - active.created_ms >= self.config.roll_ms
            ):
                active = self._roll(now_ms)
            if leader_epoch > latest:
                epochs.assign(leader_epoch, base)
            head = _pack_head(base, size, leader_epoch)  # bytes [0, 16): the stamped fields
            active.append_parts(
                (head, memoryview(batch)[16:]),
                size,
                base,
                next_offset,
                max_timestamp,
                leader_epoch,
            )
        except OSError as exc:
            self._fail(exc)
        dirty = self._dirty
        if not dirty or dirty[-1] is not active:
            dirty.append(active)
        self._wrote(now_ms)
        return AppendInfo(base, next_offset - 1, max_timestamp, last_delta + 1)

    def append_many(self, batches, leader_epoch: int, now_ms: int) -> list[AppendInfo]:
        """Leader path for a produce request that carries several batches for this partition.

        ``batches`` is a sequence of buffers, one whole producer batch each (memoryviews into
        the request are fine: nothing is copied). All are validated first, as append() does
        (size, digest, counts, dense offsets, epoch): all or nothing, a bad batch raises before
        anything is written. Then they are stamped and written back to back with one pwritev
        per segment (and per _MAX_RUN batches). Returns one AppendInfo per batch, in order.
        """
        if self._failure is not None or self._closed:
            self._check_usable()
        max_bytes = self.config.max_message_bytes
        checked = []
        for batch in batches:
            size = len(batch)
            if size > max_bytes:
                raise RecordTooLargeError(size, max_bytes)
            fields = _validate_fields(batch)
            if fields[12] != fields[6] + 1:
                raise CorruptBatchError("a produced batch must have dense offset deltas", 0)
            checked.append((batch, size, fields[6], fields[8]))
        epochs = self.epochs
        latest = epochs.latest_epoch
        if leader_epoch < latest:
            raise StaleLeaderEpochError(leader_epoch, latest)
        if not checked:
            return []
        self._now_ms = now_ms
        cfg = self.config
        infos = []
        active = self.segments[-1]
        try:
            if leader_epoch > latest:
                epochs.assign(leader_epoch, active.next_offset)
            parts: list = []
            run: list = []
            position, base = active.size, active.next_offset
            for batch, size, last_delta, max_timestamp in checked:
                if position > 0 and (
                    position + size > cfg.segment_bytes
                    or now_ms - active.created_ms >= cfg.roll_ms
                ):
                    if run:
                        active.append_run(parts, position - run[0][0], run, leader_epoch)
                        parts, run = [], []
                    self._mark_dirty(active)
                    active = self._roll(now_ms)
                    position = 0
                elif len(run) == _MAX_RUN:
                    active.append_run(parts, position - run[0][0], run, leader_epoch)
                    parts, run = [], []
                next_offset = base + last_delta + 1
                parts.append(_pack_head(base, size, leader_epoch))
                parts.append(memoryview(batch)[16:])
                run.append((position, size, base, next_offset, max_timestamp))
                infos.append(AppendInfo(base, next_offset - 1, max_timestamp, last_delta + 1))
                position += size
                base = next_offset
            active.append_run(parts, position - run[0][0], run, leader_epoch)
        except OSError as exc:
            self._fail(exc)
        self._mark_dirty(active)
        self._wrote(now_ms)
        return infos

    def _mark_dirty(self, segment: Segment) -> None:
        dirty = self._dirty
        if not dirty or dirty[-1] is not segment:
            dirty.append(segment)

    def append_replicated(self, batches: bytes, now_ms: int) -> int:
        """Follower path: append already-stamped batches as fetched from the leader.

        They must start at log_end_offset and be contiguous (UnexpectedOffsetError otherwise)
        with non-decreasing epochs; all are validated before any is written. Returns the new
        log end offset.
        """
        self._check_usable()
        expected = self.log_end_offset
        epoch = self.epochs.latest_epoch
        checked = []
        for header, view in B.iter_batches(batches, validate=True):
            if header.base_offset != expected:
                raise UnexpectedOffsetError(expected, header.base_offset)
            if header.leader_epoch < epoch:
                raise StaleLeaderEpochError(header.leader_epoch, epoch)
            epoch = header.leader_epoch
            expected = header.next_offset
            checked.append((header, view))
        for header, view in checked:
            self._append_stamped(view, header, now_ms)
        return self.log_end_offset

    def _append_stamped(self, data, header: B.BatchHeader, now_ms: int) -> None:
        self._now_ms = now_ms
        active = self.segments[-1]
        if active.size > 0 and (
            active.size + header.length > self.config.segment_bytes
            or now_ms - active.created_ms >= self.config.roll_ms
        ):
            active = self._roll(now_ms)
        if header.leader_epoch > self.epochs.latest_epoch:
            self._io(self.epochs.assign, header.leader_epoch, header.base_offset)
        self._io(active.append, data, header)
        if not self._dirty or self._dirty[-1] is not active:
            self._dirty.append(active)
        self._wrote(now_ms)

    def roll(self, now_ms: int) -> None:
        """Seal the active segment now (if it holds anything) and start a new one."""
        self._check_usable()
        if self.segments[-1].size > 0:
            self._roll(now_ms)

    def _roll(self, now_ms: int) -> Segment:
        sealed = self.segments[-1]
        base = sealed.next_offset
        self._io(sealed.save_indexes, self.fs, self.directory)
        self._io(self.txn_index.write, sealed.base_offset)  # a sealed segment has its file
        self._io(sealed.file.release_preallocation)
        file = self._io(self.fs.open_segment, self.directory / segment_name(base))
        seg = Segment(base, file, now_ms, self.config.index_interval_bytes)
        self.segments.append(seg)
        self._bases.append(base)
        self._dir_dirty = True
        return seg

    # ------------------------------------------------------------------------------ reading

    def read(
        self, offset: int, max_bytes: int, max_offset: int | None = None, _retry: bool = True
    ) -> bytes:
        """Raw whole batches from the one containing ``offset``, within one segment.

        Stops before ``max_bytes`` would be exceeded, but returns at least one whole batch;
        stops before any batch whose last offset >= ``max_offset`` (the high watermark) if
        given. b"" at the log end (or when nothing is below max_offset).
        OffsetOutOfRangeError outside [log_start_offset, log_end_offset]. Bytes opened
        without a check are checked on their first read (verify.py); once a damaged batch is
        known (``damage``), nothing from its offset on is returned: DamagedLogError for a
        read that starts there, the good batches before it otherwise.
        """
        if self._failure is not None or self._closed:
            self._check_usable()
        segments = self.segments
        last = len(segments) - 1
        leo = segments[last].next_offset
        if offset < self._log_start_offset or offset > leo:
            raise OffsetOutOfRangeError(offset, self._log_start_offset, leo)
        if self.damage is not None:
            damaged_at = self.damage.offset
            if offset >= damaged_at and offset < leo:
                raise DamagedLogError(damaged_at, self.damage.reason)
            max_offset = damaged_at if max_offset is None else min(max_offset, damaged_at)
        if offset >= segments[last].base_offset:  # the common case: the active segment
            i = last
        else:
            i = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        while i <= last:
            seg = segments[i]
            try:
                if seg.unverified_end:
                    data = self._read_checked(seg, offset, max_bytes, max_offset)
                else:
                    data = seg.read(offset, max_bytes, max_offset)
            except OSError as exc:
                self._fail(exc)
            except CorruptBatchError as exc:  # a header walk hit a damaged header
                at = V.boundary_before(seg, exc.position)
                self._record_damage(V.Damage(at, seg.base_offset, exc.position, exc.reason, V.READ))
                if not _retry:
                    raise DamagedLogError(self.damage.offset, self.damage.reason) from None
                return self.read(offset, max_bytes, max_offset, _retry=False)
            if data:
                return data
            if max_offset is not None and seg.next_offset > max_offset:
                break
            i += 1
        return b""

    def _read_checked(self, seg: Segment, offset: int, max_bytes: int, max_offset) -> bytes:
        position, data = seg.read_with_position(offset, max_bytes, max_offset)
        if not data or not V.unchecked(seg, position, position + len(data)):
            return data
        good, damage = V.check_read(seg, position, data, offset, self.epochs)
        if damage is None:
            return data
        self._record_damage(damage)
        if good == 0:
            raise DamagedLogError(self.damage.offset, self.damage.reason)
        return data[:good]

    def _record_damage(self, damage: V.Damage) -> None:
        if self.damage is None or damage.offset < self.damage.offset:
            self.damage = damage

    # ------------------------------------------------------------------------------- scrub

    def scrub(self, max_bytes: int) -> V.ScrubStep:
        """Check up to ``max_bytes`` more of the current scrub pass (verify.py): segments
        with bytes opened unchecked first, then every sealed segment. Resumable; a damaged
        batch found becomes ``damage`` (and is in the step)."""
        self._check_usable()
        cursor = self._scrub_cursor
        if cursor is None or cursor.done:
            return V.ScrubStep(0, None, True, V.unverified_bytes(self.segments))
        try:
            checked, damage = V.scrub_step(cursor, self.segments, self.epochs, max(max_bytes, 1))
        except OSError as exc:
            self._fail(exc)
        if damage is not None:
            self._record_damage(damage)
        return V.ScrubStep(checked, damage, cursor.done, V.unverified_bytes(self.segments))

    def start_scrub_pass(self) -> None:
        """Plan a new scrub pass over the log as it is now (the owner decides when)."""
        self._scrub_cursor = V.ScrubCursor(self.segments)

    @property
    def unverified_bytes(self) -> int:
        """Bytes found on disk at open, not re-checked by recovery, not checked since."""
        return V.unverified_bytes(self.segments)

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """First offset whose record timestamp >= ``timestamp`` (ms), or None."""
        self._check_usable()
        for seg in self.segments:
            found = seg.first_offset_at_or_after(timestamp)
            if found is not None:
                return max(found, self._log_start_offset)
        return None

    def batch_headers(self, from_offset: int | None = None):
        """Headers of every batch from the one containing ``from_offset`` (default: the log
        start) to the log end, without reading payloads: for rebuilding derived state such as
        producer sequences. A generator; do not append or truncate while iterating."""
        self._check_usable()
        offset = self._log_start_offset if from_offset is None else from_offset
        i = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        for seg in self.segments[i:]:
            start = seg.find(offset)[0] if seg.base_offset < offset else 0
            for _pos, header in walk(seg.file, start, seg.size, check=False):
                yield header

    # ---------------------------------------------------------------------------- truncating

    def truncate_to(self, offset: int) -> None:
        """Remove every batch from the one containing ``offset`` on (follower truncation).

        The log end offset becomes ``offset``, or the start of the batch containing it.
        Below the log start offset, the whole log is replaced by an empty one at ``offset``.
        """
        self._check_usable()
        if offset >= self.log_end_offset:
            if self.damage is not None and self.damage.offset >= self.log_end_offset:
                self.damage = None  # recovery already cut the damaged batch off
            return
        if offset < self._log_start_offset or offset < self.segments[0].base_offset:
            # Nothing below ``offset`` is left (below the log start, or compacted away).
            self.truncate_fully_and_start_at(offset)
            return
        try:
            while len(self.segments) > 1 and self.segments[-1].base_offset > offset:
                self._drop_segment(self.segments.pop())
                self._bases.pop()
            active = self.segments[-1]
            active.truncate_to_offset(offset)
            active.delete_indexes(self.fs, self.directory)
            active.file.fsync()
            self.fs.fsync_dir(self.directory)
        except OSError as exc:
            self._fail(exc)
        if active not in self._dirty:
            self._dirty.append(active)
        self._io(self.epochs.truncate_from_end, self.log_end_offset)
        self._io(self.txn_index.truncate_to, self.log_end_offset)
        self._recovery_point = min(self._recovery_point, self.log_end_offset)
        self._reset_marks()
        self._io(self._write_recovery_point)
        self._io(self._truncate_cleaner_checkpoint)
        if self.damage is not None and self.damage.offset >= self.log_end_offset:
            self.damage = None  # the damaged batch is gone

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Delete everything and continue as an empty log starting at ``offset``."""
        self._check_usable()
        try:
            for seg in self.segments:
                self._drop_segment(seg)
            self.segments, self._bases = [], []
            file = self.fs.open_segment(self.directory / segment_name(offset))
            seg = Segment(offset, file, self._now_ms, self.config.index_interval_bytes)
            self.segments.append(seg)
            self._bases.append(offset)
            self._log_start_offset = offset
            self.damage = None
            self.epochs.clear()
            self._recovery_point = offset
            self._reset_marks()
            self.fs.write_checkpoint(self.directory / LOG_START_FILE, offset)
            self._write_recovery_point()
            self._truncate_cleaner_checkpoint()
        except OSError as exc:
            self._fail(exc)

    def _truncate_cleaner_checkpoint(self) -> None:
        """The cleaner's first dirty offset never stays above the log end (Kafka's
        ``LogCleanerManager.maybeTruncateCheckpoint``): records appended again below a stale
        one would count as clean, and their segments would never be compacted. Written
        durably, as the truncation is: after a crash a stale checkpoint would be back."""
        from . import cleaner_select as CS

        first, removable = self.first_dirty_offset, self.cleaner_removable_at_ms
        if first is None:
            first, removable = CS.read_checkpoint(self)
        if first is None or first <= self.log_end_offset:
            return
        self.first_dirty_offset, self.cleaner_removable_at_ms = self.log_end_offset, removable
        CS.write_checkpoint(self, self.log_end_offset, removable, durable=True)

    def _drop_segment(self, seg: Segment) -> None:
        if seg in self._dirty:
            self._dirty.remove(seg)
        seg.file.close()
        self._remove_segment_files(seg.base_offset)
        self.txn_index.drop_segment(seg.base_offset)
        self._dir_dirty = True

    def _drop_cleaned_segment(self, seg: Segment) -> None:
        """The cleaner emptied ``seg``: delete it (a gap in offsets is allowed)."""
        i = self.segments.index(seg)
        del self.segments[i], self._bases[i]
        try:
            self._drop_segment(seg)
            self.fs.fsync_dir(self.directory)
        except OSError as exc:
            self._fail(exc)

    def _remove_segment_files(self, base: int) -> None:
        remove_segment_files(self.fs, self.directory, base)

    # ------------------------------------------------------------------------------ flushing

    def flush(self) -> int:
        """fsync everything appended so far; returns the new recovery point.

        Raises LogFailedError if an fsync fails (and the log stays failed)."""
        self._check_usable()
        self._flush_files()
        self._recovery_point = self.log_end_offset
        return self._recovery_point

    def _flush_files(self) -> None:
        try:
            # in a broker: one syncfs for every partition due now (actors/group_sync.py),
            # covering this directory's new entries too; plain files only (a fault-
            # injecting FileSystem subclass keeps its per-file fsyncs)
            barrier = FileSystem.group_barrier if type(self.fs) is FileSystem else None
            if barrier is not None and self._dirty:
                # syncfs: the whole filesystem, the unfsynced epoch checkpoint included
                barrier(self._dirty[-1].file.fileno(), str(self.directory.parent))
            else:
                if self._epochs_dirty:  # durable before the recovery point passes it
                    self._persist_epochs(self.epochs.entries, durable=True)
                for seg in self._dirty:
                    seg.file.fsync()
                if self._dir_dirty:
                    self.fs.fsync_dir(self.directory)
        except OSError as exc:
            self._fail(exc)
        self._dirty.clear()
        self._epochs_dirty = False
        self._dir_dirty = False
        self._first_unflushed_ms = None
        self._marks.clear()

    # The interval flush through the broker's flusher (actors/group_sync.py): no fsync and
    # no blocking on the owner's thread; the owner's timer only comes back a minute later to
    # advance the recovery point (and write its checkpoint), if no append did it before.

    def _group_sync(self):
        """The broker's flusher for this log's filesystem, or None (unit tests, a fault-
        injecting FileSystem, group-commit mode: the owner flushes)."""
        hook = FileSystem.group_sync
        if hook is None or type(self.fs) is not FileSystem or self.config.flush_mode != "interval":
            return None
        group = self._group
        if group is None:
            group = self._group = hook(str(self.directory.parent))
        return group

    def _wrote(self, now_ms: int) -> None:
        """After a write: note it for the interval flush."""
        group = self._group_sync()
        if group is not None:
            marks = self._marks
            if marks and marks[0][0] < group.done:
                self._credit(group)
            started, leo = group.started, self.segments[-1].next_offset
            if marks and marks[-1][0] == started:
                marks[-1][1] = leo
            else:
                marks.append([started, leo])
        if self._first_unflushed_ms is None:
            self._first_unflushed_ms = now_ms
            if group is not None:
                group.want(self.config.flush_ms)  # durable within flush.ms, as before

    def _credit(self, group, settle: bool = False) -> bool:
        """Advance the recovery point over the writes a completed sync covered; True if it
        did. A failed sync after a write fails the log (LogFailedError). ``settle`` (no write
        in progress: the owner's tick): once everything is covered, nothing is dirty either,
        and a later flush() or close() has no sync to make."""
        done = group.done
        marks = self._marks
        covered = None
        while marks and marks[0][0] < done:
            started, covered = marks.pop(0)
            error = group.failed_after(started)
            if error is not None:
                self._fail(error)
        if covered is None:
            return False
        if covered > self._recovery_point:
            self._recovery_point = min(covered, self.log_end_offset)
        if not marks:  # everything noted is durable: the next write starts a new stretch
            self._first_unflushed_ms = None
            if settle:
                # (not from _wrote: it credits before it notes the write just made, whose
                # segment is in _dirty, and a flush() right after must still sync that)
                self._dirty.clear()
                self._epochs_dirty = False
                self._dir_dirty = False
        return True

    def _reset_marks(self) -> None:
        """After a truncation: what stays unflushed is covered by the next sync."""
        self._marks.clear()
        group = self._group_sync()
        if group is not None and self._first_unflushed_ms is not None:
            self._marks.append([group.started, self.log_end_offset])

    def maybe_flush(self, now_ms: int) -> bool:
        """Interval policy, from the owner's tick: fsync if the oldest unflushed append is
        ``flush_ms`` old; with the broker's flusher (``_group_sync``) only credit what its
        syncs covered.

        Also rewrites the recovery-point checkpoint every CHECKPOINT_INTERVAL_MS (both
        modes). Returns True if appended data became durable (fsynced, or credited)."""
        if self._failure is not None or self._closed:
            self._check_usable()
        flushed = False
        first = self._first_unflushed_ms
        group = self._group_sync() if first is not None else None
        if group is not None:
            flushed = self._credit(group, settle=True)
            if (self._first_unflushed_ms is not None
                    and now_ms - first >= self.config.flush_ms + FLUSHER_CREDIT_MS):
                # still not covered a minute on: ask again, look again in a minute
                self._first_unflushed_ms = now_ms
                group.want(0)
        elif (
            first is not None
            and now_ms - first >= self.config.flush_ms
            and self.config.flush_mode == "interval"
        ):
            self.flush()
            flushed = True
        if (
            now_ms - self._last_checkpoint_ms >= CHECKPOINT_INTERVAL_MS
            and self._recovery_point != self._checkpointed_recovery_point
        ):
            # The periodic checkpoint is not fsynced (issue #12: thousands of partitions paid
            # 4 fsyncs each a minute). A lost or stale one is safe: the recovery point only
            # grows here, so a crash leaves an older one (more of the log revalidated) or a
            # corrupt one (checksummed: all of it); the log start only grows here too, and
            # retention made its own advance durable before deleting (_delete_prefix).
            self._io(self._write_offsets_checkpoints, now_ms, False)
        return flushed

    @property
    def unflushed(self) -> bool:
        return self._first_unflushed_ms is not None

    def next_flush_due_ms(self) -> int | None:
        """When ``maybe_flush`` next has work to do (ms), or None: the owner's timer need not
        wake for the log until something is appended."""
        due = None
        first = self._first_unflushed_ms
        if first is not None and self.config.flush_mode == "interval":
            due = first + self.config.flush_ms
            if self._group_sync() is not None:
                due += FLUSHER_CREDIT_MS  # the flusher syncs; the owner only credits
        if self._recovery_point != self._checkpointed_recovery_point:
            at = self._last_checkpoint_ms + CHECKPOINT_INTERVAL_MS
            due = at if due is None else min(due, at)
        return due

    def _write_recovery_point(self, durable: bool = True) -> None:
        self.fs.write_checkpoint(
            self.directory / RECOVERY_POINT_FILE, self._recovery_point, durable=durable
        )
        self._checkpointed_recovery_point = self._recovery_point

    def _write_offsets_checkpoints(self, now_ms: int, durable: bool = True) -> None:
        self._write_recovery_point(durable)
        self.fs.write_checkpoint(
            self.directory / LOG_START_FILE, self._log_start_offset, durable=durable
        )
        self._last_checkpoint_ms = now_ms

    def _persist_epochs(self, entries: list[tuple[int, int]], durable: bool = True) -> None:
        # a new epoch is written unfsynced, made durable by the next flush (logstore/epochs.py)
        self.fs.write_checkpoint(
            self.directory / EPOCH_FILE, [list(e) for e in entries], durable=durable
        )
        self._epochs_dirty = not durable

    # ----------------------------------------------------------------------- retention/clean

    def delete_old_segments(self, now_ms: int, *, high_watermark: int | None = None) -> int:
        """Retention (cleanup.policy has "delete"): delete whole old segments, never the active
        one, by retention.ms (largest timestamp older) and retention.bytes. Returns how many.
        With ``high_watermark`` only segments wholly below it go (Kafka's rule: nothing not
        yet replicated, no marker a new leader may still need)."""
        self._check_usable()
        cfg = self.config
        if not cfg.delete:
            return 0
        sealed = self.segments[:-1]
        if high_watermark is not None:
            sealed = [s for s in sealed if s.next_offset <= high_watermark]
        count = 0
        if cfg.retention_ms >= 0:
            for seg in sealed:
                if seg.max_timestamp >= now_ms - cfg.retention_ms:
                    break
                count += 1
        if cfg.retention_bytes >= 0:
            excess = self.size_in_bytes - cfg.retention_bytes
            n = 0
            for seg in sealed:
                if excess - seg.size < 0:
                    break
                excess -= seg.size
                n += 1
            count = max(count, n)
        # segments wholly below a log start that DeleteRecords moved into a later segment
        count = max(count, self._segments_below_log_start())
        if count:
            self._delete_prefix(count, now_ms)
        return count

    def _segments_below_log_start(self) -> int:
        n = 0
        for seg in self.segments[:-1]:
            if seg.next_offset > self._log_start_offset:
                break
            n += 1
        return n

    def delete_records(self, offset: int, now_ms: int) -> int:
        """Kafka's DeleteRecords: the log start offset becomes ``offset`` exactly (reads
        below it are out of range, ListOffsets EARLIEST answers it), durable before this
        returns; the sealed segments wholly below it are deleted at once. Nothing happens
        when ``offset`` is not above the log start. ``offset`` above the log end offset
        raises OffsetOutOfRangeError (the owner also refuses anything above the high
        watermark). Returns the log start offset after the call."""
        self._check_usable()
        if offset > self.log_end_offset:
            raise OffsetOutOfRangeError(offset, self._log_start_offset, self.log_end_offset)
        if offset <= self._log_start_offset:
            return self._log_start_offset
        if offset > self._recovery_point:
            # the log end must stay at or above the new log start through a crash: recovery
            # could otherwise cut an unflushed tail below it
            self.flush()
        try:
            self._log_start_offset = offset
            self.fs.write_checkpoint(self.directory / LOG_START_FILE, offset)
            self._last_checkpoint_ms = now_ms
        except OSError as exc:
            self._fail(exc)
        count = self._segments_below_log_start()
        if count:
            self._delete_prefix(count, now_ms)
        else:
            self._io(self.epochs.truncate_from_start, offset)
        return self._log_start_offset

    def delete_records_before(self, offset: int, now_ms: int) -> int:
        """Advance the log start towards ``offset`` by deleting the sealed segments that lie
        wholly below it (Kafka's DeleteRecords, at segment granularity; the active segment is
        never deleted). For logs whose prefix a snapshot replaces, such as the metadata log.
        Returns how many segments went."""
        self._check_usable()
        count = 0
        for seg in self.segments[:-1]:
            if seg.next_offset > offset:
                break
            count += 1
        if count:
            self._delete_prefix(count, now_ms)
        return count

    def _delete_prefix(self, count: int, now_ms: int) -> None:
        doomed = self.segments[:count]
        first_base = self.segments[count].base_offset
        # never backwards: DeleteRecords may have put the log start inside that segment
        new_start = max(first_base, self._log_start_offset)
        try:
            # The new log start is durable before any file goes: a crash in between leaves
            # segments that recovery deletes, never a log start pointing into a hole.
            self._log_start_offset = new_start
            self.fs.write_checkpoint(self.directory / LOG_START_FILE, new_start)
            self._last_checkpoint_ms = now_ms
            del self.segments[:count], self._bases[:count]
            for seg in doomed:
                self._drop_segment(seg)
            self.epochs.truncate_from_start(new_start)
            self._recovery_point = max(self._recovery_point, first_base)
        except OSError as exc:
            self._fail(exc)

    def compact(self, now_ms: int, *, last_stable_offset: int | None = None):
        """Compaction (cleanup.policy has "compact"); returns CompactionStats. Nothing at or
        after ``last_stable_offset`` is touched (the owner passes the partition's LSO; None:
        the first offset of a transaction open in the log). See cleaner.py."""
        from .cleaner import compact_log

        self._check_usable()
        return compact_log(self, now_ms, last_stable_offset=last_stable_offset)

    # ------------------------------------------------------------------------------ closing

    def close(self) -> None:
        """Flush, save indexes and checkpoints, then write the clean-shutdown marker."""
        if self._closed:
            return
        self._check_usable()
        try:
            self._flush_files()
            self._recovery_point = self.log_end_offset
            for seg in self.segments:
                if not seg.indexes_saved:
                    seg.save_indexes(self.fs, self.directory)
            active = self.segments[-1].base_offset
            # else rebuilt from this segment if needed; a rebuilt one is written even empty
            # (an older file of it would say otherwise at the next clean open)
            if self.txn_index.needs_write(active):
                self.txn_index.write(active)
            self._write_offsets_checkpoints(0)
            self.fs.write_atomic(self.directory / CLEAN_SHUTDOWN_FILE, b"")
        except OSError as exc:
            self._fail(exc)
        finally:
            if self._failure is None:
                self._closed = True
                for seg in self.segments:
                    seg.file.close()

    def abandon(self) -> None:
        """Close the files without flushing or marking a clean shutdown (tests: a crash)."""
        self._closed = True
        for seg in self.segments:
            seg.file.close()

    # ------------------------------------------------------------------------------- failure

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise LogFailedError(
                f"log {self.directory} failed earlier: {self._failure}", self._failure
            )
        if self._closed:
            raise LogFailedError(f"log {self.directory} is closed")

    def _fail(self, exc: BaseException):
        self._failure = exc
        raise LogFailedError(f"log {self.directory} failed: {exc}", exc) from exc

    def _io(self, fn, *args):
        try:
            return fn(*args)
        except OSError as exc:
            self._fail(exc)


__all__ += ["LogStoreError"]
