"""The processors behind the DSL's nodes (docs/streams.md "The DSL"): sources, sinks, the
stateless stream operations, key-value aggregations and the table nodes.

Each class is one node's behaviour (api.Processor): ``process(record)`` for each record the
task routes to it, ``context.forward`` to its children. The task's thread owns a processor;
nothing here is thread-safe or needs to be. Table nodes take and forward ``Change(new, old)``
values (api.Change). Source nodes receive records already deserialized by the runtime (or
the test driver); a sink serializes with its serdes and hands bytes to ``context.send``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rillet._partitioner import partition_for_key

from .api import Change, Processor, Record, Serde, new_record, repartition_topic
from .batch import children_plan, run_plan_chunks


class Forwarding(Processor):
    """A processor that forwards with ``self._forward(record)``: its one child's
    ``process`` itself when it has one (graph.py's NodeContext gives them), else its
    context's ``forward`` (the per-record path saves a call and lookups per node)."""

    _forward: Callable[..., None]

    def init(self, context: Any) -> None:
        super().init(context)
        targets = getattr(context, "_targets", None)
        self._forward = (targets[0].process if targets is not None and len(targets) == 1
                         else context.forward)


class StoreNode(Forwarding):
    """A node that uses the store ``store_name`` (None: none); ``self.store`` is the task's
    instance once ``init`` has run."""

    def __init__(self, store: str | None) -> None:
        self.store_name = store
        self.store: Any = None

    def init(self, context: Any) -> None:
        super().init(context)
        if self.store_name is not None:
            self.store = context.store(self.store_name)


class PassThrough(Forwarding):
    """A source node, a merge node, a branch child: forwards every record unchanged."""

    def process(self, record: Record) -> None:
        self._forward(record)

    def map_batch(self, records: list[Record]) -> list[Record]:
        return records


class SinkNode(Forwarding):
    """Writes each record to ``topic`` (internal: the repartition topic ``topic`` names,
    prefixed with the application id). ``partitioner(key, value, num_partitions)`` picks
    the partition; without one the producer hashes the serialized key (murmur2).

    Batching (``batching``: no partitioner, and the context offers ``send_many``, i.e.
    the producer partitions keys by murmur2 too): a keyed record is held per partition
    (murmur2 of its serialized key, as the producer would choose) and each partition's
    records go to the producer in one ``send_many`` when the task graph drains its sinks
    (after every run of records, punctuation and cache flush): one call and one lock per
    batch instead of a ``send`` per record. A record without a key first drains what is
    held (the producer's sticky choice may be a partition with held records: order)."""

    batching = False

    def __init__(self, topic: str, key_serde: Serde, value_serde: Serde, *,
                 internal: bool = False,
                 partitioner: Callable[[Any, Any, int], int] | None = None) -> None:
        self.topic = topic
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.internal = internal
        self.partitioner = partitioner
        self._real_topic = topic

    def init(self, context: Any) -> None:
        super().init(context)
        if self.internal:
            self._real_topic = repartition_topic(context.application_id, self.topic)
        self._kser = self.key_serde.serialize
        self._vser = self.value_serde.serialize
        self._send = context.send
        self._send_many = getattr(context, "send_many", None)
        self.batching = self.partitioner is None and self._send_many is not None
        if self.batching:
            # per partition: keys, values, timestamps, headers (four lists: no tuple per
            # record, and no transposition at the drain, ~0.3 us a record less)
            self._held: dict[int, tuple[list, list, list, list]] = {}
            self._partitions = 0  # the topic's partition count, asked once
            self._partition_of: dict[bytes, int] = {}

    def process(self, record: Record) -> None:
        topic = self._real_topic
        key = record.key
        if key is not None:
            key = self._kser(topic, key)
        value = record.value
        if value is not None:
            value = self._vser(topic, value)
        if self.batching:
            if key is None:
                self.drain()
            else:
                p = self._partition_of.get(key)
                if p is None:
                    p = self._partition(key)
                held = self._held.get(p)
                if held is None:
                    held = self._held[p] = ([], [], [], [])
                held[0].append(key)
                held[1].append(value)
                held[2].append(record.timestamp)
                held[3].append(record.headers)
                return
        if self.partitioner is None:
            self._send(topic, key, value, record.timestamp, record.headers, None)
            return
        n = self.context.partition_count(topic)
        partition = self.partitioner(record.key, record.value, n)
        if not isinstance(partition, int) or not 0 <= partition < n:
            raise ValueError(f"partitioner for {topic!r} returned {partition!r}; "
                             f"expected 0..{n - 1}")
        self.context.send(topic, key, value, record.timestamp, record.headers, partition)

    def _partition(self, key: bytes) -> int:
        if not self._partitions:
            self._partitions = self.context.partition_count(self._real_topic)
        if self._partitions == 1:
            return 0  # (murmur2 % 1: no hash, no cache entry)
        p = partition_for_key(key, self._partitions)
        if len(self._partition_of) >= 65536:
            self._partition_of.clear()
        self._partition_of[key] = p
        return p

    def drain(self) -> None:
        """Send the held records, partition by partition (in order within each)."""
        if not self._held:
            return
        held, self._held = self._held, {}
        topic = self._real_topic
        for partition, (keys, values, timestamps, headers) in held.items():
            self._send_many(topic, partition, keys, values, timestamps,
                            headers if any(headers) else None)

    def process_batch(self, records: list[Record]) -> None:
        """``process`` of each record, in order (graph.py's batch path): the batching
        sink's loop with its lookups done once per batch."""
        if not self.batching:
            for record in records:
                self.process(record)
            return
        topic = self._real_topic
        kser, vser = self._kser, self._vser
        partition_of = self._partition_of
        held_of = self._held
        for record in records:
            key = record[0]
            if key is None:
                self.process(record)  # drains what is held first (order)
                held_of = self._held  # (a new dict)
                continue
            key = kser(topic, key)
            value = record[1]
            if value is not None:
                value = vser(topic, value)
            p = partition_of.get(key)
            if p is None:
                p = self._partition(key)
            held = held_of.get(p)
            if held is None:
                held = held_of[p] = ([], [], [], [])
            held[0].append(key)
            held[1].append(value)
            held[2].append(record[2])
            held[3].append(record[3])


# ---------------------------------------------------------------------------- stateless


def _pair(fn: Callable[..., Any], out: Any) -> tuple[Any, Any]:
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} must return a (key, value) tuple, "
                        f"returned {out!r}")
    return out


