"""The processors of joins (joins.py adds them; docs/streams.md "Windows, suppression and
joins"). One instance per task, owned by the task's thread.

Stream-stream joins keep each side's records in a window store with duplicates (keyed by
the record key, the window start being the record's timestamp). A left or outer join also
keeps a marker store: for (key, timestamp), bit flags saying that the records of one side at
that key and time have joined (and so must not be emitted unmatched) or have already been
emitted unmatched (so a restart does not emit them twice). Records of one side with the
same key and timestamp join exactly the same records of the other side, so one flag serves
them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .api import Change, Processor, Record, new_record
from .windowed_nodes import Drops
from .windows import JoinWindows

JOINED = {"left": 1, "right": 2}
EMITTED = {"left": 4, "right": 8}
# Records of one side with the same key and timestamp share a marker (key, time). JOINED
# means "all of them joined" when a record of the other side joined the group, but a record
# that joined on arrival says nothing of an earlier or later duplicate that did not: the
# positions (arrival order within the group, as the window store returns them) of those
# unmatched duplicates are kept in the marker too, UNMATCHED_BITS bits per side.
UNMATCHED_SHIFT = {"left": 8, "right": 8 + 27}
UNMATCHED_BITS = 27


class StreamTableJoinNode(Processor):
    """A stream record looks up ``table`` (a key-value store) by key: inner emits
    ``joiner(v, tv)`` when the key is present, left also ``joiner(v, None)``. Records with
    a None key or value are dropped (counted), as Kafka's."""

    def __init__(self, table: str, joiner: Callable[[Any, Any], Any], how: str) -> None:
        self.table_name = table
        self.joiner = joiner
        self.left = how == "left"
        self.drops = Drops(f"stream-table join with {table}")

    @property
    def dropped(self) -> int:
        return self.drops.count

    def init(self, context: Any) -> None:
        super().init(context)
        self.table = context.store(self.table_name)

    def process(self, record: Record) -> None:
        if record.key is None or record.value is None:
            self.drops.drop(self.context, record, "None key or value")
            return
        other = self.table.get(record.key)
        if other is None and not self.left:
            return
        self.context.forward(record.with_(value=self.joiner(record.value, other)))


