"""In-flight records of one share-partition as offset RANGES (Kafka's in-flight batches).

A share-partition tracks every offset from its start offset (SPSO) up to its end offset
(exclusive: offsets at or past it were never acquired and are implicitly AVAILABLE with
delivery count 0). ``Ranges`` keeps them as a sorted list of contiguous, non-overlapping
``InFlight`` ranges whose offsets share one state, delivery count, holder, lock deadline,
availability time and reason. A range is split only where acknowledgements (or partial
acquisitions) differ inside it, and neighbours that became equal are merged again, so a
consumer that acknowledges what it got as a whole keeps the list a few entries long.

Record states (the numbers are Kafka's RecordState where Kafka has one, and the wire's
``RECORD_*`` constants in transport/protocol.py):

| state | meaning | legal next states |
|---|---|---|
| AVAILABLE (0) | may be acquired (once ``available_at_ms`` passed) | ACQUIRED |
| ACQUIRED (1) | locked by ``member_id`` until ``lock_until_ms`` (memory only) | ACKNOWLEDGED, AVAILABLE, ARCHIVED, DEAD_LETTER_PENDING, ACQUIRED (renew) |
| ACKNOWLEDGED (2) | accepted: done, never delivered again | (none) |
| ARCHIVED (4) | rejected / past the delivery limit, dead letter written: done | (none) |
| DEAD_LETTER_PENDING (5) | rillet: to archive once its dead-letter write is confirmed | ARCHIVED |

``TRANSITIONS`` is that table as data; ``InFlight.move`` checks it and raises
``IllegalTransition`` leaving the range unchanged. Not thread-safe: the owning actor's thread.
"""

from __future__ import annotations

from bisect import bisect_right

AVAILABLE = 0
ACQUIRED = 1
ACKNOWLEDGED = 2
ARCHIVED = 4
DEAD_LETTER_PENDING = 5

STATE_NAMES = {
    AVAILABLE: "AVAILABLE",
    ACQUIRED: "ACQUIRED",
    ACKNOWLEDGED: "ACKNOWLEDGED",
    ARCHIVED: "ARCHIVED",
    DEAD_LETTER_PENDING: "DEAD_LETTER_PENDING",
}
FINISHED = frozenset({ACKNOWLEDGED, ARCHIVED})
TRANSITIONS: dict[int, frozenset[int]] = {
    AVAILABLE: frozenset({ACQUIRED}),
    ACQUIRED: frozenset({ACKNOWLEDGED, AVAILABLE, ARCHIVED, DEAD_LETTER_PENDING, ACQUIRED}),
    ACKNOWLEDGED: frozenset(),
    ARCHIVED: frozenset(),
    DEAD_LETTER_PENDING: frozenset({ARCHIVED}),
}


class IllegalTransition(Exception):
    """A state change the table does not allow (a bug in the caller: nothing changed)."""


class InFlight:
    """Offsets ``first``..``last`` (inclusive) in one state. Times are ms since the epoch."""

    __slots__ = (
        "first", "last", "state", "delivery_count", "member_id", "lock_until_ms",
        "available_at_ms", "reason",
    )

    def __init__(
        self,
        first: int,
        last: int,
        state: int,
        delivery_count: int,
        member_id: str | None = None,
        lock_until_ms: int = 0,
        available_at_ms: int = 0,
        reason: str = "",
    ) -> None:
        self.first = first
        self.last = last
        self.state = state
        self.delivery_count = delivery_count
        self.member_id = member_id
        self.lock_until_ms = lock_until_ms
        self.available_at_ms = available_at_ms
        self.reason = reason

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def key(self) -> tuple:
        """What two neighbours must share to be merged."""
        return (self.state, self.delivery_count, self.member_id, self.lock_until_ms,
                self.available_at_ms, self.reason)

    def move(self, state: int, **fields: object) -> None:
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransition(
                f"offsets {self.first}..{self.last}: {STATE_NAMES[self.state]} -> "
                f"{STATE_NAMES.get(state, state)} is not a legal transition"
            )
        self.state = state
        for name, value in fields.items():
            setattr(self, name, value)

    def copy(self, first: int, last: int) -> InFlight:
        return InFlight(first, last, self.state, self.delivery_count, self.member_id,
                        self.lock_until_ms, self.available_at_ms, self.reason)

    def __repr__(self) -> str:
        return (f"InFlight({self.first}..{self.last} {STATE_NAMES[self.state]} "
                f"dc={self.delivery_count} member={self.member_id})")


def _first(r: InFlight) -> int:
    return r.first


class Ranges:
    """The sorted, contiguous list of ``InFlight`` ranges of one share-partition."""

    __slots__ = ("items",)

    def __init__(self, items: list[InFlight] | None = None) -> None:
        self.items: list[InFlight] = items or []

    def __len__(self) -> int:
        return len(self.items)

    def index_of(self, offset: int) -> int:
        """Index of the range holding ``offset`` (-1 below the first; may be past the end)."""
        return bisect_right(self.items, offset, key=_first) - 1

    def split_at(self, offset: int) -> int:
        """Make a range start at ``offset`` (inside the list); its index."""
        i = self.index_of(offset)
        if i < 0:
            return 0
        r = self.items[i]
        if r.first == offset:
            return i
        if offset > r.last:
            return i + 1
        tail = r.copy(offset, r.last)
        r.last = offset - 1
        self.items.insert(i + 1, tail)
        return i + 1

    def slice(self, first: int, last: int) -> tuple[int, int]:
        """Split so that ranges [i, j) cover exactly ``first``..``last``; (i, j)."""
        i = self.split_at(first)
        return i, self.split_at(last + 1)

    def covering(self, first: int, last: int):
        """The ranges that hold any of ``first``..``last``, without splitting."""
        i = max(0, self.index_of(first))
        items = self.items
        while i < len(items) and items[i].first <= last:
            if items[i].last >= first:
                yield items[i]
            i += 1

    def coalesce(self, i: int, j: int) -> None:
        """Merge equal neighbours among ranges [i - 1, j + 1)."""
        items = self.items
        k = min(j, len(items) - 1)
        lo = max(i, 1)
        while k >= lo:
            a, b = items[k - 1], items[k]
            if a.last + 1 == b.first and a.key() == b.key():
                a.last = b.last
                del items[k]
            k -= 1

    def pop_finished_prefix(self) -> int | None:
        """Drop the leading ACKNOWLEDGED/ARCHIVED ranges; the new start offset, or None."""
        items = self.items
        n = 0
        while n < len(items) and items[n].state in FINISHED:
            n += 1
        if n == 0:
            return None
        start = items[n - 1].last + 1
        del items[:n]
        return start
