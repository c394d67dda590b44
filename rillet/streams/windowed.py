"""Windowed aggregations and ``suppress`` in the DSL (docs/streams.md "Windows, suppression
and joins")::

    counts = (app.stream("orders", key_serde=serdes.String, value_serde=serdes.Json)
              .group_by_key()
              .window(TumblingWindows(60_000, grace_ms=10_000))
              .count(store="orders-per-minute"))
    counts.suppress().to_stream().map(lambda wk, n: (wk.key, n)).to("per-minute")

``GroupedStream.window(windows)`` returns a :class:`WindowedStream` (tumbling, hopping,
sliding) or a :class:`SessionWindowedStream`; their ``count`` / ``reduce`` / ``aggregate``
return a Table keyed by :class:`~rillet.streams.api.Windowed` whose updates are
``Change(new, old)``. The aggregates live in a window store (sessions: a session store)
named ``store`` (generated if None), logged to ``{application.id}-{store}-changelog``;
retention is size + grace (sliding: 2 * difference + grace; sessions: gap + grace) unless
``retention_ms`` is given. The processors are in ``windowed_nodes.py``.

A windowed Table's key serde (for ``to``) is Kafka's windowed serde of the group's key
serde: ``TimeWindowedSerde`` (key bytes + 8-byte start) or ``SessionWindowedSerde`` (key
bytes + end + start).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .api import Serde
from .dsl import GroupedStream, Materialized, Table, store_spec
from .serdes import Bytes, Long
from .windowed_nodes import (
    SessionWindowAggregateNode,
    SlidingWindowAggregateNode,
    SuppressNode,
    TimeWindowAggregateNode,
)
from .windows import (
    HoppingWindows,
    SessionWindowedSerde,
    SessionWindows,
    SlidingWindows,
    TimeWindowedSerde,
)


def windowed_stream(grouped: GroupedStream, windows: Any) -> WindowedStream | SessionWindowedStream:
    """``grouped.window(windows)``."""
    if isinstance(windows, SessionWindows):
        return SessionWindowedStream(grouped, windows)
    if isinstance(windows, HoppingWindows | SlidingWindows):
        return WindowedStream(grouped, windows)
    raise TypeError(f"window(): expected TumblingWindows, HoppingWindows, SlidingWindows or "
                    f"SessionWindows (rillet.streams.windows), got {windows!r}")


def _zero() -> int:
    return 0


def _none() -> None:
    return None


def _count_add(key: Any, value: Any, agg: int) -> int:
    return agg + 1


def _sum_merge(key: Any, a: int, b: int) -> int:
    return a + b


def _reducing(reducer: Callable[[Any, Any], Any]) -> Callable[[Any, Any, Any], Any]:
    def aggregator(key: Any, value: Any, agg: Any) -> Any:
        return value if agg is None else reducer(agg, value)
    return aggregator


def _reduce_merger(reducer: Callable[[Any, Any], Any]) -> Callable[[Any, Any, Any], Any]:
    def merger(key: Any, agg: Any, other: Any) -> Any:
        return other if agg is None else reducer(agg, other)
    return merger


def _callable(fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"{what}: expected a function, got {fn!r}")


def _retention(windows: Any, retention_ms: int | None) -> int:
    least = windows.retention_ms()
    if retention_ms is None:
        return least
    if isinstance(retention_ms, bool) or not isinstance(retention_ms, int):
        raise TypeError(f"retention_ms must be an int (ms), got {retention_ms!r}")
    if retention_ms < least:
        raise ValueError(f"retention_ms ({retention_ms}) must be at least the window size "
                         f"plus grace ({least} ms): a window would be dropped while open")
    return retention_ms


class _Base:
    prefix_agg = "KSTREAM-AGGREGATE"
    prefix_reduce = "KSTREAM-REDUCE"

    def __init__(self, grouped: GroupedStream, windows: Any) -> None:
        self._grouped = grouped
        self._windows = windows
        self._topology = grouped._topology

    def _key_serde(self) -> Serde | None:
        return self._grouped._stream._key_serde

    def _windowed_table(self, node: str, spec_name: str, value_serde: Serde | None,
                        windowed_key_serde: Serde) -> Table:
        table = Table(self._topology, node, windowed_key_serde, value_serde)
        table._windows = self._windows  # type: ignore[attr-defined]
        table._window_store = spec_name  # type: ignore[attr-defined]
        table._inner_key_serde = self._key_serde()  # type: ignore[attr-defined]
        return table

    def _default_key(self) -> Callable[[], Serde]:
        t = self._topology
        return lambda: t.default_key_serde or Bytes


class WindowedStream(_Base):
    """A grouped stream cut into tumbling, hopping or sliding windows (Kafka's
    ``TimeWindowedKStream``)."""

    def count(self, store: str | Materialized | None = None, *,
              retention_ms: int | None = None) -> Table:
        """Records per key and window (a Long); None keys and values are skipped."""
        return self._aggregate(self.prefix_agg, store, Long, _zero, _count_add, retention_ms)

    def reduce(self, reducer: Callable[[Any, Any], Any],
               store: str | Materialized | None = None, *,
               retention_ms: int | None = None) -> Table:
        """``reducer(aggregate, value)``; a window's first value starts it."""
        _callable(reducer, "reduce")
        return self._aggregate(self.prefix_reduce, store, self._grouped._stream._value_serde,
                               _none, _reducing(reducer), retention_ms)

    def aggregate(self, initializer: Callable[[], Any],
                  aggregator: Callable[[Any, Any, Any], Any],
                  store: str | Materialized | None = None, *,
                  value_serde: Serde | None = None, retention_ms: int | None = None) -> Table:
        """``aggregator(key, value, aggregate) -> new aggregate``, from ``initializer()``
        for each new window."""
        _callable(initializer, "aggregate(initializer)")
        _callable(aggregator, "aggregate(aggregator)")
        return self._aggregate(self.prefix_agg, store, value_serde, initializer, aggregator,
                               retention_ms)

    def _aggregate(self, prefix: str, store: str | Materialized | None,
                   value_serde: Serde | None, initializer: Callable[[], Any],
                   aggregator: Callable[[Any, Any, Any], Any],
                   retention_ms: int | None) -> Table:
        t, w = self._topology, self._windows
        key_serde = self._key_serde()
        spec = store_spec(t, store, f"{prefix}-", key_serde, value_serde, "window",
                          retention_ms=_retention(w, retention_ms), window_size_ms=w.size_ms)
        stream = self._grouped._stream._repartitioned(spec.name)
        if isinstance(w, SlidingWindows):
            vs = self._grouped._stream._value_serde
            records = store_spec(
                t, Materialized(f"{spec.name}-records", in_memory=spec.in_memory,
                                logged=spec.logged), "", key_serde, vs, "window",
                retention_ms=w.retention_ms() + 2, window_size_ms=1, retain_duplicates=True)
            factory = functools.partial(SlidingWindowAggregateNode, spec.name, records.name, w,
                                        initializer, aggregator)
            stores: tuple[str, ...] = (spec.name, records.name)
        else:
            factory = functools.partial(TimeWindowAggregateNode, spec.name, w, initializer,
                                        aggregator)
            stores = (spec.name,)
        node = t.add_processor(t.new_name(prefix), factory, (stream._node,), stores)
        wks = TimeWindowedSerde(spec.key_serde, w.size_ms, default=self._default_key())
        return self._windowed_table(node, spec.name, spec.value_serde, wks)


