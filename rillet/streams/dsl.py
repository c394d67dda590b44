"""The streams DSL (docs/streams.md): ``Stream`` (Kafka's KStream), ``Table`` (KTable),
``GroupedStream`` / ``GroupedTable``; windowed streams live in ``windowed.py`` and joins in
``joins.py``, reached from here through the methods that delegate to them.

Every operation adds nodes to the application's :class:`~rillet.streams.topology.Topology`
(the :class:`~rillet.streams.api.TopologyBuilder` primitives) and returns a new handle; no
record moves until the application runs. Functions take ``(key, value)`` where Kafka's
take ``(key, value)``, and ``value`` alone for the ``*_values`` variants.

SKELETON (lead, 2026-12-06): the signatures and the fields of the handles are the contract
between the helpers; bodies marked ``# streams-dsl`` are the DSL helper's, the delegating
ones call windowed.py / joins.py (the windows helper's).

Fields of a handle (read by windowed.py and joins.py):

* ``_topology``: the Topology (TopologyBuilder);
* ``_node``: the name of the node whose output this handle is;
* ``_key_serde``, ``_value_serde``: the serdes of that output (None: the app's defaults);
* ``Stream._repartition_required``: the key was changed (map, select_key, flat_map,
  group_by) since the last source or repartition: a stateful operation or join must
  repartition first (``Stream._repartitioned()`` does, and returns the new handle);
* ``Table._store``: the name of the key-value store holding the table (None if the table
  is not materialized: ``Table._materialized()`` adds a store and returns the handle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .api import Processor, Serde

if TYPE_CHECKING:
    from .topology import Topology


class Stream:
    """An unbounded stream of records (KStream)."""

    def __init__(self, topology: Topology, node: str, key_serde: Serde | None = None,
                 value_serde: Serde | None = None, *, repartition_required: bool = False
                 ) -> None:
        self._topology = topology
        self._node = node
        self._key_serde = key_serde
        self._value_serde = value_serde
        self._repartition_required = repartition_required

    # stateless --------------------------------------------------------------- streams-dsl
    def map(self, fn: Callable[[Any, Any], tuple[Any, Any]]) -> Stream:
        raise NotImplementedError  # streams-dsl

    def map_values(self, fn: Callable[[Any], Any]) -> Stream:
        raise NotImplementedError  # streams-dsl

    def filter(self, predicate: Callable[[Any, Any], bool]) -> Stream:
        raise NotImplementedError  # streams-dsl

    def filter_not(self, predicate: Callable[[Any, Any], bool]) -> Stream:
        raise NotImplementedError  # streams-dsl

    def flat_map(self, fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]]) -> Stream:
        raise NotImplementedError  # streams-dsl

    def flat_map_values(self, fn: Callable[[Any], Iterable[Any]]) -> Stream:
        raise NotImplementedError  # streams-dsl

    def select_key(self, fn: Callable[[Any, Any], Any]) -> Stream:
        raise NotImplementedError  # streams-dsl

    def peek(self, fn: Callable[[Any, Any], None]) -> Stream:
        raise NotImplementedError  # streams-dsl

    def branch(self, *predicates: Callable[[Any, Any], bool]) -> list[Stream]:
        """One stream per predicate: a record goes to the first that matches (dropped if
        none; pass ``lambda k, v: True`` last for a default branch)."""
        raise NotImplementedError  # streams-dsl

    def merge(self, other: Stream) -> Stream:
        raise NotImplementedError  # streams-dsl

    def process(self, factory: Callable[[], Processor], stores: Iterable[str] = ()) -> Stream:
        """A custom node (the Processor API); it forwards with ``context.forward``."""
        raise NotImplementedError  # streams-dsl

    def to(self, topic: str, *, key_serde: Serde | None = None,
           value_serde: Serde | None = None,
           partitioner: Callable[[Any, Any, int], int] | None = None) -> None:
        raise NotImplementedError  # streams-dsl

    def repartition(self, name: str | None = None, *, partitions: int | None = None,
                    key_serde: Serde | None = None, value_serde: Serde | None = None
                    ) -> Stream:
        """Through an internal ``{application.id}-{name}-repartition`` topic."""
        raise NotImplementedError  # streams-dsl

    def _repartitioned(self, name: str | None = None) -> Stream:
        """``self`` if no repartition is required, else ``self.repartition(name)``."""
        raise NotImplementedError  # streams-dsl

    def to_table(self, store: str | None = None, *, key_serde: Serde | None = None,
                 value_serde: Serde | None = None) -> Table:
        raise NotImplementedError  # streams-dsl

    # stateful ---------------------------------------------------------------- streams-dsl
    def group_by_key(self, *, key_serde: Serde | None = None,
                     value_serde: Serde | None = None) -> GroupedStream:
        raise NotImplementedError  # streams-dsl

    def group_by(self, fn: Callable[[Any, Any], Any], *, key_serde: Serde | None = None,
                 value_serde: Serde | None = None) -> GroupedStream:
        raise NotImplementedError  # streams-dsl

    # joins ------------------------------------------------------------------ streams-windows
    def join(self, other: Stream | Table, joiner: Callable[[Any, Any], Any], *,
             window: Any = None, how: str = "inner",
             other_value_serde: Serde | None = None) -> Stream:
        """Stream-table (``other`` a Table: ``how`` inner or left) or windowed stream-stream
        (``other`` a Stream, ``window`` a JoinWindows: inner, left or outer)."""
        from .joins import join_stream

        return join_stream(self, other, joiner, window=window, how=how,
                           other_value_serde=other_value_serde)


class GroupedStream:
    """A stream grouped by key, ready to aggregate (KGroupedStream)."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream  # already repartitioned if the key changed
        self._topology = stream._topology

    def count(self, store: str | None = None) -> Table:
        raise NotImplementedError  # streams-dsl

    def reduce(self, reducer: Callable[[Any, Any], Any], store: str | None = None) -> Table:
        raise NotImplementedError  # streams-dsl

    def aggregate(self, initializer: Callable[[], Any],
                  aggregator: Callable[[Any, Any, Any], Any], store: str | None = None, *,
                  value_serde: Serde | None = None) -> Table:
        """``aggregator(key, value, aggregate) -> new aggregate``."""
        raise NotImplementedError  # streams-dsl

    def window(self, windows: Any) -> Any:
        """TumblingWindows/HoppingWindows/SlidingWindows -> a WindowedStream;
        SessionWindows -> a SessionWindowedStream (windowed.py)."""
        from .windowed import windowed_stream

        return windowed_stream(self, windows)


