"""The processors of windowed aggregations and of ``suppress`` (docs/streams.md "Windows,
suppression and joins"). The DSL side (``windowed.py``) adds them to a topology.

One processor instance per task; the task's thread owns it. Stream time is the task's
(``context.stream_time``, which already includes the record being processed). Every
aggregation forwards ``Change(new, old)`` keyed by :class:`~rillet.streams.api.Windowed`.

* Tumbling/hopping (:class:`TimeWindowAggregateNode`): each window of the record that is
  still open (end > stream time - grace) is updated; a record none of whose windows is open
  is late: dropped, counted (``dropped``) and logged.
* Sliding (:class:`SlidingWindowAggregateNode`): Kafka's windows (see windows.py). Besides
  the aggregates (store ``name``) the node keeps the accepted records of the last
  ``2 * time_difference + grace`` ms (store ``name-records``), so that a window created
  after its records arrived is the fold of exactly those records.
* Sessions (:class:`SessionWindowAggregateNode`): a record merges the sessions within the
  gap, except sessions that are already final (see ``SessionWindows.final_time``: a final
  session is never reopened, so a suppressed final result is never contradicted).
* :class:`SuppressNode`: buffers each window's latest value in a (logged) window or session
  store and forwards it once, when the window closes; restart-safe because the buffer is
  the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from .api import Change, Processor, PunctuationType, Record, Window, Windowed, new_record
from .processors import StoreNode
from .windows import HoppingWindows, SessionWindows, SlidingWindows, merge_sessions


class Drops:
    """Counts the records a node drops and logs them (warning at the 1st, 2nd, 4th, 8th
    ... drop, so a flood of late records does not flood the log)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.count = 0
        self.by_reason: dict[str, int] = {}

    def drop(self, context: Any, record: Record, reason: str) -> None:
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if self.count & (self.count - 1) == 0:
            logger.bind(node=self.node, task=str(context.task_id)).warning(
                "{node}: dropped a record ({reason}; key={key!r}, timestamp={ts}, topic={topic}, "
                "partition={p}, offset={o}); {n} dropped so far", node=self.node,
                reason=reason, key=record.key, ts=record.timestamp, topic=context.topic,
                p=context.partition, o=context.offset, n=self.count)


class _WindowedNode(StoreNode):
    what = "windowed aggregation"

    def __init__(self, store: str, initializer: Callable[[], Any],
                 aggregator: Callable[[Any, Any, Any], Any]) -> None:
        super().__init__(store)
        self.initializer = initializer
        self.aggregator = aggregator
        self.drops = Drops(f"{self.what} {store}")
        self._expired_at = -1

    @property
    def dropped(self) -> int:
        return self.drops.count

    def _stream_time(self, record: Record) -> int:
        return max(self.context.stream_time, record.timestamp)

    def _maybe_expire(self, stores: tuple[Any, ...], stream_time: int, every: int) -> None:
        if stream_time - self._expired_at >= every:
            self._expired_at = stream_time
            for s in stores:
                s.expire(stream_time)