class SessionWindowedStream(_Base):
    """A grouped stream cut into sessions (Kafka's ``SessionWindowedKStream``)."""

    def count(self, store: str | Materialized | None = None, *,
              retention_ms: int | None = None) -> Table:
        return self._aggregate(self.prefix_agg, store, Long, _zero, _count_add, _sum_merge,
                               retention_ms)

    def reduce(self, reducer: Callable[[Any, Any], Any],
               store: str | Materialized | None = None, *,
               retention_ms: int | None = None) -> Table:
        """``reducer(aggregate, value)``; merging two sessions is ``reducer(agg1, agg2)``."""
        _callable(reducer, "reduce")
        return self._aggregate(self.prefix_reduce, store, self._grouped._stream._value_serde,
                               _none, _reducing(reducer), _reduce_merger(reducer),
                               retention_ms)

    def aggregate(self, initializer: Callable[[], Any],
                  aggregator: Callable[[Any, Any, Any], Any],
                  merger: Callable[[Any, Any, Any], Any],
                  store: str | Materialized | None = None, *,
                  value_serde: Serde | None = None, retention_ms: int | None = None) -> Table:
        """``aggregator(key, value, agg)``; ``merger(key, agg1, agg2)`` when a record joins
        two sessions into one."""
        for f, what in ((initializer, "initializer"), (aggregator, "aggregator"),
                        (merger, "merger")):
            _callable(f, f"aggregate({what})")
        return self._aggregate(self.prefix_agg, store, value_serde, initializer, aggregator,
                               merger, retention_ms)

    def _aggregate(self, prefix: str, store: str | Materialized | None,
                   value_serde: Serde | None, initializer: Callable[[], Any],
                   aggregator: Callable[[Any, Any, Any], Any],
                   merger: Callable[[Any, Any, Any], Any],
                   retention_ms: int | None) -> Table:
        t, w = self._topology, self._windows
        spec = store_spec(t, store, f"{prefix}-", self._key_serde(), value_serde, "session",
                          retention_ms=_retention(w, retention_ms))
        stream = self._grouped._stream._repartitioned(spec.name)
        node = t.add_processor(t.new_name(prefix), functools.partial(
            SessionWindowAggregateNode, spec.name, w, initializer, aggregator, merger),
            (stream._node,), (spec.name,))
        wks = SessionWindowedSerde(spec.key_serde, default=self._default_key())
        return self._windowed_table(node, spec.name, spec.value_serde, wks)


