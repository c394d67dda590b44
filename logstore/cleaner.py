"""Log compaction (cleanup.policy=compact / compact,delete): keep the latest record per key.

Kafka's semantics, simplified to one pass over the sealed segments:

- The active segment is never touched, nor any segment with a record younger than
  ``min.compaction.lag.ms`` (nor anything after it). The log is flushed first and only
  segments below the (checkpointed) recovery point are cleaned, and only those wholly below
  the last stable offset the owner passes (no open or unreplicated transaction in them).
- Transactions (cleaner_txn.py has the rules): records of aborted transactions are removed
  and never enter the offset map; a transaction marker is kept while any record of its
  transaction is, and removed a pass later once older than ``delete.retention.ms``; the
  aborted-transaction index loses the entries whose data is gone; the producer snapshots
  below a removed marker are deleted first.
- An offset map (key -> offset of its latest record) is built over the cleanable segments;
  each segment is then rewritten keeping, per key, only the record at that offset. Offsets,
  order and timestamps are kept; records with a null key are kept as they are.
- A tombstone (null value) that is the latest for its key is kept until its timestamp is
  older than ``delete.retention.ms``, so consumers that are behind still see the delete.
- Batches keep their epoch, producer fields and codec. A rewritten batch covers the offset
  range from the end of the previous kept batch to its original last offset (the offsets of
  the records are explicit deltas), so the batches of a segment stay contiguous and recovery
  can keep checking ``base_offset == previous next_offset``. A segment left empty is deleted.

Crash safety: each segment is written to ``<base>.log.cleaned`` and fsynced, its index files
are removed, and ``os.replace`` swaps it over ``<base>.log`` atomically, then the directory is
fsynced. A crash at any point leaves either the old or the new segment under the ``.log`` name,
both complete; a leftover ``.cleaned`` file is deleted on open (``finish_interrupted_clean``).
Segments are swapped in offset order, so data always goes before (or with) its marker; index
entries of transactions with no data left go before the swaps, the others after them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cbor2

from rillet.frozen import frozen

from . import batch as B
from .cleaner_txn import CleanedTransactions
from .fs import FileSystem
from .segment import Segment, segment_name

if TYPE_CHECKING:
    from .log import PartitionLog

CLEANED_SUFFIX = ".cleaned"


@frozen
class CompactionStats:
    segments_cleaned: int = 0  # segments rewritten (or deleted because they became empty)
    records_read: int = 0
    records_removed: int = 0  # all removed data records (the three below included)
    tombstones_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    aborted_removed: int = 0  # records of aborted transactions
    markers_removed: int = 0  # transaction markers (control batches)
    upper_offset: int = -1  # the cleaned range was [log start, upper_offset); -1: nothing
    # the oldest timestamp of a tombstone or transaction marker the pass kept (-1: none):
    # once older than delete.retention.ms, a pass is due again (cleaner_select.py)
    oldest_kept_removable_ms: int = -1


def finish_interrupted_clean(fs: FileSystem, directory: Path) -> None:
    """Delete half-written cleaned segments left by a crash (the originals are intact)."""
    for name in fs.listdir(directory):
        if name.endswith(CLEANED_SUFFIX):
            fs.remove(directory / name)


def cleanable_segments(
    log: PartitionLog, now_ms: int, upper_bound: int | None = None, *, flushed_only: bool = True
) -> list[Segment]:
    """The sealed segments from the log start that may be cleaned: flushed (below the
    recovery point; ``flushed_only=False``: once flushed), with no record younger than
    ``min.compaction.lag.ms``, and wholly below ``upper_bound`` (the last stable offset);
    the first one that is not ends the range."""
    lag = log.config.min_compaction_lag_ms
    flushed = log.recovery_point if flushed_only else log.log_end_offset
    out = []
    for seg in log.segments[:-1]:
        if seg.max_timestamp > now_ms - lag or seg.next_offset > flushed:
            break
        if upper_bound is not None and seg.next_offset > upper_bound:
            break
        out.append(seg)
    return out


def open_transactions_bound(log: PartitionLog) -> int:
    """The first offset of a transaction still open at the log end, by a replay of the log
    (headers and markers only), else the log end: the bound used when the caller passes no
    last stable offset. It knows nothing of the high watermark; the broker passes the LSO."""
    from .producer_state import rebuild_from_log

    firsts = rebuild_from_log(log).ongoing_transactions().values()
    return min(firsts, default=log.log_end_offset)


def compact_log(
    log: PartitionLog, now_ms: int, *, last_stable_offset: int | None = None
) -> CompactionStats:
    """Clean the log (see the module docstring) if it is due (cleaner_select.py: the dirty
    ratio, max.compaction.lag.ms). ``last_stable_offset``: nothing at or after it is
    touched; the partition passes ``transactions.last_stable_offset(producers,
    high_watermark, log_start_offset)`` (None: :func:`open_transactions_bound`)."""
    from . import cleaner_select as CS

    if not log.config.compact:
        return CompactionStats()
    if log.first_dirty_offset is None:
        log.first_dirty_offset, log.cleaner_removable_at_ms = CS.read_checkpoint(log)
    due_bound = log.log_end_offset if last_stable_offset is None else last_stable_offset
    dirty = CS.dirtiness(log, log.first_dirty_offset, now_ms, due_bound)
    removable_due = 0 <= log.cleaner_removable_at_ms <= now_ms  # a kept tombstone/marker
    if not dirty.due(log.config) and not removable_due:
        return CompactionStats()
    if log.txn_index.missing:
        # Some segments' aborted transactions are unknown (the owner has not rebuilt them
        # since open): rebuild them now, or aborted records could be kept as committed.
        from .transactions import load_transaction_state

        load_transaction_state(log)
    # Only flushed segments are cleaned, and the recovery point that says so is on disk, so
    # recovery can tell a gap left by an emptied segment from lost writes.
    log.flush()
    log._io(log._write_recovery_point)
    bound = open_transactions_bound(log) if last_stable_offset is None else last_stable_offset
    segments = cleanable_segments(log, now_ms, bound)
    if not segments:
        return CompactionStats()
    upper = segments[-1].next_offset
    stats = _clean(log, segments, now_ms, upper)
    log.first_dirty_offset = upper  # everything below is clean now
    kept = stats.oldest_kept_removable_ms
    log.cleaner_removable_at_ms = kept + log.config.delete_retention_ms if kept >= 0 else -1
    CS.write_checkpoint(log, upper, log.cleaner_removable_at_ms)
    return stats


def _clean(log: PartitionLog, segments: list[Segment], now_ms: int, upper: int
           ) -> CompactionStats:
    index = log.txn_index
    txns = CleanedTransactions(index.aborted_transactions(segments[0].base_offset, upper), upper)
    latest: dict[bytes, int] = {}
    for seg in segments:
        for header, data in seg.batches():
            if not txns.on_batch(header):
                continue  # markers and aborted data never enter the offset map
            cols = B.decode_columns(data, validate=False)
            for key, offset in zip(cols.keys, cols.offsets, strict=True):
                if key is not None:
                    latest[key] = offset
    horizon = now_ms - log.config.delete_retention_ms
    drop_before, drop_after = txns.entries_to_drop(index.all())
    removable = txns.removable_markers(horizon)
    if removable:
        _delete_snapshots_before(log, txns.markers_end(removable))
    _drop_entries(log, drop_before)
    pass_ = _Pass(latest, horizon, txns.aborted_batches, removable)
    for seg in segments:
        _clean_segment(log, seg, pass_)
    _drop_entries(log, drop_after)
    return CompactionStats(**asdict(pass_.counts), upper_offset=upper)


def _delete_snapshots_before(log: PartitionLog, offset: int) -> None:
    """Delete the producer snapshots taken below ``offset``, durably, before any marker below
    it goes: one taken inside a transaction whose marker is then removed would reopen it when
    loaded (the replay after it would never see the marker). Newer snapshots, or a replay
    from the log start, give the right state."""
    from .producer_snapshots import ProducerSnapshots

    files = ProducerSnapshots(log.fs, log.directory).files()
    doomed = [path for at, path in files.items() if at < offset]
    if doomed:
        try:
            for path in doomed:
                log.fs.remove(path)
            log.fs.fsync_dir(log.directory)
        except OSError as exc:
            log._fail(exc)


def _drop_entries(log: PartitionLog, doomed: set) -> None:
    """Remove ``doomed`` aborted-transaction entries, rewriting their segments' files."""
    if not doomed:
        return
    index = log.txn_index
    for base, entries in list(index.entries.items()):
        kept = [t for t in entries if t not in doomed]
        if len(kept) != len(entries):
            log._io(index.replace, base, kept, True)