class StreamStreamJoinNode(Processor):
    """One side (``side``: "left" or "right") of a windowed stream-stream join: stores its
    record in ``this``, joins it with the open records of ``other`` within the window, and
    emits the unmatched records of the tracked sides (left join: left; outer: both) whose
    window has closed. ``joiner(left_value, right_value)`` whatever the side."""

    def __init__(self, side: str, this: str, other: str, markers: str | None,
                 windows: JoinWindows, joiner: Callable[[Any, Any], Any], how: str) -> None:
        self.side = side
        self.other_side = "right" if side == "left" else "left"
        self.this_name, self.other_name, self.markers_name = this, other, markers
        self.windows = windows
        self.joiner = joiner
        before, after = windows.before_ms, windows.after_ms
        assert after is not None
        # a left record at t joins right records in [t - before, t + after]; a right record
        # at t joins left records in [t - after, t + before]; a record's window closes at
        # its timestamp + the far end + grace
        self.reach = {"left": (before, after), "right": (after, before)}
        self.tracked = {"left": how in ("left", "outer"), "right": how == "outer"}
        self.drops = Drops(f"stream-stream join {this}")
        self._scanned = {"left": 0, "right": 0}  # below: every closed record was handled

    @property
    def dropped(self) -> int:
        return self.drops.count

    def init(self, context: Any) -> None:
        super().init(context)
        self.stores = {self.side: context.store(self.this_name),
                       self.other_side: context.store(self.other_name)}
        self.markers = context.store(self.markers_name) if self.markers_name else None

    def _close(self, side: str, ts: int) -> int:
        """The last stream time at which a record of ``side`` at ``ts`` may still join."""
        return ts + self.reach[side][1] + self.windows.grace_ms

    def process(self, record: Record) -> None:
        key, value, ts = record.key, record.value, record.timestamp
        if key is None or value is None:
            self.drops.drop(self.context, record, "None key or value")
            return
        stream_time = max(self.context.stream_time, ts)
        self._emit_unmatched(stream_time, record)
        if self._close(self.side, ts) < stream_time:
            self.drops.drop(self.context, record, "late: its join window is closed")
            return
        before, after = self.reach[self.side]
        other = self.other_side
        joined = False
        position = (sum(1 for _ in self.stores[self.side].fetch_range(key, ts, ts))
                    if self.tracked[self.side] else 0)
        for other_ts, other_value in self.stores[other].fetch_range(
                key, max(0, ts - before), ts + after):
            if self._close(other, other_ts) < stream_time:
                continue
            joined = True
            if self.tracked[other]:
                self._group_joined(key, other_ts, other)
            out = (self.joiner(value, other_value) if self.side == "left"
                   else self.joiner(other_value, value))
            self.context.forward(new_record((key, out, max(ts, other_ts), record.headers)))
        self.stores[self.side].put(key, value, ts)
        if self.tracked[self.side]:
            self._arrived(key, ts, position, joined)
        self._expire(stream_time)

    def _mark(self, key: Any, ts: int, flag: int) -> None:
        assert self.markers is not None
        flags = self.markers.fetch(key, ts) or 0
        if not flags & flag:
            self.markers.put(key, flags | flag, ts)

    def _group_joined(self, key: Any, ts: int, side: str) -> None:
        """A record of the other side joined every ``side`` record at (key, ts)."""
        assert self.markers is not None
        flags = self.markers.fetch(key, ts) or 0
        mask = ((1 << UNMATCHED_BITS) - 1) << UNMATCHED_SHIFT[side]
        new = (flags | JOINED[side]) & ~mask
        if new != flags:
            self.markers.put(key, new, ts)

    def _arrived(self, key: Any, ts: int, position: int, joined: bool) -> None:
        """This side's record number ``position`` at (key, ts) was stored; it joined on
        arrival or not (see UNMATCHED_SHIFT)."""
        assert self.markers is not None
        side, shift = self.side, UNMATCHED_SHIFT[self.side]
        flags = self.markers.fetch(key, ts) or 0
        if joined and not flags & JOINED[side]:
            # the earlier duplicates did not join: they stay unmatched
            earlier = (1 << min(position, UNMATCHED_BITS)) - 1
            flags |= JOINED[side] | (earlier << shift)
        elif not joined and flags & JOINED[side] and position < UNMATCHED_BITS:
            flags |= 1 << (shift + position)
        else:
            return
        self.markers.put(key, flags, ts)

    def _unmatched(self, flags: int, side: str, position: int) -> bool:
        if not flags & JOINED[side]:
            return True
        return position < UNMATCHED_BITS and bool(
            flags >> (UNMATCHED_SHIFT[side] + position) & 1)

    def _emit_unmatched(self, stream_time: int, record: Record) -> None:
        for side in ("left", "right"):
            if not self.tracked[side]:
                continue
            # records of `side` at ts <= last are closed: ts + far + grace < stream_time
            last = stream_time - self.reach[side][1] - self.windows.grace_ms - 1
            first = self._scanned[side]
            if last < first:
                continue
            due = sorted(self.stores[side].fetch_all(first, last),
                         key=lambda e: e[0].window.start)
            emitted: dict[Any, tuple[Any, int]] = {}
            positions: dict[Any, int] = {}  # arrival order within each (key, time) group
            for wk, value in due:
                group = (_hashable(wk.key), wk.window.start)
                position = positions[group] = positions.get(group, -1) + 1
                flags = self.markers.fetch(wk.key, wk.window.start) or 0  # type: ignore[union-attr]
                if flags & EMITTED[side] or not self._unmatched(flags, side, position):
                    continue
                out = self.joiner(value, None) if side == "left" else self.joiner(None, value)
                self.context.forward(new_record((wk.key, out, wk.window.start, record.headers)))
                emitted[(_hashable(wk.key), wk.window.start)] = (wk.key, wk.window.start)
            # flagged after all the records of a (key, time) went out: a crash in between
            # repeats them (at least once) rather than losing some
            for key, start in emitted.values():
                self._mark(key, start, EMITTED[side])
            self._scanned[side] = last + 1

    def _expire(self, stream_time: int) -> None:
        every = max(1, self.windows.retention_ms() // 2)
        if stream_time - getattr(self, "_expired_at", -1) >= every:
            self._expired_at = stream_time
            for s in self.stores.values():
                s.expire(stream_time)
            if self.markers is not None:
                self.markers.expire(stream_time)


def _hashable(key: Any) -> Any:
    try:
        hash(key)
        return key
    except TypeError:
        return repr(key)


class TableTableJoinNode(Processor):
    """One side of a table-table join: a ``Change(new, old)`` of this side's table becomes
    ``Change(result(new, other), result(old, other))`` where ``other`` is the other table's
    current value for the key (its store ``other``) and ``result`` is the join kind's
    ``joiner(l, r)`` or None (no row). Nothing is forwarded when both are None."""

    def __init__(self, side: str, other: str, joiner: Callable[[Any, Any], Any],
                 how: str) -> None:
        self.side = side
        self.other_name = other
        self.joiner = joiner
        self.how = how

    def init(self, context: Any) -> None:
        super().init(context)
        self.other = context.store(self.other_name)

    def _result(self, mine: Any, theirs: Any) -> Any:
        left, right = (mine, theirs) if self.side == "left" else (theirs, mine)
        if self.how == "inner":
            present = left is not None and right is not None
        elif self.how == "left":
            present = left is not None
        else:
            present = left is not None or right is not None
        return self.joiner(left, right) if present else None

    def process(self, record: Record) -> None:
        if record.key is None:
            return
        change = record.value
        theirs = self.other.get(record.key)
        new = self._result(change.new, theirs)
        old = self._result(change.old, theirs)
        if new is None and old is None:
            return
        self.context.forward(record.with_(value=Change(new, old)))


__all__ = ["StreamStreamJoinNode", "StreamTableJoinNode", "TableTableJoinNode"]
