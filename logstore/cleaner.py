"""Log compaction (cleanup.policy=compact / compact,delete): keep the latest record per key.

Kafka's semantics, simplified to one pass over the sealed segments:

- The active segment is never touched, nor any segment with a record younger than
  ``min.compaction.lag.ms`` (nor anything after it). The log is flushed first and only
  segments below the (checkpointed) recovery point are cleaned.
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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cbor2

from . import batch as B
from .fs import FileSystem
from .segment import Segment, segment_name

if TYPE_CHECKING:
    from .log import PartitionLog

CLEANED_SUFFIX = ".cleaned"


@dataclass(frozen=True, slots=True)
class CompactionStats:
    segments_cleaned: int = 0  # segments rewritten (or deleted because they became empty)
    records_read: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def finish_interrupted_clean(fs: FileSystem, directory: Path) -> None:
    """Delete half-written cleaned segments left by a crash (the originals are intact)."""
    for name in fs.listdir(directory):
        if name.endswith(CLEANED_SUFFIX):
            fs.remove(directory / name)


def cleanable_segments(log: PartitionLog, now_ms: int) -> list[Segment]:
    lag = log.config.min_compaction_lag_ms
    out = []
    for seg in log.segments[:-1]:
        if seg.max_timestamp > now_ms - lag or seg.next_offset > log.recovery_point:
            break
        out.append(seg)
    return out


def compact_log(log: PartitionLog, now_ms: int) -> CompactionStats:
    if not log.config.compact:
        return CompactionStats()
    # Only flushed segments are cleaned, and the recovery point that says so is on disk, so
    # recovery can tell a gap left by an emptied segment from lost writes.
    log.flush()
    log._io(log._write_recovery_point)
    segments = cleanable_segments(log, now_ms)
    if not segments:
        return CompactionStats()
    latest: dict[bytes, int] = {}
    for seg in segments:
        for header, data in seg.batches():
            if header.is_control:
                continue
            cols = B.decode_columns(data, validate=False)
            for key, offset in zip(cols.keys, cols.offsets, strict=True):
                if key is not None:
                    latest[key] = offset
    horizon = now_ms - log.config.delete_retention_ms
    # segments_cleaned, records_read, records_removed, tombstones_removed, bytes before/after
    totals = [0, 0, 0, 0, 0, 0]
    for seg in segments:
        _clean_segment(log, seg, latest, horizon, totals)
    return CompactionStats(*totals)


def _clean_segment(
    log: PartitionLog, seg: Segment, latest: dict[bytes, int], horizon: int, totals: list[int]
) -> None:
    out: list[bytes] = []
    read = removed = tombstones = 0
    range_start = seg.base_offset
    for header, data in seg.batches():
        if header.is_control:
            out.append(_restamp_range(data, header, range_start))
            range_start = header.next_offset
            continue
        cols = B.decode_columns(data, validate=False)
        keep = []
        for i, (key, offset, value) in enumerate(
            zip(cols.keys, cols.offsets, cols.values, strict=True)
        ):
            read += 1
            if key is not None and latest.get(key) != offset:
                removed += 1
            elif key is not None and value is None and cols.timestamps[i] < horizon:
                removed += 1
                tombstones += 1
            else:
                keep.append(i)
        if keep:
            out.append(_rebuild(header, cols, keep, range_start, header.next_offset))
            range_start = header.next_offset
    totals[1] += read
    if removed == 0:
        return
    totals[0] += 1
    totals[2] += removed
    totals[3] += tombstones
    totals[4] += seg.size
    if out and range_start != seg.next_offset:
        # The tail batches vanished: stretch the last kept batch to the segment end.
        last = B.read_header(out[-1])
        cols = B.decode_columns(out[-1], validate=False)
        out[-1] = _rebuild(last, cols, range(len(cols.offsets)), last.base_offset, seg.next_offset)
    _swap(log, seg, out)
    totals[5] += seg.size if out else 0


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
