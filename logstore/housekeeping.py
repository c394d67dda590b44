"""Retention and compaction of one partition, with its transactions (Kafka's
``UnifiedLog.deleteOldSegments`` + the cleaner's ``firstUncleanableOffset``), in one call.

The rules (docs/transactions.md, "Compaction and retention") need three things only the
partition's owner has: the producer state, the high watermark and the clock. So the owner's
periodic housekeeping is one call, on leaders and followers alike (a follower passes the
high watermark it learned from the leader)::

    done = housekeep(log, producers, high_watermark, now_ms)

1. retention (``cleanup.policy`` with ``delete``) deletes whole segments wholly below the
   high watermark; when the log start moved, the completed transactions below it are
   forgotten (``transactions.on_log_start_offset_incremented``);
2. compaction (``cleanup.policy`` with ``compact``) cleans below the last stable offset,
   computed after step 1 (so never below the new log start).

Runs on the partition's owner thread; the log's exceptions propagate.
"""

from __future__ import annotations

from typing import NamedTuple

from . import producer_state as PS
from . import transactions as T
from .cleaner import CompactionStats
from .log import PartitionLog


class Housekept(NamedTuple):
    """What :func:`housekeep` did."""

    segments_deleted: int  # by retention
    log_start_offset: int  # after retention
    compaction: CompactionStats | None  # None: the topic is not compacted


def housekeep(
    log: PartitionLog, producers: PS.ProducerStateManager, high_watermark: int, now_ms: int
) -> Housekept:
    """Retention then compaction of ``log`` (see the module docstring)."""
    deleted = log.delete_old_segments(now_ms, high_watermark=high_watermark)
    if deleted:
        T.on_log_start_offset_incremented(producers, log.log_start_offset)
    stats = None
    if log.config.compact:
        lso = T.last_stable_offset(producers, high_watermark, log.log_start_offset)
        stats = log.compact(now_ms, last_stable_offset=lso)
    return Housekept(deleted, log.log_start_offset, stats)