class TimeWindowAggregateNode(_WindowedNode):
    """Tumbling and hopping windows (Kafka's ``KStreamWindowAggregate``).

    With a record cache (``context.cache_entries`` > 0, as the key-value aggregation's in
    processors.py) only a window's latest update reaches the store's backend, the
    changelog and the children, at the next commit or when the cache is full:
    ``Change(latest, what the children saw last)``."""

    def __init__(self, store: str, windows: HoppingWindows, initializer: Callable[[], Any],
                 aggregator: Callable[[Any, Any, Any], Any]) -> None:
        super().__init__(store, initializer, aggregator)
        self.windows = windows
        # (key, window start) -> (value the children saw, latest, timestamp, headers, window)
        self._cache: dict[tuple[Any, int], tuple[Any, Any, int, Any, Window]] = {}
        self._limit = 0

    def init(self, context: Any) -> None:
        super().init(context)
        self._limit = getattr(context, "cache_entries", 0)
        self._grace = self.windows.grace_ms
        self._expire_every = max(1, self.windows.retention_ms() // 2)
        w = self.windows
        # when the size is a multiple of the advance (tumbling windows among them),
        # windows_for(ts) depends on ts // advance only: the windows of the last few
        # hundred slots are kept, so a record makes no Window and no list (a frozen
        # dataclass's constructor is ~0.5 us); 0: not so, windows_for every time
        self._advance = w.advance_ms if w.size_ms % w.advance_ms == 0 else 0
        self._windows_of: dict[int, tuple[Window, ...]] = {}

    def _windows_for(self, ts: int) -> tuple[Window, ...]:
        if not self._advance:
            return tuple(self.windows.windows_for(ts))
        slot = ts // self._advance
        known = self._windows_of
        ws = known.get(slot)
        if ws is None:
            if len(known) >= 512:
                known.clear()
            ws = known[slot] = tuple(self.windows.windows_for(ts))
        return ws

    def process(self, record: Record) -> None:
        key, value, ts = record.key, record.value, record.timestamp
        if key is None or value is None:
            self.drops.drop(self.context, record, "None key or value")
            return
        stream_time = self.context.stream_time  # (includes this record; max for drivers
        if ts > stream_time:                     # that set it after)
            stream_time = ts
        close = stream_time - self._grace
        updated = False
        # (an unhashable key, e.g. a dict from a JSON serde, is not cached)
        cache = self._cache if self._limit and key.__hash__ is not None else None
        ws = self._windows_of.get(ts // self._advance) if self._advance else None
        for w in self._windows_for(ts) if ws is None else ws:
            if w.end <= close:
                continue
            updated = True
            if cache is not None:
                hit = cache.get((key, w.start))
                if hit is None:
                    old = seen = self.store.fetch(key, w.start)
                else:
                    seen, old = hit[0], hit[1]
                    # the aggregate's timestamp is the max of its records' (Kafka's rule):
                    # suppress closes windows by the timestamps it is sent, which a late
                    # record merged into this entry must not pull back
                    ts = max(ts, hit[2])
                    del cache[(key, w.start)]  # flushed in order of last update
                new = self.aggregator(key, value, self.initializer() if old is None else old)
                self.store.cache_put(key, new, w.start)
                cache[(key, w.start)] = (seen, new, ts, record.headers, w)
                continue
            old = self.store.fetch(key, w.start)
            new = self.aggregator(key, value, self.initializer() if old is None else old)
            self.store.put(key, new, w.start)
            self._forward(new_record((Windowed(key, w), Change(new, old), ts, record.headers)))
        if cache is not None and len(cache) >= self._limit:
            self.flush_cache()
        if not updated:
            self.drops.drop(self.context, record, "late: its windows are closed")
        if stream_time - self._expired_at >= self._expire_every:
            self._expired_at = stream_time
            self.store.expire(stream_time)


    def flush_cache(self) -> None:
        """Write each cached window's latest aggregate to the store and its changelog,
        then forward it."""
        if not self._cache:
            return
        entries = self._cache
        self._cache = {}
        self.store.flush_cache()
        forward = self._forward
        for (key, _), (seen, new, ts, headers, w) in entries.items():
            forward(new_record((Windowed(key, w), Change(new, seen), ts, headers)))


class _CachingNode(_WindowedNode):
    """A windowed aggregation with the record cache (``context.cache_entries`` > 0): each
    updated window's latest aggregate goes to the store with ``cache_put`` (read back by
    the store's reads) and to ``_cache``, keyed by ``_cache_key``, as ``(what the children
    saw, latest, timestamp, headers, windowed key)``; ``flush_cache`` (before every
    commit, or when the cache is full) writes the store and forwards ``Change(latest,
    seen)`` per window, skipping a window made and removed in between (a merged session)."""

    def init(self, context: Any) -> None:
        super().init(context)
        self._limit = getattr(context, "cache_entries", 0)
        self._cache: dict[Any, tuple[Any, Any, int, Any, Windowed]] = {}

    def _cached(self, key: Any) -> bool:
        return bool(self._limit) and key.__hash__ is not None

    def _remember(self, cache_key: Any, wk: Windowed, new: Any, old: Any, ts: int,
                  headers: Any) -> None:
        hit = self._cache.pop(cache_key, None)  # flushed in order of last update
        if hit is not None:
            ts = max(ts, hit[2])  # the max of the merged records' timestamps (Kafka's rule)
        self._cache[cache_key] = (old if hit is None else hit[0], new, ts, headers, wk)

    def _full(self) -> None:
        if len(self._cache) >= self._limit:
            self.flush_cache()

    def flush_cache(self) -> None:
        if not self._cache:
            return
        entries = self._cache
        self._cache = {}
        self.store.flush_cache()
        forward = self.context.forward
        for seen, new, ts, headers, wk in entries.values():
            if new is None and seen is None:
                continue
            forward(new_record((wk, Change(new, seen), ts, headers)))


class SlidingWindowAggregateNode(_CachingNode):
    """Kafka's sliding windows (``KStreamSlidingWindowAggregate``'s windows and closing
    rules). ``records``: the window store (with duplicates) of the accepted records. With
    the record cache (``_CachingNode``) the aggregates store reads its ranges through the
    cache (``ranged_cache``)."""

    def __init__(self, store: str, records: str, windows: SlidingWindows,
                 initializer: Callable[[], Any],
                 aggregator: Callable[[Any, Any, Any], Any]) -> None:
        super().__init__(store, initializer, aggregator)
        self.records_name = records
        self.windows = windows

    def init(self, context: Any) -> None:
        super().init(context)
        self.records = context.store(self.records_name)
        if self._limit:
            self.store.ranged_cache()

    def process(self, record: Record) -> None:
        key, value, ts = record.key, record.value, record.timestamp
        if key is None or value is None:
            self.drops.drop(self.context, record, "None key or value")
            return
        d = self.windows.time_difference_ms
        stream_time = self._stream_time(record)
        close = stream_time - self.windows.grace_ms
        if ts + d < close:
            self.drops.drop(self.context, record, "late: its windows are closed")
            return
        existing = dict(self.store.fetch_range(key, max(0, ts - d), ts + 1))
        nearby = list(self.records.fetch_range(key, max(0, ts - 2 * d - 1), ts + d + 1))
        done: set[int] = set()
        # 1. the windows that exist and hold ts
        for start, agg in existing.items():
            if start <= ts <= start + d:
                done.add(start)
                self._update(key, value, ts, start, agg, close, record)
        # 2. the record's left window [ts - d, ts] ([0, d] for an early record)
        left = max(0, ts - d)
        if left not in done and left not in existing:
            done.add(left)
            self._create(key, left, nearby, close, record, include=True)
        # 3. the right window of the previous record, if it now holds a record (this one)
        prev = max((t for t, _ in nearby if t < ts), default=None)
        if prev is not None and prev + 1 + d >= ts:
            start = prev + 1
            if start not in done and start not in existing:
                done.add(start)
                self._create(key, start, nearby, close, record, include=True)
        # 4. the record's right window, if a later record falls in it
        start = ts + 1
        if start not in existing and any(ts < t <= ts + 1 + d for t, _ in nearby):
            self._create(key, start, nearby, close, record, include=False)
        self.records.put(key, value, ts)
        if self._cache:
            self._full()
        self._maybe_expire((self.store, self.records), stream_time,
                           max(1, self.windows.retention_ms() // 2))

    def _write(self, key: Any, start: int, w: Window, new: Any, old: Any, ts: int,
               record: Record) -> None:
        wk = Windowed(key, w)
        if self._cached(key):
            self.store.cache_put(key, new, start)
            self._remember((key, start), wk, new, old, ts, record.headers)
            return
        self.store.put(key, new, start)
        self.context.forward(new_record((wk, Change(new, old), ts, record.headers)))

    def _window(self, start: int) -> Window:
        return Window(start, start + self.windows.time_difference_ms)

    def _update(self, key: Any, value: Any, ts: int, start: int, old: Any, close: int,
                record: Record) -> None:
        w = self._window(start)
        if w.end < close:  # inclusive end: open while end >= stream time - grace
            return
        new = self.aggregator(key, value, self.initializer() if old is None else old)
        self._write(key, start, w, new, old, ts, record)

    def _create(self, key: Any, start: int, nearby: list[tuple[int, Any]], close: int,
                record: Record, *, include: bool) -> None:
        """A new window: the fold of the accepted records it holds (all arrived while it
        was open, since it is open now), plus this record if ``include``."""
        w = self._window(start)
        if w.end < close:  # inclusive end: open while end >= stream time - grace
            return
        agg = self.initializer()
        last = -1
        for t, v in nearby:
            if w.start <= t <= w.end:
                agg = self.aggregator(key, v, agg)
                last = max(last, t)
        if include:
            agg = self.aggregator(key, record.value, agg)
            last = record.timestamp
        self._write(key, start, w, agg, None, last, record)


class SessionWindowAggregateNode(_CachingNode):
    """Session windows (Kafka's ``KStreamSessionWindowAggregate``): ``merger(key, agg1,
    agg2)`` combines the aggregates of merged sessions. A merged-away session is forwarded
    as ``Change(None, old)`` (a delete), with its end as timestamp; the merged session with
    its end as timestamp."""

    def __init__(self, store: str, windows: SessionWindows, initializer: Callable[[], Any],
                 aggregator: Callable[[Any, Any, Any], Any],
                 merger: Callable[[Any, Any, Any], Any]) -> None:
        super().__init__(store, initializer, aggregator)
        self.windows = windows
        self.merger = merger

    def process(self, record: Record) -> None:
        key, value, ts = record.key, record.value, record.timestamp
        if key is None or value is None:
            self.drops.drop(self.context, record, "None key or value")
            return
        gap = self.windows.inactivity_gap_ms
        stream_time = self._stream_time(record)
        found = [(wk, agg) for wk, agg in self.store.find_sessions(key, ts - gap, ts + gap)
                 if self.windows.final_time(wk.window) > stream_time]
        merged = merge_sessions([wk.window for wk, _ in found], ts)
        if self.windows.is_late(merged, stream_time):
            self.drops.drop(self.context, record, "late: its session is closed")
            return
        agg = self.initializer()
        old = None
        for wk, a in found:
            agg = self.merger(key, agg, a)
            if wk.window == merged:
                old = a
        cached = self._cached(key)
        for wk, a in found:
            if wk.window != merged:
                if cached:
                    self.store.cache_put(wk, None)
                    self._remember(wk, wk, None, a, wk.window.end, record.headers)
                    continue
                self.store.remove(wk)
                self.context.forward(new_record((wk, Change(None, a), wk.window.end,
                                                 record.headers)))
        new = self.aggregator(key, value, agg)
        session = Windowed(key, merged)
        if cached:
            self.store.cache_put(session, new)
            self._remember(session, session, new, old, merged.end, record.headers)
            self._full()
        else:
            self.store.put(session, new)
            self.context.forward(new_record((session, Change(new, old), merged.end,
                                             record.headers)))
        self._maybe_expire((self.store,), stream_time,
                           max(1, self.windows.retention_ms() // 2))


class SuppressNode(Processor):
    """``suppress(until_window_closes=True)``: keeps the latest value of each open window in
    ``buffer`` (a window store for time and sliding windows, a session store for sessions)
    and forwards ``Change(final, None)`` once the window closes (``due``: stream time >=
    end + grace; sessions: ``SessionWindows.final_time``), with the window's last possible
    timestamp (time windows ``end - 1``, sliding and session windows ``end``). Deletes
    (a merged-away session) leave the buffer. Due windows go out in order of closing, on
    the next record and on every stream-time punctuation."""

    def __init__(self, buffer: str, windows: HoppingWindows | SlidingWindows | SessionWindows
                 ) -> None:
        self.buffer_name = buffer
        self.windows = windows
        self.sessions = isinstance(windows, SessionWindows)
        self._next_due: int | None = None  # None: unknown (scan the buffer)

    def init(self, context: Any) -> None:
        super().init(context)
        self.buffer = context.store(self.buffer_name)
        self._next_due = None
        # Behind a record cache the aggregation's updates arrive at its flush, after the
        # task's stream time has moved on: a window is then due by the time of the updates
        # this node has seen (Kafka's suppress: its observed stream time), or a final
        # result could go out before the window's last update reached the buffer. The
        # caches flush in order of last update, so no update is overtaken by one that
        # closes its window.
        self._observed = -1 if getattr(context, "cache_entries", 0) else None
        context.schedule(1, PunctuationType.STREAM_TIME, self._punctuate)

    def _punctuate(self, stream_time: int) -> None:
        if self._observed is not None:
            stream_time = min(stream_time, self._observed)
        self._emit_due(stream_time)

    def _due(self, w: Window) -> int:
        if self.sessions:
            return self.windows.final_time(w)  # type: ignore[union-attr]
        if isinstance(self.windows, SlidingWindows):
            return w.end + self.windows.grace_ms + 1  # inclusive end
        return w.end + self.windows.grace_ms

    def _timestamp(self, w: Window) -> int:
        return w.end - 1 if isinstance(self.windows, HoppingWindows) else w.end

    def process(self, record: Record) -> None:
        if self._observed is None:
            self._emit_due(max(self.context.stream_time, record.timestamp))
        else:
            if record.timestamp > self._observed:
                self._observed = record.timestamp
            self._emit_due(self._observed)
        wk: Windowed = record.key
        change: Change = record.value
        if not isinstance(wk, Windowed) or not isinstance(change, Change):
            raise TypeError("suppress needs a windowed table (keys Windowed, values Change); "
                            f"got key {wk!r}, value {change!r}")
        if change.new is None:
            if self.sessions:
                self.buffer.remove(wk)
            else:
                self.buffer.put(wk.key, None, wk.window.start)
            return
        if self.sessions:
            self.buffer.put(wk, change.new)
        else:
            self.buffer.put(wk.key, change.new, wk.window.start)
        due = self._due(wk.window)
        if self._next_due is not None and due < self._next_due:
            self._next_due = due

    def _emit_due(self, stream_time: int) -> None:
        if self._next_due is not None and stream_time < self._next_due:
            return
        entries = list(self.buffer.all())
        due = [(wk, v) for wk, v in entries if self._due(wk.window) <= stream_time]
        due.sort(key=lambda e: (self._due(e[0].window), e[0].window.start))
        for wk, v in due:
            if self.sessions:
                self.buffer.remove(wk)
            else:
                self.buffer.put(wk.key, None, wk.window.start)
            self.context.forward(Record(wk, Change(v, None), self._timestamp(wk.window)))
        rest = [self._due(wk.window) for wk, _ in entries if self._due(wk.window) > stream_time]
        self._next_due = min(rest, default=1 << 62)


__all__ = [
    "Drops", "SessionWindowAggregateNode", "SlidingWindowAggregateNode", "SuppressNode",
    "TimeWindowAggregateNode",
]