class Table:
    """A changelog stream seen as a table: the latest value per key (KTable). Its nodes
    forward ``Change(new, old)`` values."""

    def __init__(self, topology: Topology, node: str, key_serde: Serde | None = None,
                 value_serde: Serde | None = None, *, store: str | None = None) -> None:
        self._topology = topology
        self._node = node
        self._key_serde = key_serde
        self._value_serde = value_serde
        self._store = store

    def filter(self, predicate: Callable[[Any, Any], bool], store: str | None = None
               ) -> Table:
        raise NotImplementedError  # streams-dsl

    def filter_not(self, predicate: Callable[[Any, Any], bool], store: str | None = None
                   ) -> Table:
        raise NotImplementedError  # streams-dsl

    def map_values(self, fn: Callable[[Any], Any], store: str | None = None) -> Table:
        raise NotImplementedError  # streams-dsl

    def to_stream(self) -> Stream:
        raise NotImplementedError  # streams-dsl

    def to(self, topic: str, *, key_serde: Serde | None = None,
           value_serde: Serde | None = None) -> None:
        raise NotImplementedError  # streams-dsl

    def group_by(self, fn: Callable[[Any, Any], tuple[Any, Any]], *,
                 key_serde: Serde | None = None, value_serde: Serde | None = None
                 ) -> GroupedTable:
        """Re-key the table: ``fn(key, value) -> (new key, new value)``."""
        raise NotImplementedError  # streams-dsl

    def _materialized(self, store: str | None = None) -> Table:
        """``self`` if it has a store, else the same table kept in a new KV store."""
        raise NotImplementedError  # streams-dsl

    # streams-windows ------------------------------------------------------------------
    def join(self, other: Table, joiner: Callable[[Any, Any], Any], *, how: str = "inner",
             store: str | None = None) -> Table:
        """Table-table join (inner, left or outer) on the key."""
        from .joins import join_table

        return join_table(self, other, joiner, how=how, store=store)

    def suppress(self, *, until_window_closes: bool = True) -> Table:
        """A windowed table emits only each window's final result, once the window closes
        (stream time past its end plus grace): Kafka's ``suppress(untilWindowCloses)``."""
        from .windowed import suppress

        return suppress(self, until_window_closes=until_window_closes)


class GroupedTable:
    """A re-keyed table, ready to aggregate with adders and subtractors (KGroupedTable)."""

    def __init__(self, topology: Topology, node: str, key_serde: Serde | None,
                 value_serde: Serde | None) -> None:
        self._topology = topology
        self._node = node  # its records carry Change(new, old) values
        self._key_serde = key_serde
        self._value_serde = value_serde

    def count(self, store: str | None = None) -> Table:
        raise NotImplementedError  # streams-dsl

    def reduce(self, adder: Callable[[Any, Any], Any], subtractor: Callable[[Any, Any], Any],
               store: str | None = None) -> Table:
        raise NotImplementedError  # streams-dsl

    def aggregate(self, initializer: Callable[[], Any],
                  adder: Callable[[Any, Any, Any], Any],
                  subtractor: Callable[[Any, Any, Any], Any], store: str | None = None, *,
                  value_serde: Serde | None = None) -> Table:
        raise NotImplementedError  # streams-dsl


__all__ = ["GroupedStream", "GroupedTable", "Stream", "Table"]