class DropNullKey(Forwarding):
    """Before a repartition sink: a record without a key has no partition to go to."""

    def process(self, record: Record) -> None:
        if record.key is not None:
            self._forward(record)

    def map_batch(self, records: list[Record]) -> list[Record]:
        return [r for r in records if r[0] is not None]


class MapNode(Forwarding):
    def __init__(self, fn: Callable[[Any, Any], tuple[Any, Any]]) -> None:
        self.fn = fn

    def process(self, record: Record) -> None:
        key, value = _pair(self.fn, self.fn(record.key, record.value))
        self._forward(new_record((key, value, record.timestamp, record.headers)))

    def map_batch(self, records: list[Record]) -> list[Record]:
        fn = self.fn
        return [new_record((*_pair(fn, fn(r[0], r[1])), r[2], r[3])) for r in records]


class MapValuesNode(Forwarding):
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def process(self, record: Record) -> None:
        self._forward(new_record((record.key, self.fn(record.value),
                             record.timestamp, record.headers)))

    def map_batch(self, records: list[Record]) -> list[Record]:
        fn = self.fn
        return [new_record((r[0], fn(r[1]), r[2], r[3])) for r in records]


class SelectKeyNode(Forwarding):
    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def process(self, record: Record) -> None:
        self._forward(new_record((self.fn(record.key, record.value), record.value,
                             record.timestamp, record.headers)))

    def map_batch(self, records: list[Record]) -> list[Record]:
        fn = self.fn
        return [new_record((fn(r[0], r[1]), r[1], r[2], r[3])) for r in records]


class FilterNode(Forwarding):
    def __init__(self, predicate: Callable[[Any, Any], bool], negate: bool = False) -> None:
        self.predicate = predicate
        self.negate = negate

    def process(self, record: Record) -> None:
        if bool(self.predicate(record.key, record.value)) != self.negate:
            self._forward(record)

    def map_batch(self, records: list[Record]) -> list[Record]:
        predicate, negate = self.predicate, self.negate
        return [r for r in records if bool(predicate(r[0], r[1])) != negate]