@dataclass(slots=True)
class _Counts:
    """CompactionStats while it is being counted (same fields)."""

    segments_cleaned: int = 0
    records_read: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    aborted_removed: int = 0
    markers_removed: int = 0
    oldest_kept_removable_ms: int = -1

    def kept_removable(self, timestamp: int) -> None:
        if self.oldest_kept_removable_ms < 0 or timestamp < self.oldest_kept_removable_ms:
            self.oldest_kept_removable_ms = timestamp


@dataclass(slots=True)
class _Pass:
    """The decisions of one cleaning pass, and its counts."""

    latest: dict  # key -> offset of its latest record in the cleaned range
    horizon: int  # tombstones and removable markers older than this go
    aborted: set  # base offsets of aborted data batches
    markers: set  # base offsets of the markers removed
    counts: _Counts = field(default_factory=_Counts)


def _clean_segment(log: PartitionLog, seg: Segment, p: _Pass) -> None:
    out: list[bytes] = []
    read = removed = tombstones = aborted = markers = 0
    range_start = seg.base_offset
    for header, data in seg.batches():
        if header.is_control:
            if header.base_offset in p.markers:
                markers += 1  # the next kept batch stretches back over its offsets
                continue
            p.counts.kept_removable(header.max_timestamp)
            out.append(_restamp_range(data, header, range_start))
            range_start = header.next_offset
            continue
        cols = B.decode_columns(data, validate=False)
        read += len(cols.offsets)
        if header.base_offset in p.aborted:
            removed += len(cols.offsets)
            aborted += len(cols.offsets)
            continue
        keep = []
        for i, (key, offset, value) in enumerate(
            zip(cols.keys, cols.offsets, cols.values, strict=True)
        ):
            if key is not None and p.latest.get(key) != offset:
                removed += 1
            elif key is not None and value is None and cols.timestamps[i] < p.horizon:
                removed += 1
                tombstones += 1
            else:
                if key is not None and value is None:
                    p.counts.kept_removable(cols.timestamps[i])
                keep.append(i)
        if keep:
            out.append(_rebuild(header, cols, keep, range_start, header.next_offset))
            range_start = header.next_offset
    c = p.counts
    c.records_read += read
    if removed == 0 and markers == 0:
        return
    c.segments_cleaned += 1
    c.records_removed += removed
    c.tombstones_removed += tombstones
    c.aborted_removed += aborted
    c.markers_removed += markers
    c.bytes_before += seg.size
    if out and range_start != seg.next_offset:
        # The tail batches vanished: stretch the last kept batch to the segment end.
        last = B.read_header(out[-1])
        cols = B.decode_columns(out[-1], validate=False)
        out[-1] = _rebuild(last, cols, range(len(cols.offsets)), last.base_offset, seg.next_offset)
    _swap(log, seg, out)
    c.bytes_after += seg.size if out else 0


