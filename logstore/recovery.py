"""Recovery of a partition log when it is opened (Kafka's LogLoader, simplified).

1. Remove leftovers: temp checkpoint files, half-written cleaned segments, index files
   whose segment is gone, and segments wholly below the log-start checkpoint.
2. Clean shutdown (marker present): trust every segment; load its indexes or rebuild them.
3. Unclean stop: segments wholly below the checkpointed recovery point are trusted; every
   later one is revalidated batch by batch (magic, length, digest, counts, contiguous base
   offsets, non-decreasing epochs that agree with the epoch checkpoint). At the first invalid
   batch the segment is truncated and every later segment deleted. A gap between segments
   is accepted only below the recovery point (left by compaction).
4. The epoch cache is truncated to the log end (or rebuilt from headers if its checkpoint is
   lost); what survived is fsynced and becomes the recovery point. Idempotent.

``recover`` returns a ``LoadedLog`` (Kafka's ``LoadedLogOffsets``): the segments, the log
start offset, the leader epochs, the segments still to be fsynced, and a ``RecoveryReport``:
whether the log was closed cleanly, and what the cut in step 3 was. The caller (``PartitionLog.open``)
takes these over, makes them durable and writes the checkpoints; recovery itself never touches a
``PartitionLog``. A *torn tail* (the last batches of the last segment, above the recovery point,
incomplete or followed only by zeros) is what a crash leaves and is expected. Anything else is
*damage*: an invalid batch below the recovery point (it was fsynced), or followed by more
data in its segment or by a later segment holding data (a complete batch that is not what
was written: the log rolled after it). The
log is cut there either way; damage means records that were acknowledged may be gone, so the
owner must re-fetch them from a healthy replica (verify.py) and must not lead meanwhile.
Segments trusted without a check get ``unverified_end`` (checked on first read or by scrub).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from . import batch as B
from . import verify as V
from .cleaner import finish_interrupted_clean
from .config import LogConfig
from .epochs import LeaderEpochCache
from .errors import CorruptBatchError
from .fs import TEMP_SUFFIX, FileSystem
from .segment import Segment, segment_name, walk
from .txn_index import TXN_INDEX_SUFFIX

RECOVERY_POINT_FILE = "recovery-point.checkpoint"
LOG_START_FILE = "log-start-offset.checkpoint"
EPOCH_FILE = "leader-epoch.checkpoint"
CLEAN_SHUTDOWN_FILE = "clean-shutdown"


class RecoveryReport(NamedTuple):
    """What opening a log found (see the module docstring)."""

    clean: bool  # the clean-shutdown marker was present
    torn_tail: CorruptBatchError | None = None  # a crash's incomplete last writes, cut off
    damage: V.Damage | None = None  # an invalid complete batch: the log was cut before it


class LoadedLog(NamedTuple):
    """What recovery leaves: the caller's log starts from exactly this."""

    segments: list[Segment]
    log_start_offset: int
    epochs: list[tuple[int, int]]  # (leader epoch, start offset), truncated to the log end
    unflushed: list[Segment]  # revalidated (possibly truncated) segments: fsync before use
    cut: CorruptBatchError | None  # the invalid batch the log was cut at, if any
    report: RecoveryReport
    # a new partition: no segment, no checkpoint; every missing file reads back as this
    # state, so nothing needs to be made durable yet (the first data flush does it)
    fresh: bool = False


def remove_segment_files(fs: FileSystem, d: Path, base: int) -> None:
    for suffix in (".log", ".index", ".timeindex", TXN_INDEX_SUFFIX):
        fs.remove(d / segment_name(base, suffix))


