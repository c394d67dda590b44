"""A ShareConsumer's acknowledgement bookkeeping (no I/O; used from the application thread).

Per partition, the records handed out and not yet finally acknowledged are kept as the
acquired RANGES the broker sent (``AcquiredRecords``) plus the offsets inside them that had
no record (gaps: control batches, compacted-away offsets), not as one object per record: in
implicit mode a poll's records are accepted as whole ranges, so acknowledging 500 records
costs a handful of tuples. Only when the application acknowledges a record explicitly is
that partition's outstanding set materialised as ``{offset: delivery_count}``.

Acknowledgements leave as ranges (``AcknowledgementBatch``): consecutive offsets with the
same release delay and reject reason form one batch, whose ``acknowledge_types`` is a single
value when all are the same type, else one per offset (Kafka's format; gaps are ACK_GAP).

Renew (KIP-1222) keeps the lock: it is sent at once but the record stays outstanding (it is
not accepted implicitly, and in explicit mode it does not block the next poll) until the
application acknowledges it finally.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rillet.errors import IllegalStateError
from rillet.records import TopicPartition
from rillet.transport.protocol import (
    ACK_ACCEPT,
    ACK_GAP,
    ACK_REJECT,
    ACK_RELEASE,
    ACK_RENEW,
    AcknowledgementBatch,
)

# one pending acknowledgement: (offset, type, delay_ms, reason)
Ack = tuple[int, int, int, str]


@dataclass
class _Outstanding:
    """Records of one partition handed out and not finally acknowledged."""

    ranges: list[tuple[int, int]] = field(default_factory=list)  # acquired, sorted
    gaps: set[int] = field(default_factory=set)  # offsets in ranges with no record
    offsets: dict[int, int] | None = None  # materialised: offset -> delivery count
    renewed: set[int] = field(default_factory=set)


def to_batches(acks: Iterable[Ack]) -> tuple[AcknowledgementBatch, ...]:
    """Sorted acknowledgements merged into ranges (see the module doc)."""
    out: list[AcknowledgementBatch] = []
    run: list[Ack] = []

    def flush() -> None:
        if not run:
            return
        types = tuple(a[1] for a in run)
        if all(t == types[0] for t in types):
            types = types[:1]
        out.append(AcknowledgementBatch(first_offset=run[0][0], last_offset=run[-1][0],
                                        acknowledge_types=types, delay_ms=run[0][2],
                                        reason=run[0][3]))
        run.clear()

    for a in sorted(acks):
        if run and (a[0] != run[-1][0] + 1 or a[2:] != run[-1][2:]):
            flush()
        run.append(a)
    flush()
    return tuple(out)


class Acknowledgements:
    """What this consumer holds and what it owes the brokers. Not thread-safe (app thread)."""

    def __init__(self, explicit: bool) -> None:
        self.explicit = explicit
        self.outstanding: dict[TopicPartition, _Outstanding] = {}
        self.pending: dict[TopicPartition, list[Ack]] = {}  # to send with the next request
        self.pending_ranges: dict[TopicPartition, list[AcknowledgementBatch]] = {}

    # -- delivery ---------------------------------------------------------------------------

    def delivered(self, tp: TopicPartition, first: int, last: int,
                  record_offsets: Sequence[int]) -> None:
        """The records at ``record_offsets`` (sorted, within [first, last]; a range when
        there is no gap) were handed out from acquired range [first, last]."""
        o = self.outstanding.get(tp)
        if o is None:
            o = self.outstanding[tp] = _Outstanding()
        gaps: list[int] = []
        if len(record_offsets) != last - first + 1:
            present = set(record_offsets)
            gaps = [x for x in range(first, last + 1) if x not in present]
        if o.offsets is not None:
            o.offsets.update(dict.fromkeys(record_offsets, 0))
            if gaps:
                self.pending.setdefault(tp, []).extend((x, ACK_GAP, -1, "") for x in gaps)
            return
        o.gaps.update(gaps)
        bisect.insort(o.ranges, (first, last))

    def holds(self, tp: TopicPartition, offset: int) -> bool:
        o = self.outstanding.get(tp)
        if o is None:
            return False
        if o.offsets is not None:
            return offset in o.offsets
        i = bisect.bisect_right(o.ranges, (offset, float("inf"))) - 1
        return i >= 0 and o.ranges[i][0] <= offset <= o.ranges[i][1] and offset not in o.gaps

    def _materialise(self, tp: TopicPartition, o: _Outstanding) -> dict[int, int]:
        if o.offsets is None:
            o.offsets = {x: 0 for a, b in o.ranges for x in range(a, b + 1) if x not in o.gaps}
            gaps = [(x, ACK_GAP, -1, "") for x in sorted(o.gaps)]
            if gaps:
                self.pending.setdefault(tp, []).extend(gaps)
            o.ranges, o.gaps = [], set()
        return o.offsets

    # -- the application's acknowledgements -------------------------------------------------

    def acknowledge(self, tp: TopicPartition, offset: int, kind: int, delay_ms: int,
                    reason: str) -> None:
        """Record one acknowledgement (validated by the caller for type/delay/reason)."""
        if not self.holds(tp, offset):
            raise IllegalStateError(
                f"record {tp.topic}-{tp.partition}@{offset} is not held by this consumer "
                f"(never delivered to it, or already acknowledged)")
        o = self.outstanding[tp]
        offsets = self._materialise(tp, o)
        self.pending.setdefault(tp, []).append((
            offset, kind, delay_ms if kind == ACK_RELEASE else -1,
            reason if kind == ACK_REJECT else ""))
        if kind == ACK_RENEW:
            o.renewed.add(offset)
            return
        del offsets[offset]
        o.renewed.discard(offset)
        if not offsets:
            del self.outstanding[tp]

    # -- finishing a poll ---------------------------------------------------------------------

    def unacknowledged(self) -> int:
        """Records of earlier polls still owed a final acknowledgement (renewed excluded)."""
        n = 0
        for o in self.outstanding.values():
            if o.offsets is not None:
                n += len(o.offsets) - len(o.renewed)
            else:
                n += sum(b - a + 1 for a, b in o.ranges) - len(o.gaps)
        return n

    def settle(self) -> None:
        """Before a poll, commit or close: implicit mode accepts everything outstanding
        (renewed records excluded); explicit mode only checks (``check_all``)."""
        if self.explicit:
            return
        for tp in list(self.outstanding):
            o = self.outstanding[tp]
            if o.offsets is None:
                ranges = self.pending_ranges.setdefault(tp, [])
                for a, b in o.ranges:
                    ranges.extend(_range_batches(a, b, o.gaps))
                del self.outstanding[tp]
                continue
            keep = {x: c for x, c in o.offsets.items() if x in o.renewed}
            self.pending.setdefault(tp, []).extend(
                (x, ACK_ACCEPT, -1, "") for x in o.offsets if x not in o.renewed)
            if keep:
                o.offsets = keep
            else:
                del self.outstanding[tp]

    def check_all(self) -> None:
        """Explicit mode, before a poll: every record of earlier polls must be acknowledged
        (renewed ones excepted)."""
        n = self.unacknowledged()
        if self.explicit and n:
            raise IllegalStateError(
                f"{n} record(s) of the last poll are not acknowledged; with "
                f"share.acknowledgement.mode=explicit every record must be acknowledged "
                f"before the next poll")

    def take(self, tps: Iterable[TopicPartition] | None = None
             ) -> dict[TopicPartition, tuple[AcknowledgementBatch, ...]]:
        """Remove and return the acknowledgements to send (of ``tps``, default all)."""
        wanted = set(self.pending) | set(self.pending_ranges) if tps is None else set(tps)
        out: dict[TopicPartition, tuple[AcknowledgementBatch, ...]] = {}
        for tp in wanted:
            batches = list(self.pending_ranges.pop(tp, ()))
            acks = self.pending.pop(tp, None)
            if acks:
                batches.extend(to_batches(acks))
            if batches:
                out[tp] = tuple(sorted(batches, key=lambda b: b.first_offset))
        return out

    def release_all(self) -> None:
        """Release (delay 0) every record still held, renewed ones too (closing)."""
        for tp in list(self.outstanding):
            o = self.outstanding[tp]
            for x in list(self._materialise(tp, o)):
                self.acknowledge(tp, x, ACK_RELEASE, 0, "")

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop what is held on these partitions (their leader moved: its locks are gone,
        the records come again)."""
        for tp in tps:
            self.outstanding.pop(tp, None)
            self.pending.pop(tp, None)
            self.pending_ranges.pop(tp, None)


