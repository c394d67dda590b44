"""Whether a compacted log is due for cleaning (Kafka's ``LogCleanerManager``, per log).

Kafka cleans the "filthiest" log: the one whose dirty part is the largest fraction of its
cleanable bytes, once that fraction is above ``min.cleanable.dirty.ratio``; or any log
holding a dirty record older than ``max.compaction.lag.ms``. Rillet's owner asks per
partition on its housekeeping schedule, so the rule is per log::

    d = dirtiness(log, first_dirty_offset, now_ms, upper_bound=lso)
    if d.due(log.config):  ...clean, then remember the cleaned range's end as first dirty

* the *first dirty offset* is where the last cleaning pass ended (the cleaner checkpoint,
  ``cleaner-offset.checkpoint`` in the partition directory); before any pass, or outside
  [log start, log end] (truncation, DeleteRecords), it is the log start;
* the *cleanable* segments are those ``cleaner.cleanable_segments`` allows (sealed, no record
  younger than ``min.compaction.lag.ms``, wholly below the last stable offset), without the
  flushed-only limit: the cleaner flushes before it cleans;
* ``clean_bytes``: the bytes of segments wholly below the first dirty offset;
  ``dirty_bytes``: those of the cleanable segments from it on;
  ``ratio = dirty / (clean + dirty)``;
* ``max_compaction_delay_ms``: how long ago the oldest dirty sealed segment's first batch
  passed ``max.compaction.lag.ms`` (0: none has);
* due: some bytes are dirty and (``ratio > min.cleanable.dirty.ratio`` or the delay is > 0),
  Kafka's test (strictly above: a ratio of 1.0 leaves only the lag to trigger a clean).

Worked example: segments of 100 bytes at [0, 10), [10, 20), [20, 30), [30, 40) (active),
the last pass ended at 20: clean = 200, dirty = 100 (the active segment never counts),
ratio = 1/3 -- not due at the default 0.5; due if the first batch of [20, 30) is older than
``max.compaction.lag.ms``.

Pure: reads only the log's segments (one batch header per dirty segment, through the log's
file system) and takes the time as an argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rillet.frozen import frozen

from .cleaner import cleanable_segments
from .config import LogConfig
from .segment import walk

if TYPE_CHECKING:
    from .log import PartitionLog

CHECKPOINT_FILE = "cleaner-offset.checkpoint"


@frozen
class Dirtiness:
    first_dirty_offset: int
    clean_bytes: int
    dirty_bytes: int
    max_compaction_delay_ms: int  # > 0: a dirty record waited longer than max.compaction.lag.ms

    @property
    def ratio(self) -> float:
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0

    def due(self, config: LogConfig) -> bool:
        return self.dirty_bytes > 0 and (
            self.ratio > config.min_cleanable_dirty_ratio or self.max_compaction_delay_ms > 0
        )


def first_dirty(log: PartitionLog, checkpoint: int | None) -> int:
    """The checkpointed first dirty offset, or the log start where it is unknown or stale."""
    if checkpoint is None or not log.log_start_offset <= checkpoint <= log.log_end_offset:
        return log.log_start_offset
    return checkpoint


def dirtiness(
    log: PartitionLog, checkpoint: int | None, now_ms: int, upper_bound: int | None = None
) -> Dirtiness:
    """How dirty ``log`` is (see the module docstring); ``upper_bound``: the last stable
    offset (nothing at or after it is cleanable)."""
    start = first_dirty(log, checkpoint)
    cleanable = cleanable_segments(log, now_ms, upper_bound, flushed_only=False)
    clean = sum(s.size for s in log.segments[:-1] if s.next_offset <= start)
    dirty = sum(s.size for s in cleanable if s.next_offset > start)
    return Dirtiness(start, clean, dirty, _max_compaction_delay(log, start, now_ms))


def _max_compaction_delay(log: PartitionLog, start: int, now_ms: int) -> int:
    lag = log.config.max_compaction_lag_ms
    clean_until = now_ms - lag
    if clean_until <= 0:  # the default (never), or a lag longer than the epoch
        return 0
    earliest = None
    for seg in log.segments[:-1]:  # sealed only: the active segment is never cleaned
        if seg.next_offset <= start or not seg.size:
            continue
        first = _first_batch_timestamp(seg)
        if first is not None and first > 0 and (earliest is None or first < earliest):
            earliest = first
    if earliest is None or earliest >= clean_until:
        return 0
    return clean_until - earliest


def _first_batch_timestamp(seg) -> int | None:
    for _pos, header in walk(seg.file, 0, seg.size, check=False):
        return header.first_timestamp
    return None


def read_checkpoint(log: PartitionLog) -> tuple[int | None, int]:
    """(first dirty offset or None, when a kept tombstone or marker may go or -1) as the
    last pass left them; a missing or malformed checkpoint: (None, -1), all dirty."""
    value = log.fs.read_checkpoint(log.directory / CHECKPOINT_FILE)
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(type(v) is int for v in value)
    ):
        return value[0], value[1]
    return None, -1


def write_checkpoint(log: PartitionLog, offset: int, removable_at_ms: int,
                     durable: bool = False) -> None:
    """Not fsynced after a pass: a lost or stale checkpoint only makes the next estimate
    dirtier (or a tombstone wait for the next pass). ``durable``: after a truncation, whose
    stale checkpoint would count records as clean (PartitionLog._truncate_cleaner_checkpoint)."""
    try:
        log.fs.write_checkpoint(
            log.directory / CHECKPOINT_FILE, [offset, removable_at_ms], durable=durable
        )
    except OSError as exc:
        log._fail(exc)