def recover(fs: FileSystem, d: Path, config: LogConfig, now_ms: int) -> LoadedLog:
    """Open-time recovery of the log in ``d``: see the module docstring."""
    fs.makedirs(d)
    finish_interrupted_clean(fs, d)
    names = fs.listdir(d)
    for name in names:
        stem, dot, suffix = name.partition(".")
        if name.endswith(TEMP_SUFFIX) or (
            suffix in ("index", "timeindex", "txnindex") and f"{stem}.log" not in names
        ):
            fs.remove(d / name)  # half-written checkpoints, indexes of deleted segments
    clean = fs.exists(d / CLEAN_SHUTDOWN_FILE)
    # A new partition: no segment, no checkpoint. Every missing file reads back as the state
    # built below (log start 0, recovery point 0, no epochs), so there is nothing to make
    # durable yet: creating thousands of partitions costs no checkpoint fsyncs (issue #12).
    fresh = not clean and not any(
        n.endswith(".log") or n in (LOG_START_FILE, RECOVERY_POINT_FILE, EPOCH_FILE) for n in names
    )
    start_ckpt = fs.read_checkpoint(d / LOG_START_FILE)
    rp_ckpt = fs.read_checkpoint(d / RECOVERY_POINT_FILE)
    recovery_point = rp_ckpt if isinstance(rp_ckpt, int) and not clean else None
    bases = sorted(int(n[:-4]) for n in fs.listdir(d) if n.endswith(".log") and n[:-4].isdigit())
    log_start = start_ckpt if isinstance(start_ckpt, int) else (bases[0] if bases else 0)
    # Segments entirely below the log start were being deleted by retention.
    while len(bases) > 1 and bases[1] <= log_start:
        remove_segment_files(fs, d, bases.pop(0))
    if not bases:
        bases = [log_start]

    rp = recovery_point or 0
    # The epoch checkpoint is written before any batch of a new epoch, so it vouches for
    # the epoch of every batch on disk: a flipped epoch field (not under the digest) shows.
    cache = _load_epoch_cache(fs, d)
    epoch_ok = None
    if cache is not None and cache.entries:

        def epoch_ok(h: B.BatchHeader) -> bool:
            return (
                cache.epoch_for_offset(h.base_offset)
                <= h.leader_epoch
                <= cache.epoch_for_offset(h.last_offset)
            )

    segments: list[Segment] = []
    unflushed: list[Segment] = []
    previous: Segment | None = None
    torn_tail = damage = cut_error = None
    for i, base in enumerate(bases):
        file = fs.open_segment(d / segment_name(base))
        seg = Segment(base, file, now_ms, config.index_interval_bytes)
        # Trusted: closed cleanly, or entirely below the recovery point (fsynced).
        if clean or (i + 1 < len(bases) and bases[i + 1] <= rp):
            error = None if seg.load_indexes(fs, d) else seg.rebuild(check=False)
            seg.unverified_end = seg.size  # trusted, not checked: checked on first read
        else:
            error = seg.rebuild(check=True, epoch_ok=epoch_ok)
            seg.delete_indexes(fs, d)
            # Its aborted transactions are rebuilt from the log by the owner: the file may
            # miss an abort or name a marker recovery cut off.
            fs.remove(d / segment_name(base, TXN_INDEX_SUFFIX))
            unflushed.append(seg)
        # Compaction (of flushed segments only) may delete a segment it emptied, leaving a
        # gap below the recovery point. Any other gap or overlap means lost writes.
        if previous is not None and (
            base < previous.next_offset or (base > previous.next_offset and not clean and base > rp)
        ):
            error = CorruptBatchError(
                f"segment {base} does not follow the previous one ending at {previous.next_offset}",
                0,
            )
            file.close()
            if seg in unflushed:
                unflushed.remove(seg)
            bases_to_remove = bases[i:]
        else:
            segments.append(seg)
            previous = seg
            bases_to_remove = bases[i + 1 :]
        if error is not None:
            # Kafka: truncate at the first invalid batch and delete every later segment.
            cut_error = error
            cut = previous.next_offset if previous is not None else base
            # below the recovery point it was fsynced; followed by more data in its own
            # segment it is not the torn end of a write (a kill -9 keeps the page cache)
            # (after a clean shutdown everything was)
            # (nor is it if a later segment holds data: the roll came after it was written)
            if (
                clean
                or cut < rp
                or getattr(error, "data_follows", False)
                or _holds_data(fs, d, bases[i + 1 :])
            ):
                damage = V.Damage(cut, base, error.position, error.reason, V.RECOVERY)
            else:
                torn_tail = error
            for later in bases_to_remove:
                remove_segment_files(fs, d, later)
            break
    if not clean:
        # A crash can leave blocks preallocated beyond the end of the active segment.
        segments[-1].file.release_preallocation(force=True)
    transitions = [] if clean else epoch_transitions(segments, rp)
    if cache is None:
        cache = LeaderEpochCache()
        transitions = epoch_transitions(segments, segments[0].base_offset)
    log_end = segments[-1].next_offset
    cache = LeaderEpochCache(cache.entries, log_end_offset=lambda: log_end)
    cache.truncate_from_end(log_end)
    for epoch, offset in transitions:
        if epoch >= 0:
            cache.assign(epoch, offset)
    report = RecoveryReport(clean, torn_tail, damage)
    fresh = fresh and log_end == 0 and not cache.entries
    return LoadedLog(segments, log_start, cache.entries, unflushed, cut_error, report, fresh)


def _holds_data(fs: FileSystem, d: Path, bases: list[int]) -> bool:
    """Does any of these segments begin with something other than zeros?"""
    for base in bases:
        file = fs.open_segment(d / segment_name(base))
        try:
            if any(file.read_at(0, B.HEADER_SIZE)):
                return True
        finally:
            file.close()
    return False


def _load_epoch_cache(fs: FileSystem, d: Path) -> LeaderEpochCache | None:
    entries = fs.read_checkpoint(d / EPOCH_FILE)
    if not isinstance(entries, list):
        return None
    try:
        cache = LeaderEpochCache([(int(e), int(o)) for e, o in entries])
    except (TypeError, ValueError):
        return None
    return cache


def epoch_transitions(segments: list[Segment], from_offset: int) -> list[tuple[int, int]]:
    """(epoch, first offset) wherever the batch epoch changes, from ``from_offset`` on."""
    out: list[tuple[int, int]] = []
    last = -2
    for seg in segments:
        if seg.next_offset <= from_offset:
            last = seg.last_epoch
            continue
        for _pos, header in walk(seg.file, 0, seg.size, check=False):
            if header.leader_epoch != last:
                out.append((header.leader_epoch, header.base_offset))
                last = header.leader_epoch
    return out
