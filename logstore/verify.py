"""Detecting damaged data: verify-on-first-read, the background scrub, the damage record. Pure.

Recovery re-checks only what was not fsynced (everything from the recovery point on, and
nothing after a clean shutdown), as Kafka does. So the bytes a log finds on disk when it opens
are trusted without a check: bit rot, a bad sector or a stray write there would be served to
consumers and followers as it is. This module closes that gap, at no cost to data this process
wrote (it was validated when appended):

* **First read.** A segment opened without a check has ``unverified_end`` (its size at open)
  and ``verified``: the sorted, disjoint byte ranges of [0, unverified_end) checked since. A
  read that touches an unchecked range checks those batches (blake3 digest, counts, offsets
  contiguous, epoch agreeing with the epoch cache) and records the range, so each byte is
  checked at most once per process lifetime by reads. Data after the first bad batch is not
  returned.
* **Scrub.** ``scrub_step`` re-checks whole segments from a resumable cursor, at most
  ``max_bytes`` a call: first the segments that still have unchecked bytes (in base-offset
  order), then every sealed segment (bit rot after the write). A pass ends after the last
  segment of its plan; the caller starts the next one when it is due (log.scrub.interval.ms).
* **Damage.** The first bad batch found (on read, scrub or recovery) becomes the log's
  ``Damage``: the log serves nothing from ``damage.offset`` on (DamagedLogError), and the
  owner reports it, leaves the ISR, truncates to ``damage.offset`` (which drops the bad batch)
  and re-fetches from a healthy leader. Truncating there clears the damage.

``damage.offset`` is the first offset not known to be good: the base offset of the bad batch
when its predecessor is known, else a conservative earlier batch boundary (truncating there
only re-fetches a little more).
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, NamedTuple

from . import batch as B
from .errors import CorruptBatchError
from .segment import Segment, walk

if TYPE_CHECKING:
    from .epochs import LeaderEpochCache

READ = "read"
SCRUB = "scrub"
RECOVERY = "recovery"


class Damage(NamedTuple):
    """A complete batch that is not what was written (not a torn tail after a crash)."""

    offset: int  # first offset not known to be good: serve nothing from here on
    segment: int  # base offset of the segment holding the bad batch
    position: int  # byte position of the bad batch in that segment
    reason: str
    source: str  # READ, SCRUB or RECOVERY


class ScrubStep(NamedTuple):
    """What one ``PartitionLog.scrub`` call did."""

    bytes_checked: int
    damage: Damage | None  # found by this step (the log also records it)
    pass_done: bool  # the pass's plan is finished: call start_scrub_pass for another
    unverified_bytes: int  # bytes opened without a check and not checked yet, log-wide


# ------------------------------------------------------------------------------- intervals


def unchecked(seg: Segment, start: int, end: int) -> bool:
    """Does [start, end) of ``seg`` touch bytes that were opened unchecked and not verified?"""
    end = min(end, seg.unverified_end)
    if start >= end:
        return False
    v = seg.verified
    i = bisect.bisect_right(v, [start, 1 << 62]) - 1
    return not (i >= 0 and v[i][0] <= start and v[i][1] >= end)


def mark_verified(seg: Segment, start: int, end: int) -> None:
    """Record [start, end) as checked; once all of [0, unverified_end) is, drop the ranges."""
    end = min(end, seg.unverified_end)
    if start >= end:
        return
    merged: list[list[int]] = []
    placed = False
    for a, b in seg.verified:
        if b < start or a > end:
            if not placed and a > end:
                merged.append([start, end])
                placed = True
            merged.append([a, b])
        else:
            start, end = min(a, start), max(b, end)
    if not placed:
        merged.append([start, end])
        merged.sort()
    if len(merged) == 1 and merged[0][0] == 0 and merged[0][1] >= seg.unverified_end:
        seg.unverified_end, seg.verified = 0, []
    else:
        seg.verified = merged


def unverified_bytes(segments: list[Segment]) -> int:
    total = 0
    for seg in segments:
        if seg.unverified_end:
            total += seg.unverified_end - sum(b - a for a, b in seg.verified)
    return total


def epoch_ok(epochs: LeaderEpochCache, header: B.BatchHeader) -> bool:
    """Does the batch's leader epoch (outside the digest) agree with the epoch cache?"""
    if not epochs.entries:
        return True
    return (
        epochs.epoch_for_offset(header.base_offset)
        <= header.leader_epoch
        <= epochs.epoch_for_offset(header.last_offset)
    )


def boundary_before(seg: Segment, position: int) -> int:
    """The offset of the batch at byte ``position``: from the nearest sparse-index entry at
    or before it, walking the (intact) headers in between; an earlier boundary if they do
    not lead exactly there."""
    i = bisect.bisect_right(seg.positions, position) - 1
    start, offset = (seg.positions[i], seg.offsets[i]) if i >= 0 else (0, seg.base_offset)
    known = offset
    try:
        for pos, header in walk(seg.file, start, position, check=False):
            if pos + header.length > position:
                break
            offset = header.next_offset
        else:
            return offset
    except CorruptBatchError:
        pass
    return known