class FlatMapNode(Forwarding):
    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def process(self, record: Record) -> None:
        for out in self.fn(record.key, record.value):
            key, value = _pair(self.fn, out)
            self._forward(new_record((key, value, record.timestamp, record.headers)))

    def map_batch(self, records: list[Record]) -> list[Record]:
        fn = self.fn
        return [new_record((*_pair(fn, out), r[2], r[3]))
                for r in records for out in fn(r[0], r[1])]


class FlatMapValuesNode(Forwarding):
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def process(self, record: Record) -> None:
        key, ts, headers = record.key, record.timestamp, record.headers
        forward = self._forward
        for value in self.fn(record.value):
            forward(new_record((key, value, ts, headers)))

    def map_batch(self, records: list[Record]) -> list[Record]:
        fn = self.fn
        return [new_record((r[0], value, r[2], r[3])) for r in records for value in fn(r[1])]


class PeekNode(Forwarding):
    def __init__(self, fn: Callable[[Any, Any], None]) -> None:
        self.fn = fn

    def process(self, record: Record) -> None:
        self.fn(record.key, record.value)
        self._forward(record)


class BranchNode(Forwarding):
    """Kafka's ``KSTREAM-BRANCH``: a record goes to the child of the first predicate that
    holds (dropped if none)."""

    def __init__(self, predicates: Sequence[Callable[[Any, Any], bool]],
                 children: Sequence[str]) -> None:
        self.routes = list(zip(predicates, children, strict=True))

    def process(self, record: Record) -> None:
        for predicate, child in self.routes:
            if predicate(record.key, record.value):
                self.context.forward(record, child)
                return


# --------------------------------------------------------------- stream aggregations


class StreamAggregateNode(StoreNode):
    """``GroupedStream.count/aggregate``: the key's aggregate in KV store ``store``; forwards
    ``Change(new aggregate, old aggregate)`` with the updating record's timestamp. Records
    with a None key or value are skipped (as Kafka's).

    With a record cache (Kafka's ``statestore.cache.max.bytes``; ``context.cache_entries``
    > 0) only a key's latest update reaches the store's backend, the changelog and the
    children, at the task's next commit (``flush_cache``) or when the cache is full:
    ``Change(latest, what the children saw last)``, with the latest update's timestamp and
    headers. Until then the store holds the update unserialized (``cache_put``), so reads
    and interactive queries see every update."""

    def __init__(self, store: str, initializer: Callable[[], Any],
                 aggregator: Callable[[Any, Any, Any], Any]) -> None:
        super().__init__(store)
        self.initializer = initializer
        self.aggregator = aggregator
        self._cache: dict[Any, tuple[Any, Any, int, Any]] = {}
        self._limit = 0

    def init(self, context: Any) -> None:
        super().init(context)
        self._limit = getattr(context, "cache_entries", 0)

    def process(self, record: Record) -> None:
        key = record.key
        if key is None or record.value is None:
            return
        if not self._limit or key.__hash__ is None:  # (an unhashable key is not cached)
            old = self.store.get(key)
            new = self.aggregator(key, record.value,
                                  self.initializer() if old is None else old)
            self.store.put(key, new)
            self._forward(new_record((key, Change(new, old), record.timestamp, record.headers)))
            return
        cache = self._cache
        hit = cache.get(key)
        if hit is None:
            old = seen = self.store.get(key)
        else:
            seen, old = hit[0], hit[1]
        new = self.aggregator(key, record.value, self.initializer() if old is None else old)
        self.store.cache_put(key, new)
        cache[key] = (seen, new, record.timestamp, record.headers)
        if len(cache) >= self._limit:
            self.flush_cache()

    def batch_terminal(self) -> bool:
        """graph.py's batch path may end here only with the record cache on: then this
        node forwards nothing until a flush (no record reaches the children per record)."""
        return bool(self._limit)

    def process_batch(self, records: list[Record]) -> None:
        """``process`` of each record, in order, with the lookups done once per batch."""
        if not self._limit:
            for record in records:
                self.process(record)
            return
        cache = self._cache
        cache_get = cache.get
        store = self.store
        store_get, cache_put = store.get, store.cache_put
        aggregator, initializer, limit = self.aggregator, self.initializer, self._limit
        for record in records:
            key = record[0]
            value = record[1]
            if key is None or value is None:
                continue
            if key.__hash__ is None:
                self.process(record)
                continue
            hit = cache_get(key)
            if hit is None:
                old = seen = store_get(key)
            else:
                seen, old = hit[0], hit[1]
            new = aggregator(key, value, initializer() if old is None else old)
            cache_put(key, new)
            cache[key] = (seen, new, record[2], record[3])
            if len(cache) >= limit:
                self.flush_cache()
                cache = self._cache
                cache_get = cache.get

    def flush_cache(self) -> None:
        """Write each cached key's latest aggregate to the store and its changelog, then
        forward it to the children."""
        _flush_cached(self)


