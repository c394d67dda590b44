"""The streams DSL (docs/streams.md): ``Stream`` (Kafka's KStream), ``Table`` (KTable),
``GroupedStream`` / ``GroupedTable``; windowed streams live in ``windowed.py`` and joins in
``joins.py``, reached from here through the methods that delegate to them.

Every operation adds nodes to the application's :class:`~rillet.streams.topology.Topology`
(the :class:`~rillet.streams.api.TopologyBuilder` primitives) and returns a new handle; no
record moves until the application runs. Functions take ``(key, value)`` where Kafka's
take ``(key, value)``, and ``value`` alone for the ``*_values`` variants.

The signatures and the fields of the handles are the contract between the parts; the
delegating methods call windowed.py / joins.py. Node and store names follow Kafka's
(``KSTREAM-MAP-0000000001``, ``KSTREAM-AGGREGATE-STATE-STORE-0000000003``); a store named
``counts`` makes the internal topics ``{application.id}-counts-changelog`` and, after a
key change, ``{application.id}-counts-repartition``.

Fields of a handle (read by windowed.py and joins.py):

* ``_topology``: the Topology (TopologyBuilder);
* ``_node``: the name of the node whose output this handle is;
* ``_key_serde``, ``_value_serde``: the serdes of that output (None: the app's defaults).
  Every operation keeps its input's serdes unless given new ones (Kafka forgets them
  after a map; Python has no static types to go by, and a value the kept serde cannot
  encode fails with a SerdeError naming the topic);
* ``Stream._repartition_required``: the key was changed (map, select_key, flat_map,
  group_by, process) since the last source or repartition: a stateful operation or join
  must repartition first (``Stream._repartitioned(name)`` does, and returns the new handle;
  ``name`` is the operation's store name, so the topic is ``{name}-repartition``);
* ``GroupedStream._stream``: the grouped stream, NOT yet repartitioned (the topic is
  named after the aggregation's store, known only then): an aggregation calls
  ``self._stream._repartitioned(store_name)`` first;
* ``Table._store``: the name of the key-value store holding the table (None if the table
  is not materialized: ``Table._materialized()`` adds a store and returns the handle).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from rillet.frozen import frozen

from . import processors as P
from .api import Processor, Serde, StoreKind, StoreSpec
from .serdes import ChangeSerde, Long

if TYPE_CHECKING:
    from .topology import Topology

_LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")


@frozen
class Materialized:
    """How the DSL keeps a store (Kafka's ``Materialized``), where a store name is
    accepted: ``name`` (None: generated), ``in_memory`` (else SQLite under
    ``state.dir``), ``logged`` (a changelog topic), serdes (None: the operation's)."""

    name: str | None = None
    in_memory: bool = False
    logged: bool = True
    key_serde: Serde | None = None
    value_serde: Serde | None = None


def store_spec(topology: Topology, store: str | Materialized | None, prefix: str,
               key_serde: Serde | None, value_serde: Serde | None, kind: StoreKind = "kv",
               **more: Any) -> StoreSpec:
    """The StoreSpec of a DSL store argument (a name, a Materialized or None: a name made
    from ``prefix``, Kafka's ``KSTREAM-AGGREGATE-STATE-STORE-0000000003``), declared in
    ``topology``. ``more``: StoreSpec's window fields."""
    m = store if isinstance(store, Materialized) else Materialized(store)
    if m.name is not None and not (isinstance(m.name, str) and _LEGAL_NAME.match(m.name)):
        raise ValueError(f"store name {m.name!r}: use letters, digits, '.', '_' and '-' "
                         "(it is part of the changelog topic's name)")
    name = m.name or topology.new_store_name(prefix)
    spec = StoreSpec(name, kind, m.key_serde or key_serde, m.value_serde or value_serde,
                     logged=m.logged, in_memory=m.in_memory, **more)
    topology.add_store(spec)
    return spec


def _callable(fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"{what}: expected a function, got {fn!r}")


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

    def _then(self, prefix: str, factory: Callable[[], Processor], *, rekeyed: bool = False,
              stores: tuple[str, ...] = ()) -> Stream:
        """A child node, with this stream's serdes (kept through every operation)."""
        node = self._topology.add_processor(self._topology.new_name(prefix), factory,
                                            (self._node,), stores)
        return Stream(self._topology, node, self._key_serde, self._value_serde,
                      repartition_required=self._repartition_required or rekeyed)

    # stateless ------------------------------------------------------------------------
    def map(self, fn: Callable[[Any, Any], tuple[Any, Any]]) -> Stream:
        """``fn(key, value) -> (new key, new value)``."""
        _callable(fn, "map")
        return self._then("KSTREAM-MAP", functools.partial(P.MapNode, fn), rekeyed=True)

    def map_values(self, fn: Callable[[Any], Any]) -> Stream:
        _callable(fn, "map_values")
        return self._then("KSTREAM-MAPVALUES", functools.partial(P.MapValuesNode, fn))

    def filter(self, predicate: Callable[[Any, Any], bool]) -> Stream:
        _callable(predicate, "filter")
        return self._then("KSTREAM-FILTER", functools.partial(P.FilterNode, predicate))

    def filter_not(self, predicate: Callable[[Any, Any], bool]) -> Stream:
        _callable(predicate, "filter_not")
        return self._then("KSTREAM-FILTER", functools.partial(P.FilterNode, predicate, True))

    def flat_map(self, fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]]) -> Stream:
        _callable(fn, "flat_map")
        return self._then("KSTREAM-FLATMAP", functools.partial(P.FlatMapNode, fn), rekeyed=True)

    def flat_map_values(self, fn: Callable[[Any], Iterable[Any]]) -> Stream:
        _callable(fn, "flat_map_values")
        return self._then("KSTREAM-FLATMAPVALUES",
                          functools.partial(P.FlatMapValuesNode, fn))

    def select_key(self, fn: Callable[[Any, Any], Any]) -> Stream:
        """``fn(key, value) -> new key``."""
        _callable(fn, "select_key")
        return self._then("KSTREAM-KEY-SELECT", functools.partial(P.SelectKeyNode, fn),
                          rekeyed=True)

    def peek(self, fn: Callable[[Any, Any], None]) -> Stream:
        _callable(fn, "peek")
        return self._then("KSTREAM-PEEK", functools.partial(P.PeekNode, fn))

    def branch(self, *predicates: Callable[[Any, Any], bool]) -> list[Stream]:
        """One stream per predicate: a record goes to the first that matches (dropped if
        none; pass ``lambda k, v: True`` last for a default branch)."""
        if not predicates:
            raise ValueError("branch needs at least one predicate")
        for p in predicates:
            _callable(p, "branch")
        t = self._topology
        name = t.new_name("KSTREAM-BRANCH")
        children = [t.new_name("KSTREAM-BRANCHCHILD") for _ in predicates]
        t.add_processor(name, functools.partial(P.BranchNode, predicates, children),
                        (self._node,))
        for child in children:
            t.add_processor(child, P.PassThrough, (name,))
        return [Stream(t, c, self._key_serde, self._value_serde,
                       repartition_required=self._repartition_required) for c in children]

    def merge(self, other: Stream) -> Stream:
        if not isinstance(other, Stream) or other._topology is not self._topology:
            raise TypeError("merge: expected a Stream of the same topology")
        t = self._topology
        node = t.add_processor(t.new_name("KSTREAM-MERGE"), P.PassThrough,
                               (self._node, other._node))
        return Stream(t, node,
                      self._key_serde if self._key_serde is other._key_serde else None,
                      self._value_serde if self._value_serde is other._value_serde else None,
                      repartition_required=(self._repartition_required
                                            or other._repartition_required))

    def process(self, factory: Callable[[], Processor],
                stores: Iterable[str | StoreSpec] = ()) -> Stream:
        """A custom node (the Processor API): ``factory()`` makes one Processor per task;
        it forwards with ``context.forward`` and reaches ``stores`` (names of declared
        stores, or StoreSpecs to declare) with ``context.store(name)``. The result may
        have new keys, so it is repartitioned before a stateful operation."""
        _callable(factory, "process")
        names = []
        for s in stores:
            if isinstance(s, StoreSpec):
                self._topology.add_store(s)
                s = s.name
            names.append(s)
        return self._then("KSTREAM-PROCESSOR", factory,
                          rekeyed=True, stores=tuple(names))

    def to(self, topic: str, *, key_serde: Serde | None = None,
           value_serde: Serde | None = None,
           partitioner: Callable[[Any, Any, int], int] | None = None) -> None:
        """Write to ``topic`` (serdes: these, else the stream's, else the defaults);
        ``partitioner(key, value, num_partitions) -> partition``, else murmur2 of the
        serialized key."""
        if partitioner is not None:
            _callable(partitioner, "to(partitioner=...)")
        self._topology.add_sink(topic, key_serde or self._key_serde,
                                value_serde or self._value_serde, (self._node,),
                                partitioner=partitioner)

    def repartition(self, name: str | None = None, *, partitions: int | None = None,
                    key_serde: Serde | None = None, value_serde: Serde | None = None
                    ) -> Stream:
        """Through an internal ``{application.id}-{name}-repartition`` topic
        (``partitions`` None: as many as the input's)."""
        t = self._topology
        name = name or t.new_name("KSTREAM-REPARTITION")
        ks, vs = key_serde or self._key_serde, value_serde or self._value_serde
        source = t.add_repartition(self._node, name, ks, vs, partitions)
        return Stream(t, source, ks, vs)

    def _repartitioned(self, name: str | None = None, *, key_serde: Serde | None = None,
                       value_serde: Serde | None = None) -> Stream:
        """``self`` if no repartition is required, else ``self.repartition(name)``."""
        if not self._repartition_required:
            return self
        return self.repartition(name, key_serde=key_serde, value_serde=value_serde)

    def to_table(self, store: str | Materialized | None = None, *,
                 key_serde: Serde | None = None, value_serde: Serde | None = None) -> Table:
        """The latest value per key (None deletes), in a key-value store."""
        t = self._topology
        ks, vs = key_serde or self._key_serde, value_serde or self._value_serde
        spec = store_spec(t, store, "KSTREAM-TOTABLE-", ks, vs)
        stream = self._repartitioned(spec.name, key_serde=ks, value_serde=vs)
        node = t.add_processor(t.new_name("KSTREAM-TOTABLE"),
                               functools.partial(P.TableSourceNode, spec.name),
                               (stream._node,), (spec.name,))
        return Table(t, node, spec.key_serde, spec.value_serde, store=spec.name)

    # stateful ---------------------------------------------------------------------------
    def group_by_key(self, *, key_serde: Serde | None = None,
                     value_serde: Serde | None = None) -> GroupedStream:
        return GroupedStream(Stream(self._topology, self._node, key_serde or self._key_serde,
                                    value_serde or self._value_serde,
                                    repartition_required=self._repartition_required))

    def group_by(self, fn: Callable[[Any, Any], Any], *, key_serde: Serde | None = None,
                 value_serde: Serde | None = None) -> GroupedStream:
        """Group by a new key ``fn(key, value)`` (repartitioned before aggregating)."""
        selected = self.select_key(fn)
        return GroupedStream(Stream(self._topology, selected._node,
                                    key_serde or self._key_serde,
                                    value_serde or self._value_serde,
                                    repartition_required=True))

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
    """A stream grouped by key, ready to aggregate (KGroupedStream). ``_stream`` is not yet
    repartitioned: each aggregation repartitions it (if the key changed) through a topic
    named after its store."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._topology = stream._topology

    def _aggregate(self, prefix: str, store: str | Materialized | None,
                   value_serde: Serde | None, make: Callable[[str], Processor]) -> Table:
        t, s = self._topology, self._stream
        spec = store_spec(t, store, f"{prefix}-", s._key_serde, value_serde)
        stream = s._repartitioned(spec.name, key_serde=spec.key_serde)
        node = t.add_processor(t.new_name(prefix), functools.partial(make, spec.name),
                               (stream._node,), (spec.name,))
        return Table(t, node, spec.key_serde, spec.value_serde, store=spec.name)

    def count(self, store: str | Materialized | None = None) -> Table:
        """Records per key (a Long), skipping None keys and values."""
        return self._aggregate("KSTREAM-AGGREGATE", store, Long, lambda name: (
            P.StreamAggregateNode(name, _zero, _count_add)))

    def reduce(self, reducer: Callable[[Any, Any], Any],
               store: str | Materialized | None = None) -> Table:
        """``reducer(aggregate, value) -> new aggregate``; the first value starts it."""
        _callable(reducer, "reduce")
        return self._aggregate("KSTREAM-REDUCE", store, self._stream._value_serde,
                               lambda name: P.StreamReduceNode(name, reducer))

    def aggregate(self, initializer: Callable[[], Any],
                  aggregator: Callable[[Any, Any, Any], Any],
                  store: str | Materialized | None = None, *,
                  value_serde: Serde | None = None) -> Table:
        """``aggregator(key, value, aggregate) -> new aggregate``."""
        _callable(initializer, "aggregate(initializer)")
        _callable(aggregator, "aggregate(aggregator)")
        return self._aggregate("KSTREAM-AGGREGATE", store, value_serde, lambda name: (
            P.StreamAggregateNode(name, initializer, aggregator)))

    def window(self, windows: Any) -> Any:
        """TumblingWindows/HoppingWindows/SlidingWindows -> a WindowedStream;
        SessionWindows -> a SessionWindowedStream (windowed.py)."""
        from .windowed import windowed_stream

        return windowed_stream(self, windows)


def _zero() -> int:
    return 0


def _count_add(key: Any, value: Any, agg: int) -> int:
    return agg + 1


def _count_sub(key: Any, value: Any, agg: int) -> int:
    return agg - 1


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

    def _transform(self, prefix: str, make: Callable[[str | None], Processor],
                   store: str | Materialized | None, value_serde: Serde | None) -> Table:
        t = self._topology
        spec = None
        if store is not None:
            spec = store_spec(t, store, f"{prefix}-", self._key_serde, value_serde)
            value_serde = spec.value_serde
        name = spec.name if spec else None
        node = t.add_processor(t.new_name(prefix), functools.partial(make, name),
                               (self._node,), (name,) if name else ())
        return Table(t, node, self._key_serde, value_serde, store=name)

    def filter(self, predicate: Callable[[Any, Any], bool],
               store: str | Materialized | None = None) -> Table:
        """Keys whose value fails ``predicate`` read as deleted (a tombstone downstream
        if the key was in the result before)."""
        _callable(predicate, "filter")
        return self._transform("KTABLE-FILTER", lambda s: P.TableFilterNode(
            predicate, False, s), store, self._value_serde)

    def filter_not(self, predicate: Callable[[Any, Any], bool],
                   store: str | Materialized | None = None) -> Table:
        _callable(predicate, "filter_not")
        return self._transform("KTABLE-FILTER", lambda s: P.TableFilterNode(
            predicate, True, s), store, self._value_serde)

    def map_values(self, fn: Callable[[Any], Any],
                   store: str | Materialized | None = None) -> Table:
        _callable(fn, "map_values")
        return self._transform("KTABLE-MAPVALUES", lambda s: P.TableMapValuesNode(fn, s),
                               store, self._value_serde)

    def to_stream(self) -> Stream:
        """Each update as a record: the new value (None: a delete, i.e. a tombstone)."""
        t = self._topology
        node = t.add_processor(t.new_name("KTABLE-TOSTREAM"), P.TableToStreamNode,
                               (self._node,))
        return Stream(t, node, self._key_serde, self._value_serde)

    def to(self, topic: str, *, key_serde: Serde | None = None,
           value_serde: Serde | None = None) -> None:
        self.to_stream().to(topic, key_serde=key_serde, value_serde=value_serde)

    def group_by(self, fn: Callable[[Any, Any], tuple[Any, Any]], *,
                 key_serde: Serde | None = None, value_serde: Serde | None = None
                 ) -> GroupedTable:
        """Re-key the table: ``fn(key, value) -> (new key, new value)``."""
        _callable(fn, "group_by")
        t = self._topology
        node = t.add_processor(t.new_name("KTABLE-SELECT"),
                               functools.partial(P.TableSelectNode, fn), (self._node,))
        return GroupedTable(t, node, key_serde or self._key_serde,
                            value_serde or self._value_serde)

    def _materialized(self, store: str | Materialized | None = None) -> Table:
        """``self`` if it has a store, else the same table kept in a new KV store."""
        if self._store is not None:
            return self
        return self._transform("KTABLE-MATERIALIZE",
                               lambda s: P.TableMapValuesNode(_identity, s),
                               store or Materialized(), self._value_serde)

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


def _identity(value: Any) -> Any:
    return value


class GroupedTable:
    """A re-keyed table, ready to aggregate with adders and subtractors (KGroupedTable):
    an update of a row subtracts its old value from the old key's aggregate and adds its
    new value to the new key's. Always through a repartition topic named after the store."""

    def __init__(self, topology: Topology, node: str, key_serde: Serde | None,
                 value_serde: Serde | None) -> None:
        self._topology = topology
        self._node = node  # its records carry Change(new, old) values
        self._key_serde = key_serde
        self._value_serde = value_serde

    def _aggregate(self, prefix: str, store: str | Materialized | None,
                   value_serde: Serde | None, make: Callable[[str], Processor]) -> Table:
        t = self._topology
        spec = store_spec(t, store, f"{prefix}-", self._key_serde, value_serde)
        source = t.add_repartition(self._node, spec.name, self._key_serde,
                                   ChangeSerde(self._value_serde))
        node = t.add_processor(t.new_name(prefix), functools.partial(make, spec.name),
                               (source,), (spec.name,))
        return Table(t, node, spec.key_serde, spec.value_serde, store=spec.name)

    def count(self, store: str | Materialized | None = None) -> Table:
        return self._aggregate("KTABLE-AGGREGATE", store, Long, lambda name: (
            P.TableAggregateNode(name, _zero, _count_add, _count_sub)))

    def reduce(self, adder: Callable[[Any, Any], Any], subtractor: Callable[[Any, Any], Any],
               store: str | Materialized | None = None) -> Table:
        """``adder(aggregate, value)``, ``subtractor(aggregate, value)``."""
        _callable(adder, "reduce(adder)")
        _callable(subtractor, "reduce(subtractor)")
        return self._aggregate("KTABLE-REDUCE", store, self._value_serde, lambda name: (
            P.TableReduceNode(name, adder, subtractor)))

    def aggregate(self, initializer: Callable[[], Any],
                  adder: Callable[[Any, Any, Any], Any],
                  subtractor: Callable[[Any, Any, Any], Any],
                  store: str | Materialized | None = None, *,
                  value_serde: Serde | None = None) -> Table:
        """``adder(key, value, aggregate)``, ``subtractor(key, value, aggregate)``."""
        for f, what in ((initializer, "initializer"), (adder, "adder"),
                        (subtractor, "subtractor")):
            _callable(f, f"aggregate({what})")
        return self._aggregate("KTABLE-AGGREGATE", store, value_serde, lambda name: (
            P.TableAggregateNode(name, initializer, adder, subtractor)))


__all__ = ["GroupedStream", "GroupedTable", "Materialized", "Stream", "Table", "store_spec"]