def _rebuild(header: B.BatchHeader, cols: B.Columns, keep, start: int, end: int) -> bytes:
    """A batch with the kept records of ``cols`` covering offsets [start, end)."""
    first = header.first_timestamp
    payload = cbor2.dumps(
        [
            [cols.offsets[i] - start for i in keep],
            [cols.timestamps[i] - first for i in keep],
            [cols.keys[i] for i in keep],
            [cols.values[i] for i in keep],
            [cols.headers[i] for i in keep],
        ]
    )
    return B.encode_batch(
        payload=B._compress(header.codec, payload),
        attributes=header.attributes,
        last_offset_delta=end - 1 - start,
        first_timestamp=first,
        max_timestamp=header.max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        record_count=len(keep),
        base_offset=start,
        leader_epoch=header.leader_epoch,
    )


def _restamp_range(data: bytes, header: B.BatchHeader, start: int) -> bytes:
    if start == header.base_offset:
        return data
    cols = B.decode_columns(data, validate=False)
    return _rebuild(header, cols, range(len(cols.offsets)), start, header.next_offset)


def _swap(log: PartitionLog, seg: Segment, batches: list[bytes]) -> None:
    fs, d = log.fs, log.directory
    path = d / segment_name(seg.base_offset)
    if not batches:
        log._drop_cleaned_segment(seg)
        return
    tmp = path.with_name(path.name + CLEANED_SUFFIX)
    try:
        fs.remove(tmp)
        new = fs.open_segment(tmp)
        new.write_at(0, b"".join(batches))
        new.fsync()
        seg.delete_indexes(fs, d)
        fs.rename(tmp, path)
        fs.fsync_dir(d)
    except OSError as exc:
        log._fail(exc)
    old = seg.file
    seg.file = new
    seg.file.path = path
    old.close()
    seg.rebuild(check=False)