class StreamReduceNode(StreamAggregateNode):
    """``GroupedStream.reduce``: the first value is the aggregate, then
    ``reducer(aggregate, value)``."""

    def __init__(self, store: str, reducer: Callable[[Any, Any], Any]) -> None:
        super().__init__(store, lambda: None, lambda k, v, agg: v if agg is None
                         else reducer(agg, v))


# ---------------------------------------------------------------------------- tables


class TableSourceNode(StoreNode):
    """A table from a topic (``KTABLE-SOURCE``) or a stream (``KSTREAM-TOTABLE``): the
    latest value per key in ``store``; forwards ``Change(value, previous)``. A None value
    deletes; a None key is skipped."""

    def process(self, record: Record) -> None:
        if record.key is None:
            return
        old = self.store.get(record.key)
        self.store.put(record.key, record.value)
        self._forward(new_record((record.key, Change(record.value, old),
                             record.timestamp, record.headers)))


class _TableTransform(StoreNode):
    """A table node computing each side of ``Change`` with ``_compute(key, value)`` (None
    stays None); materialized in ``store`` when one is given (then ``old`` is the store's)."""

    def _compute(self, key: Any, value: Any) -> Any:
        raise NotImplementedError

    def process(self, record: Record) -> None:
        change: Change = record.value
        key = record.key
        new = None if change.new is None else self._compute(key, change.new)
        if self.store is not None:
            old = self.store.get(key)
            if new is None and old is None:
                return
            self.store.put(key, new)
        else:
            old = None if change.old is None else self._compute(key, change.old)
        if new is None and old is None and self._drops_empty:
            return
        self._forward(new_record((record.key, Change(new, old),
                             record.timestamp, record.headers)))

    _drops_empty = False


class TableFilterNode(_TableTransform):
    """``Table.filter``: a value that fails the predicate reads as deleted; an update in
    which neither side passes is not forwarded (downstream never saw the key)."""

    _drops_empty = True

    def __init__(self, predicate: Callable[[Any, Any], bool], negate: bool = False,
                 store: str | None = None) -> None:
        super().__init__(store)
        self.predicate = predicate
        self.negate = negate

    def _compute(self, key: Any, value: Any) -> Any:
        return value if bool(self.predicate(key, value)) != self.negate else None


class TableMapValuesNode(_TableTransform):
    def __init__(self, fn: Callable[[Any], Any], store: str | None = None) -> None:
        super().__init__(store)
        self.fn = fn

    def _compute(self, key: Any, value: Any) -> Any:
        return self.fn(value)


class TableToStreamNode(Forwarding):
    """``Table.to_stream``: the new value (None: a tombstone)."""

    def process(self, record: Record) -> None:
        self._forward(new_record((record.key, record.value.new,
                             record.timestamp, record.headers)))

    def map_batch(self, records: list[Record]) -> list[Record]:
        return [new_record((r[0], r[1].new, r[2], r[3])) for r in records]


