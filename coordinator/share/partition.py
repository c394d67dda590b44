"""SharePartition: the state of one (share group, topic, partition), driven by the partition's
leader (KIP-932 plus rillet's delayed release and dead letters; docs/queues.md).

The leader's actor (actors/share_partition.py) owns one per share-partition it serves and
calls it on its own thread. Pure: time (``now_ms``) and jitter are arguments; nothing here
reads a clock, draws a random number or does I/O. Each call returns what the actor must do:

- ``acquire`` -> the ``Acquired`` ranges to hand to the member (locked for
  ``record_lock_duration_ms``, delivery count + 1);
- ``acknowledge`` / ``expire_locks`` / ``release_member`` / ``dead_lettered`` -> ``Changes``:
  whether the persisted state changed (write it: WriteShareGroupState), the dead letters to
  write, whether records became available (wake parked fetches);
- ``to_state`` / ``from_state``: the persisted form (``StateBatch`` = the wire's
  ShareStateBatch; ACQUIRED is persisted as AVAILABLE with its delivery count, so a new
  leader redelivers what a dead leader had handed out).

Record states and their legal transitions: coordinator/share/inflight.py. The share-partition
start offset (SPSO, ``start_offset``) only passes ACKNOWLEDGED/ARCHIVED records; the end
offset is at most ``max_record_locks`` past it and never past the high watermark.
Acknowledgements are all-or-nothing per call: INVALID_RECORD_STATE if any named offset is
not ACQUIRED by that member (nothing changes then).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence

from .backoff import backoff_ms
from .inflight import (
    ACKNOWLEDGED,
    ACQUIRED,
    ARCHIVED,
    AVAILABLE,
    DEAD_LETTER_PENDING,
    FINISHED,
    InFlight,
    Ranges,
)
from .partition_types import (  # noqa: F401 - re-exported: the core's vocabulary
    ACK_ACCEPT,
    ACK_GAP,
    ACK_REJECT,
    ACK_RELEASE,
    ACK_RENEW,
    NO_CHANGES,
    REASON_LIMIT,
    Ack,
    Acquired,
    Changes,
    DeadLetter,
    Description,
    SharePartitionConfig,
    ShareStateError,
    StateBatch,
    coalesced,
    runs,
)
from .records import MAX_REASON_CHARS  # what the share-state coordinator stores of a reason


class SharePartition:
    """One share-partition's in-flight state. Owned by one actor thread."""

    def __init__(
        self,
        group: str,
        topic: str,
        partition: int,
        config: SharePartitionConfig,
        start_offset: int,
        batches: tuple[StateBatch, ...] = (),
    ) -> None:
        self.group, self.topic, self.partition = group, topic, partition
        self.config = config
        self.start_offset = start_offset
        self.ranges = Ranges()
        self.end_offset = start_offset
        self._load(batches)

    # ----------------------------------------------------------------------- persistence

    @classmethod
    def from_state(cls, group, topic, partition, config, start_offset, batches):
        return cls(group, topic, partition, config, start_offset, tuple(batches))

    def _load(self, batches: tuple[StateBatch, ...]) -> None:
        items: list[InFlight] = []
        at = self.start_offset
        for b in sorted(batches, key=lambda b: b.first_offset):
            first = max(b.first_offset, at)
            if b.last_offset < first:
                continue
            if first > at:  # never stored: offered as new
                items.append(InFlight(at, first - 1, AVAILABLE, 0))
            state = AVAILABLE if b.delivery_state == ACQUIRED else b.delivery_state
            if state not in (AVAILABLE, ACKNOWLEDGED, ARCHIVED, DEAD_LETTER_PENDING):
                raise ShareStateError("INVALID_RECORD_STATE", f"stored state {state} unknown")
            items.append(InFlight(first, b.last_offset, state, b.delivery_count,
                                  available_at_ms=b.available_at_ms if state == AVAILABLE else 0,
                                  reason=b.reason if state == DEAD_LETTER_PENDING else ""))
            at = b.last_offset + 1
        self.ranges = Ranges(items)
        self.ranges.coalesce(0, len(items))
        self.end_offset = at
        self._advance()

    def to_state(self) -> tuple[int, tuple[StateBatch, ...]]:
        """(start offset, batches) of everything in flight, as it must be persisted."""
        out: list[StateBatch] = []
        for r in self.ranges.items:
            state = AVAILABLE if r.state == ACQUIRED else r.state
            batch = StateBatch(r.first, r.last, state, r.delivery_count,
                               r.available_at_ms if state == AVAILABLE else 0,
                               r.reason if state == DEAD_LETTER_PENDING else "")
            prev = out[-1] if out else None
            if prev is not None and prev.last_offset + 1 == r.first and (
                prev.delivery_state, prev.delivery_count, prev.available_at_ms, prev.reason
            ) == (batch.delivery_state, batch.delivery_count, batch.available_at_ms, batch.reason):
                out[-1] = StateBatch(prev.first_offset, r.last, state, r.delivery_count,
                                     prev.available_at_ms, prev.reason)
            else:
                out.append(batch)
        return self.start_offset, tuple(out)

    def dead_letter_pending(self) -> tuple[DeadLetter, ...]:
        """Records whose dead-letter write is not confirmed (a new leader writes them again)."""
        return tuple(DeadLetter(r.first, r.last, r.delivery_count, r.reason)
                     for r in self.ranges.items if r.state == DEAD_LETTER_PENDING)

    def reset(self, start_offset: int) -> None:
        """Drop all in-flight state and start at ``start_offset`` (AlterShareGroupOffsets)."""
        if self.holders():
            raise ShareStateError("NON_EMPTY_GROUP",
                                  "members of the group hold acquired records here")
        self.ranges = Ranges()
        self.start_offset = self.end_offset = start_offset

    # -------------------------------------------------------------------------- acquire

    def holders(self) -> set[str]:
        return {r.member_id for r in self.ranges.items if r.state == ACQUIRED}

    def next_available_at(self) -> int | None:
        """The earliest ``available_at_ms`` of a delayed AVAILABLE record (None: none)."""
        times = [r.available_at_ms for r in self.ranges.items
                 if r.state == AVAILABLE and r.available_at_ms > 0]
        return min(times) if times else None

    def next_fetch_offset(self, now_ms: int) -> int:
        """The first offset ``acquire`` could hand out now (where the leader reads from)."""
        for r in self.ranges.items:
            if r.state == AVAILABLE and r.available_at_ms <= now_ms:
                return r.first
        return self.end_offset

    def acquire(
        self, member_id: str, high_watermark: int, max_records: int, now_ms: int,
        from_offset: int = 0, batch_ends: Sequence[int] = (),
    ) -> list[Acquired]:
        """Lock up to ``max_records`` records for ``member_id``: released ones first (those
        whose delay has passed), then new ones below ``high_watermark``, never more than
        ``max_record_locks`` past the start offset. Only offsets from ``from_offset`` on:
        the leader reads the records before it acquires them, and one released (or whose
        lock expired) below where its read started must wait for a read that has it.

        ``batch_ends`` (sorted next-offsets of the stored batches the leader read): Kafka's
        ``batch_optimized`` acquire mode (KIP-1206), where ``max_records`` is a soft limit:
        new records are acquired to the end of the batch the budget ends in, so a batch is
        read and decoded once, by one member, rather than once per ``max_records`` slice."""
        cfg = self.config
        out: list[Acquired] = []
        budget = max_records
        lock_until = now_ms + cfg.record_lock_duration_ms
        items = self.ranges.items
        i = 0
        if from_offset > self.start_offset and items:
            i = self.ranges.split_at(min(from_offset, items[-1].last + 1))
        while i < len(items) and budget > 0:
            r = items[i]
            if r.first >= high_watermark:
                break
            if r.state == AVAILABLE and r.available_at_ms <= now_ms:
                last = min(r.last, r.first + budget - 1, high_watermark - 1)
                if last < r.last:
                    self.ranges.split_at(last + 1)
                r.move(ACQUIRED, member_id=member_id, lock_until_ms=lock_until,
                       delivery_count=r.delivery_count + 1, available_at_ms=0)
                budget -= r.count
                out.append(Acquired(r.first, r.last, r.delivery_count))
            i += 1
        limit = min(high_watermark, self.start_offset + cfg.max_record_locks)
        if budget > 0 and from_offset <= self.end_offset < limit:
            last = min(limit - 1, self.end_offset + budget - 1)
            if batch_ends:
                j = bisect.bisect_right(batch_ends, last)
                if j < len(batch_ends):  # finish the batch that ``last`` falls in
                    last = min(limit - 1, batch_ends[j] - 1)
            items.append(InFlight(self.end_offset, last, ACQUIRED, 1, member_id, lock_until))
            out.append(Acquired(self.end_offset, last, 1))
            self.end_offset = last + 1
        if out:
            self.ranges.coalesce(0, len(items))
        return out

    # ---------------------------------------------------------------------- acknowledge

    def check(self, member_id: str, acks: tuple[Ack, ...] | list[Ack]) -> None:
        """Raise ShareStateError unless every acknowledged offset is ACQUIRED by the member
        and every batch is well formed (the all-or-nothing check of ``acknowledge``)."""
        seen: list[tuple[int, int]] = []
        for a in acks:
            n = a.last_offset - a.first_offset + 1
            if a.first_offset < 0 or n <= 0:
                raise ShareStateError("INVALID_REQUEST",
                                      f"bad range {a.first_offset}..{a.last_offset}")
            if len(a.acknowledge_types) not in (1, n):
                raise ShareStateError("INVALID_REQUEST", f"{len(a.acknowledge_types)} "
                                      f"acknowledge types for {n} offsets")
            bad = [t for t in a.acknowledge_types if t not in (0, 1, 2, 3, 4)]
            if bad:
                raise ShareStateError("INVALID_REQUEST", f"unknown acknowledge type {bad[0]}")
            if len(a.reason) > MAX_REASON_CHARS:
                raise ShareStateError("INVALID_REQUEST", f"reason of {len(a.reason)} characters: "
                                      f"at most {MAX_REASON_CHARS}")
            if a.delay_ms < -1:
                raise ShareStateError("INVALID_REQUEST", f"delay_ms {a.delay_ms}: -1 applies "
                                      "the group's back-off, 0 releases at once, > 0 delays")
            seen.append((a.first_offset, a.last_offset))
            covered = a.first_offset
            for r in self.ranges.covering(a.first_offset, a.last_offset):
                if r.first > covered:
                    break
                if r.state != ACQUIRED or r.member_id != member_id:
                    break
                covered = r.last + 1
            if covered <= a.last_offset:
                raise ShareStateError(
                    "INVALID_RECORD_STATE",
                    f"offset {covered} of {self.topic}-{self.partition} is not acquired by "
                    f"member {member_id!r} of group {self.group!r}",
                )
        seen.sort()
        for (_, a_last), (b_first, _) in zip(seen, seen[1:], strict=False):
            if b_first <= a_last:
                raise ShareStateError("INVALID_REQUEST", f"offset {b_first} acknowledged twice")

    def acknowledge(
        self, member_id: str, acks: tuple[Ack, ...] | list[Ack], now_ms: int, jitter: float
    ) -> Changes:
        """Apply a member's acknowledgements, all or nothing (ShareStateError: nothing
        changed). ``jitter`` in [0, 1) spreads back-off delays (backoff.py)."""
        acks = coalesced(acks)
        self.check(member_id, acks)
        dead: list[DeadLetter] = []
        dirty = released = False
        for a in acks:
            for first, last, kind in runs(a):
                i, j = self.ranges.slice(first, last)
                for r in self.ranges.items[i:j]:
                    d, rel = self._settle(r, kind, a, now_ms, jitter, dead)
                    dirty |= d
                    released |= rel
                self.ranges.coalesce(i, j)
        self._advance()
        return Changes(dirty, tuple(dead), released)

    def _settle(self, r: InFlight, kind: int, a: Ack, now_ms: int, jitter: float,
                dead: list[DeadLetter]) -> tuple[bool, bool]:
        cfg = self.config
        if kind == ACK_RENEW:
            r.move(ACQUIRED, lock_until_ms=now_ms + cfg.record_lock_duration_ms)
            return False, False
        if kind == ACK_ACCEPT:
            r.move(ACKNOWLEDGED, member_id=None, lock_until_ms=0)
            return True, False
        if kind == ACK_GAP:  # no record at these offsets (control batches): nothing to redo
            r.move(ARCHIVED, member_id=None, lock_until_ms=0)
            return True, False
        if kind == ACK_REJECT:
            self._dead_letter(r, a.reason or "rejected", dead)
            return True, False
        # release
        if r.delivery_count >= cfg.delivery_count_limit:
            self._dead_letter(r, REASON_LIMIT, dead)
            return True, False
        if a.delay_ms == 0:
            at = 0
        elif a.delay_ms > 0:
            at = now_ms + a.delay_ms
        else:
            at = now_ms + backoff_ms(r.delivery_count, cfg.retry_backoff_ms,
                                     cfg.retry_backoff_multiplier, cfg.retry_backoff_max_ms,
                                     jitter)
        r.move(AVAILABLE, member_id=None, lock_until_ms=0, available_at_ms=at)
        return True, True

    def _dead_letter(self, r: InFlight, reason: str, dead: list[DeadLetter]) -> None:
        if not self.config.dead_letter_topic:
            r.move(ARCHIVED, member_id=None, lock_until_ms=0)
            return
        r.move(DEAD_LETTER_PENDING, member_id=None, lock_until_ms=0, reason=reason)
        dead.append(DeadLetter(r.first, r.last, r.delivery_count, reason))

    def dead_lettered(self, first: int, last: int) -> Changes:
        """The dead letters of ``first``..``last`` are written: archive them."""
        i, j = self.ranges.slice(first, last)
        changed = False
        for r in self.ranges.items[i:j]:
            if r.state == DEAD_LETTER_PENDING:
                r.move(ARCHIVED, reason="")
                changed = True
        self.ranges.coalesce(i, j)
        self._advance()
        return Changes(dirty=changed)

    def skip_to(self, offset: int) -> Changes:
        """The log no longer has the records below ``offset`` (retention, DeleteRecords):
        forget them, whatever their state (a member's later acknowledgement of one gets
        INVALID_RECORD_STATE)."""
        if offset <= self.start_offset:
            return NO_CHANGES
        items = self.ranges.items
        if items:
            del items[:self.ranges.split_at(offset)]
        self.start_offset = offset
        self.end_offset = max(self.end_offset, offset)
        self._advance()
        return Changes(dirty=True)

    # ------------------------------------------------------------- locks and members

    def expire_locks(self, now_ms: int) -> Changes:
        """Locks past their deadline: the records are available at once (Kafka's), or dead
        letters once the delivery limit is reached."""
        return self._release_where(lambda r: r.lock_until_ms <= now_ms)

    def release_member(self, member_id: str) -> Changes:
        """The member left or was fenced: its records as if their locks expired."""
        return self._release_where(lambda r: r.member_id == member_id)

    def _release_where(self, which) -> Changes:
        dead: list[DeadLetter] = []
        released = False
        limit = self.config.delivery_count_limit
        for r in self.ranges.items:
            if r.state != ACQUIRED or not which(r):
                continue
            if r.delivery_count >= limit:
                self._dead_letter(r, REASON_LIMIT, dead)
            else:
                r.move(AVAILABLE, member_id=None, lock_until_ms=0, available_at_ms=0)
                released = True
        if not dead and not released:
            return NO_CHANGES
        self.ranges.coalesce(0, len(self.ranges))
        self._advance()
        return Changes(True, tuple(dead), released)

    def next_lock_deadline(self) -> int | None:
        times = [r.lock_until_ms for r in self.ranges.items if r.state == ACQUIRED]
        return min(times) if times else None

    def _advance(self) -> None:
        start = self.ranges.pop_finished_prefix()
        if start is not None:
            self.start_offset = start
        if not self.ranges.items:
            self.start_offset = self.end_offset = max(self.start_offset, self.end_offset)

    # ----------------------------------------------------------------------- describe

    def describe(self, high_watermark: int, now_ms: int) -> Description:
        counts = Counter()
        deliveries: Counter = Counter()
        for r in self.ranges.items:
            n = r.count
            if r.state == AVAILABLE:
                counts["delayed" if r.available_at_ms > now_ms else "available"] += n
            else:
                counts[r.state] += n
            if r.state not in FINISHED and r.delivery_count > 0:
                deliveries[r.delivery_count] += n
        unseen = max(0, high_watermark - self.end_offset)
        done = counts[ACKNOWLEDGED] + counts[ARCHIVED]
        lag = max(0, high_watermark - self.start_offset - done)
        return Description(
            start_offset=self.start_offset,
            end_offset=self.end_offset,
            high_watermark=high_watermark,
            lag=lag,
            available=counts["available"] + unseen,
            delayed=counts["delayed"],
            acquired=counts[ACQUIRED],
            acknowledged=counts[ACKNOWLEDGED],
            archived=counts[ARCHIVED],
            dead_lettered=counts[DEAD_LETTER_PENDING],
            delivery_counts=tuple(sorted(deliveries.items())),
        )