def final_ranges(batches: Iterable[AcknowledgementBatch]) -> list[tuple[int, int]]:
    """The offset runs these batches accept or reject (final: no later delivery of them)."""
    out: list[tuple[int, int]] = []
    final = (ACK_ACCEPT, ACK_REJECT)
    for b in batches:
        types = b.acknowledge_types
        if len(types) == 1:
            if types[0] in final:
                out.append((b.first_offset, b.last_offset))
            continue
        start = None
        for o, kind in zip(range(b.first_offset, b.last_offset + 1), types, strict=False):
            if kind in final:
                if start is None:
                    start = o
            elif start is not None:
                out.append((start, o - 1))
                start = None
        if start is not None:
            out.append((start, b.first_offset + len(types) - 1))
    return out


class Settled:
    """Offsets this consumer accepted or rejected, acknowledged as durable, kept ``keep_s``.

    Acknowledgements carry no delivery attempt (KIP-932): if a record's lock expired while
    this consumer still held it (prefetched, or a slow batch), the leader may have handed it
    to this same member again before the acknowledgement arrived, and then the
    acknowledgement applied to that later delivery. The records of that later delivery, in
    a response already buffered or still in flight, are then done at the leader: handing
    them to the application would show an accepted record again. So they are dropped
    (``without``); after an accept or reject no later delivery can exist, so nothing else
    matches. A fetch in flight ends within ``keep_s`` (the request timeout and the long
    poll), after which nothing can carry them any more."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        # per partition, in the order added (so by time): (first, last, when)
        self._ranges: dict[TopicPartition, list[tuple[int, int, float]]] = {}
        self._highest: dict[TopicPartition, int] = {}  # the last settled offset kept

    def add(self, tp: TopicPartition, ranges: list[tuple[int, int]], now: float) -> None:
        if ranges:
            self._ranges.setdefault(tp, []).extend((a, b, now) for a, b in ranges)
            self._highest[tp] = max(self._highest.get(tp, -1), max(b for _, b in ranges))

    def prune(self, now: float) -> None:
        cutoff = now - self.keep_s
        for tp in list(self._ranges):
            ranges = self._ranges[tp]
            if ranges[0][2] > cutoff:
                continue  # the oldest is young enough: so are the rest
            i = 0
            while i < len(ranges) and ranges[i][2] <= cutoff:
                i += 1
            if i == len(ranges):
                del self._ranges[tp], self._highest[tp]
            else:
                del ranges[:i]
                self._highest[tp] = max(b for _, b, _ in ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def without(self, d):
        """``d`` (a ``Delivery``) as the deliveries of its offsets not settled here: ``[d]``
        when none is, fewer or split ranges when some are."""
        if d.first > self._highest.get(d.tp, -1):
            return [d]  # new records, past everything settled (the common case)
        ranges = self._ranges[d.tp]
        if not any(a <= d.last and b >= d.first for a, b, _ in ranges):
            return [d]
        pieces, pos = [], d.first
        for a, b, _ in sorted(ranges):
            if b < pos or a > d.last:
                continue
            if a > pos:
                pieces.append((pos, a - 1))
            pos = max(pos, b + 1)
        if pos <= d.last:
            pieces.append((pos, d.last))
        # a piece without records is acquired gaps: handed out, they are acknowledged as such
        return [type(d)(d.tp, a, b, [r for r in d.records if a <= r[2] <= b])
                for a, b in pieces]


def _range_batches(first: int, last: int, gaps: set[int]) -> list[AcknowledgementBatch]:
    if not gaps or not any(first <= g <= last for g in gaps):
        return [AcknowledgementBatch(first_offset=first, last_offset=last,
                                     acknowledge_types=(ACK_ACCEPT,))]
    return [AcknowledgementBatch(first_offset=first, last_offset=last, acknowledge_types=tuple(
        ACK_GAP if x in gaps else ACK_ACCEPT for x in range(first, last + 1)))]