class TableSelectNode(Forwarding):
    """``Table.group_by`` (Kafka's KTableRepartitionMap): an update of ``k`` from ``old``
    to ``new`` becomes a subtraction ``Change(None, old')`` under ``old``'s new key, then
    an addition ``Change(new', None)`` under ``new``'s, where ``(key', v') = fn(k, v)``."""

    def __init__(self, fn: Callable[[Any, Any], tuple[Any, Any]]) -> None:
        self.fn = fn

    def process(self, record: Record) -> None:
        change: Change = record.value
        if change.old is not None:
            key, value = _pair(self.fn, self.fn(record.key, change.old))
            self._forward(new_record((key, Change(None, value),
                                 record.timestamp, record.headers)))
        if change.new is not None:
            key, value = _pair(self.fn, self.fn(record.key, change.new))
            self._forward(new_record((key, Change(value, None),
                                 record.timestamp, record.headers)))


class TableAggregateNode(StoreNode):
    """``GroupedTable.aggregate`` (Kafka's KTableAggregate): subtract the old value from
    the key's aggregate, add the new one, forward ``Change(new aggregate, old aggregate)``.
    An aggregate is never deleted (a count falls to 0 and stays).

    With the record cache (``context.cache_entries`` > 0) as ``StreamAggregateNode``: a
    key's latest aggregate is kept (``cache_put``) and written, logged and forwarded as
    ``Change(latest, what the children saw last)`` at the next commit or when the cache is
    full; the subtraction and addition of one row update (two records) become one."""

    def __init__(self, store: str, initializer: Callable[[], Any],
                 adder: Callable[[Any, Any, Any], Any],
                 subtractor: Callable[[Any, Any, Any], Any]) -> None:
        super().__init__(store)
        self.initializer = initializer
        self.adder = adder
        self.subtractor = subtractor
        self._cache: dict[Any, tuple[Any, Any, int, Any]] = {}
        self._limit = 0

    def init(self, context: Any) -> None:
        super().init(context)
        self._limit = getattr(context, "cache_entries", 0)

    def process(self, record: Record) -> None:
        key = record.key
        if key is None:
            return
        change: Change = record.value
        cached = self._limit and key.__hash__ is not None
        hit = self._cache.get(key) if cached else None
        if hit is None:
            old_agg = seen = self.store.get(key)
        else:
            seen, old_agg = hit[0], hit[1]
        agg = old_agg
        if change.old is not None and agg is not None:
            agg = self.subtractor(key, change.old, agg)
        if change.new is not None:
            agg = self.adder(key, change.new, self.initializer() if agg is None else agg)
        if cached:
            self.store.cache_put(key, agg)
            self._cache[key] = (seen, agg, record.timestamp, record.headers)
            if len(self._cache) >= self._limit:
                self.flush_cache()
            return
        self.store.put(key, agg)
        self._forward(new_record((key, Change(agg, old_agg), record.timestamp,
                                  record.headers)))

    def flush_cache(self) -> None:
        """Write each cached key's latest aggregate to the store and its changelog, then
        forward it to the children."""
        _flush_cached(self)


class TableReduceNode(TableAggregateNode):
    """``GroupedTable.reduce``: the first value is the aggregate; ``adder(agg, v)`` and
    ``subtractor(agg, v)`` afterwards."""

    def __init__(self, store: str, adder: Callable[[Any, Any], Any],
                 subtractor: Callable[[Any, Any], Any]) -> None:
        super().__init__(store, lambda: None,
                         lambda k, v, agg: v if agg is None else adder(agg, v),
                         lambda k, v, agg: subtractor(agg, v))


def _flush_cached(node) -> None:
    """A key-value aggregation's record cache flushed (``node._cache``: key -> (value the
    children saw last, latest aggregate, timestamp, headers)): the store and its changelog
    written, then one ``Change`` per key forwarded."""
    if not node._cache:
        return
    entries = node._cache
    node._cache = {}
    node.store.flush_cache()
    plan = node.__dict__.get("_flush_plan", False)
    if plan is False:  # the first flush (after init): batch.py's plan for the children
        plan = node._flush_plan = children_plan(node)
    if plan is None:
        forward = node._forward
        for key, (seen, new, ts, headers) in entries.items():
            forward(new_record((key, Change(new, seen), ts, headers)))
        return
    run_plan_chunks(plan, [new_record((key, Change(new, seen), ts, headers))
                           for key, (seen, new, ts, headers) in entries.items()])
