"""Joins (docs/streams.md "Windows, suppression and joins"): stream-table, windowed
stream-stream and table-table, inner / left / outer, as Kafka Streams 3.x.

* ``stream.join(table, joiner, how="inner"|"left")``: each stream record looks the table up
  by key; table updates never emit. Inner: ``joiner(v, table_value)`` if the key is in the
  table; left: also ``joiner(v, None)``.
* ``stream.join(other, joiner, window=JoinWindows(...), how=...)``: records of the two
  streams with the same key whose timestamps are within the window join,
  ``joiner(left, right)`` with the larger timestamp. Left/outer: a record that joined
  nothing is emitted as ``joiner(left, None)`` (outer also ``joiner(None, right)``) only
  when its join window has closed, never early (Kafka 3.x). A record that arrives after its
  own window closed (timestamp + after [right: before] + grace < stream time) is late:
  dropped, counted and logged; two records join only while both windows are open.
* ``table.join(other, joiner, how=...)``: a table of ``joiner(l, r)`` per key (inner: both
  present; left: left present, ``r`` maybe None; outer: either present), updated with
  ``Change(new, old)`` on each side's change; a key whose result vanishes is deleted.

Inputs whose key changed are repartitioned first (``{application.id}-{join}-left/right-
repartition``), and the two inputs' source topics are recorded with
``topology.copartition`` so the runtime refuses to start unless they have equal partition
counts. The processors are in ``join_nodes.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import processors as P
from .api import Serde
from .dsl import Materialized, Stream, Table, store_spec
from .join_nodes import StreamStreamJoinNode, StreamTableJoinNode, TableTableJoinNode
from .serdes import Long
from .windows import JoinWindows

if TYPE_CHECKING:
    from .topology import Topology

STREAM_TABLE_KINDS = ("inner", "left")
STREAM_STREAM_KINDS = ("inner", "left", "outer")
TABLE_TABLE_KINDS = ("inner", "left", "outer")


def _callable(fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"{what}: expected a function, got {fn!r}")


def _source_nodes(topology: Topology, node: str) -> tuple[str, ...]:
    """The source nodes upstream of ``node`` (repartition sources end the walk)."""
    out: list[str] = []
    seen: set[str] = set()
    stack = [node]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        n = topology._nodes[name]
        if n.kind == "source":
            out.append(name)
        else:
            stack.extend(n.parents)
    return tuple(sorted(out))


def _copartition(topology: Topology, left: str, right: str) -> None:
    sources = _source_nodes(topology, left) + _source_nodes(topology, right)
    topology.copartition(*dict.fromkeys(sources))


def join_stream(stream: Stream, other: Stream | Table, joiner: Callable[[Any, Any], Any], *,
                window: JoinWindows | None = None, how: str = "inner",
                other_value_serde: Serde | None = None, name: str | None = None) -> Stream:
    """``stream.join(other, ...)``: stream-table when ``other`` is a Table, windowed
    stream-stream when it is a Stream (``window`` required)."""
    _callable(joiner, "join")
    t = stream._topology
    if isinstance(other, Table):
        if how not in STREAM_TABLE_KINDS:
            raise ValueError(f"stream-table join: how must be one of {STREAM_TABLE_KINDS} "
                             f"(Kafka has no outer stream-table join), got {how!r}")
        if window is not None:
            raise ValueError("stream-table join: no window (the table side is looked up)")
        return _stream_table(t, stream, other, joiner, how, name)
    if not isinstance(other, Stream):
        raise TypeError(f"join: other must be a Stream or a Table, got {other!r}")
    if how not in STREAM_STREAM_KINDS:
        raise ValueError(f"stream-stream join: how must be one of {STREAM_STREAM_KINDS}, "
                         f"got {how!r}")
    if not isinstance(window, JoinWindows):
        raise ValueError("stream-stream join: window=JoinWindows(before_ms, after_ms, "
                         f"grace_ms) is required, got {window!r}")
    return _stream_stream(t, stream, other, joiner, window, how, other_value_serde, name)


def _stream_table(t: Topology, stream: Stream, table: Table,
                  joiner: Callable[[Any, Any], Any], how: str, name: str | None) -> Stream:
    name = name or t.new_name("KSTREAM-JOIN")
    left = stream._repartitioned(f"{name}-left")
    table = table._materialized()
    _copartition(t, left._node, table._node)
    node = t.add_processor(name, functools.partial(StreamTableJoinNode, table._store, joiner,
                                                   how), (left._node,), (table._store,))
    return Stream(t, node, left._key_serde, None)


def _stream_stream(t: Topology, stream: Stream, other: Stream,
                   joiner: Callable[[Any, Any], Any], window: JoinWindows, how: str,
                   other_value_serde: Serde | None, name: str | None) -> Stream:
    this_name = name or t.new_name("KSTREAM-JOINTHIS")
    other_name = t.new_name("KSTREAM-JOINOTHER") if name is None else f"{name}-other"
    left = stream._repartitioned(f"{this_name}-left")
    right = other._repartitioned(f"{this_name}-right")
    _copartition(t, left._node, right._node)
    key_serde = left._key_serde or right._key_serde
    retention = window.retention_ms()
    size = max(1, window.size_ms)
    this_store = store_spec(t, f"{this_name}-store", "", key_serde, left._value_serde,
                            "window", retention_ms=retention, window_size_ms=size,
                            retain_duplicates=True)
    other_store = store_spec(t, f"{other_name}-store", "", key_serde,
                             other_value_serde or right._value_serde, "window",
                             retention_ms=retention, window_size_ms=size,
                             retain_duplicates=True)
    markers = None
    if how != "inner":
        # (key, timestamp) -> which records of that key and time joined / were emitted
        markers = store_spec(t, Materialized(f"{this_name}-outer-shared-store"), "",
                             key_serde, Long, "window", retention_ms=retention,
                             window_size_ms=1).name
    stores = (this_store.name, other_store.name) + ((markers,) if markers else ())
    left_node = t.add_processor(this_name, functools.partial(
        StreamStreamJoinNode, "left", this_store.name, other_store.name, markers, window,
        joiner, how), (left._node,), stores)
    right_node = t.add_processor(other_name, functools.partial(
        StreamStreamJoinNode, "right", other_store.name, this_store.name, markers, window,
        joiner, how), (right._node,), stores)
    merge = t.add_processor(t.new_name("KSTREAM-MERGE"), P.PassThrough,
                            (left_node, right_node))
    return Stream(t, merge, key_serde, None)


def join_table(left: Table, right: Table, joiner: Callable[[Any, Any], Any], *,
               how: str = "inner", store: str | Materialized | None = None) -> Table:
    """``left.join(right, joiner, how=...)``: a table-table join on the key; ``store``
    materializes the result (else it is not kept: a later join or query materializes
    it)."""
    _callable(joiner, "join")
    if not isinstance(right, Table):
        raise TypeError(f"table join: other must be a Table, got {right!r}")
    if how not in TABLE_TABLE_KINDS:
        raise ValueError(f"table-table join: how must be one of {TABLE_TABLE_KINDS}, "
                         f"got {how!r}")
    t = left._topology
    lt, rt = left._materialized(), right._materialized()
    _copartition(t, lt._node, rt._node)
    this_name = t.new_name("KTABLE-JOINTHIS")
    other_name = t.new_name("KTABLE-JOINOTHER")
    a = t.add_processor(this_name, functools.partial(
        TableTableJoinNode, "left", rt._store, joiner, how), (lt._node,), (rt._store,))
    b = t.add_processor(other_name, functools.partial(
        TableTableJoinNode, "right", lt._store, joiner, how), (rt._node,), (lt._store,))
    merge = t.add_processor(t.new_name("KTABLE-MERGE"), P.PassThrough, (a, b))
    result = Table(t, merge, lt._key_serde, None)
    if store is not None:
        result = result._materialized(store)
    return result


__all__ = ["join_stream", "join_table"]