def suppress(table: Table, *, until_window_closes: bool = True,
             store: str | Materialized | None = None) -> Table:
    """``table.suppress()``: each window's final value, forwarded once when the window
    closes (Kafka's ``suppress(Suppressed.untilWindowCloses(unbounded()))``). The buffer is
    a window (sessions: session) store, ``store`` or ``KTABLE-SUPPRESS-STATE-STORE-N``,
    logged unless ``Materialized(logged=False)``: a restart neither loses nor repeats a
    final result (exactly once; at least once may repeat the ones of the last commit)."""
    if until_window_closes is not True:
        raise ValueError("suppress: only until_window_closes=True is supported (to emit "
                         "every update, do not suppress)")
    windows = getattr(table, "_windows", None)
    if windows is None:
        raise TypeError("suppress(until_window_closes=True) needs the table a windowed "
                        "aggregation returns (grouped.window(...).count() etc.), directly")
    t = table._topology
    inner = table._inner_key_serde  # type: ignore[attr-defined]
    if isinstance(windows, SessionWindows):
        spec = store_spec(t, store, "KTABLE-SUPPRESS-", inner, table._value_serde, "session",
                          retention_ms=windows.retention_ms() + 2)
    else:
        spec = store_spec(t, store, "KTABLE-SUPPRESS-", inner, table._value_serde, "window",
                          retention_ms=windows.retention_ms() + 1,
                          window_size_ms=windows.size_ms)
    node = t.add_processor(t.new_name("KTABLE-SUPPRESS"),
                           functools.partial(SuppressNode, spec.name, windows),
                           (table._node,), (spec.name,))
    out = Table(t, node, table._key_serde, table._value_serde)
    out._windows = windows  # type: ignore[attr-defined]
    out._inner_key_serde = inner  # type: ignore[attr-defined]
    return out


__all__ = ["SessionWindowedStream", "WindowedStream", "suppress", "windowed_stream"]