# ---------------------------------------------------------------------------- first read


def check_read(
    seg: Segment,
    start: int,
    data: bytes,
    offset: int,
    epochs: LeaderEpochCache,
) -> tuple[int, Damage | None]:
    """Check the batches of ``data`` (read from ``seg`` at byte ``start``, the first batch
    holding ``offset``) that lie in unchecked ranges. Returns (how many leading bytes of
    ``data`` are good, the damage found or None); the good bytes are marked verified."""
    pos = 0
    total = len(data)
    expected: int | None = None
    check_from = None
    while pos < total:
        abs_pos = start + pos
        try:
            header = B.read_header(data, pos)
            length = header.length
            if pos + length > total:
                raise CorruptBatchError(f"truncated batch: {total - pos} of {length}", pos)
            if unchecked(seg, abs_pos, abs_pos + length):
                if check_from is None:
                    check_from = abs_pos
                B._check(data, pos, header)
                # offsets increase (compaction may leave gaps between batches)
                if expected is not None and header.base_offset < expected:
                    raise CorruptBatchError(
                        f"batch base offset {header.base_offset}, expected {expected}", pos
                    )
                if expected is None and not (
                    seg.base_offset <= header.base_offset and offset < header.next_offset
                ):
                    raise CorruptBatchError(
                        f"batch at offsets [{header.base_offset}, {header.next_offset}) "
                        f"does not hold offset {offset}",
                        pos,
                    )
                if not epoch_ok(epochs, header):
                    raise CorruptBatchError(
                        f"leader epoch {header.leader_epoch} contradicts the epoch cache", pos
                    )
        except CorruptBatchError as exc:
            if check_from is not None:
                mark_verified(seg, check_from, abs_pos)
            # the first batch's own base offset may be the lie: go back to a known boundary
            bad = boundary_before(seg, abs_pos) if expected is None else expected
            return pos, Damage(bad, seg.base_offset, abs_pos, exc.reason, READ)
        expected = header.next_offset
        pos += length
    if check_from is not None:
        mark_verified(seg, check_from, start + total)
    return total, None


# ----------------------------------------------------------------------------------- scrub


class ScrubCursor:
    """Where a scrub pass stands: the remaining plan (segments, by identity and generation,
    so a rewritten or deleted segment is skipped, never misread), the position in the first
    one and the offset expected there."""

    __slots__ = ("plan", "position", "expected")

    def __init__(self, segments: list[Segment]) -> None:
        active = segments[-1] if segments else None
        first = [s for s in segments if s.unverified_end]
        rest = [s for s in segments if not s.unverified_end and s is not active]
        self.plan: list[tuple[Segment, int]] = [(s, s.generation) for s in first + rest]
        self.position = 0
        self.expected: int | None = None

    @property
    def done(self) -> bool:
        return not self.plan


def scrub_step(
    cursor: ScrubCursor,
    segments: list[Segment],
    epochs: LeaderEpochCache,
    max_bytes: int,
) -> tuple[int, Damage | None]:
    """Check up to ``max_bytes`` (at least one batch) from the cursor on. Returns (bytes
    checked, damage or None); a damaged segment is dropped from the plan."""
    checked = 0
    live = {id(s) for s in segments}
    active = segments[-1] if segments else None
    while cursor.plan and checked < max_bytes:
        seg, generation = cursor.plan[0]
        # the active segment is checked only up to what was on disk at open
        limit = seg.unverified_end if seg is active else seg.size
        if id(seg) not in live or seg.generation != generation or cursor.position >= limit:
            if id(seg) in live and seg.generation == generation and cursor.position >= limit:
                mark_verified(seg, 0, limit)
            cursor.plan.pop(0)
            cursor.position, cursor.expected = 0, None
            continue
        if cursor.expected is None:
            cursor.expected = seg.base_offset
        pos = cursor.position
        try:
            for pos, header in walk(seg.file, cursor.position, limit, check=True):
                if header.base_offset < cursor.expected:  # compaction may leave gaps
                    raise CorruptBatchError(
                        f"batch base offset {header.base_offset}, expected {cursor.expected}",
                        pos,
                    )
                if not epoch_ok(epochs, header):
                    raise CorruptBatchError(
                        f"leader epoch {header.leader_epoch} contradicts the epoch cache", pos
                    )
                checked += header.length
                cursor.position = pos + header.length
                cursor.expected = header.next_offset
                if checked >= max_bytes:
                    break
        except CorruptBatchError as exc:
            bad = cursor.expected
            cursor.plan.pop(0)
            cursor.position, cursor.expected = 0, None
            return checked, Damage(bad, seg.base_offset, exc.position or pos, exc.reason, SCRUB)
    return checked, None
