"""One task's processor graph (docs/streams.md "Testing a topology"): the nodes of a
sub-topology instantiated for one task, the contexts they see, the routing of
``forward()`` to children, stream time and punctuations. Both the test driver (driver.py)
and the runtime's task (task.py) run a sub-topology through this, so the two cannot drift.

How a runtime uses it (one TaskGraph per task, owned by the task's thread)::

    stores = {name: stores.build(spec, task_id) for name, spec in sub.stores.items()}
    for name, store in stores.items():          # open, then restore from the changelog
        store.open(task_dir, collector, (changelog_topic(app_id, name), task_id.partition)
                   if sub.stores[name].logged else None)
    graph = TaskGraph(sub, application_id=app_id, task_id=task_id, stores=stores,
                      collector=collector, clock=lambda: int(time.time() * 1000),
                      partition_count=lambda topic: metadata_partitions(topic))
    graph.init()                                 # after restore: processors' init()
    # for each consumed record, smallest timestamp first across the task's partitions:
    record = graph.record_from(topic, key_bytes, value_bytes, timestamp, headers)
    graph.process(topic, record, partition=p, offset=o)   # + stream-time punctuations
    graph.punctuate_wall_clock()                 # now and then (e.g. each poll loop)
    graph.close()                                # processors' close(); stores are yours

``record_from`` raises serdes.SerdeError for a record the source serdes cannot decode
(the runtime applies its deserialization exception handler); an exception from a
processor propagates out of ``process`` unchanged.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from .api import (
    Headers,
    PunctuationType,
    Record,
    RecordCollector,
    SourceSpec,
    Subtopology,
    TaskId,
    new_record,
    topic_of,
)
from .batch import batch_plan, run_batches
from .serdes import from_bytes


class _Schedule:
    __slots__ = ("callback", "cancelled", "context", "interval", "next")

    def __init__(self, context: NodeContext, interval: int, next_: int,
                 callback: Callable[[int], None]) -> None:
        self.context = context
        self.interval = interval
        self.next = next_
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class NodeContext:
    """api.ProcessorContext of one node in one task."""

    def __init__(self, graph: TaskGraph, node: str, children: tuple[str, ...],
                 stores: tuple[str, ...]) -> None:
        self._graph = graph
        self.node = node
        self.application_id = graph.application_id
        self.task_id = graph.task_id
        self._children = children
        self._stores = stores
        self._targets: list[Any] = []  # children's processors, set by TaskGraph.init
        self.cache_entries = graph.cache_entries  # record cache per caching node (0: off)
        self.send = graph.collector.send  # type: ignore[method-assign]  # a sink's write
        # a sink's batched writes (one partition's records at once), when the collector
        # offers them (task.Collector.send_many); None: send record by record
        self.send_many = (graph.collector.send_many  # type: ignore[attr-defined]
                          if getattr(graph.collector, "batching", False) else None)

    def forward(self, record: Record, child: str | None = None) -> None:
        if child is None:
            for p in self._targets:
                p.process(record)
            return
        self._forward_to(record, child)

    def _forward_to(self, record: Record, child: str) -> None:
        if child not in self._children:
            raise KeyError(f"{self.node}: {child!r} is not a child (children: "
                           f"{', '.join(self._children) or 'none'})")
        self._graph._processors[child].process(record)

    def store(self, name: str) -> Any:
        if name not in self._stores:
            raise KeyError(f"node {self.node!r} did not declare store {name!r} (its stores: "
                           f"{', '.join(self._stores) or 'none'})")
        return self._graph.stores[name]

    def schedule(self, interval_ms: int, kind: PunctuationType,
                 callback: Callable[[int], None]) -> _Schedule:
        return self._graph._schedule(self, interval_ms, kind, callback)

    def send(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int,
             headers: Headers = (), partition: int | None = None) -> None:
        """A sink's write: the collector's ``send`` (set per instance in ``__init__``)."""
        self._graph.collector.send(topic, key, value, timestamp, headers, partition)

    def partition_count(self, topic: str) -> int:
        return self._graph.partition_count(topic)

    @property
    def stream_time(self) -> int:
        return self._graph.stream_time

    @property
    def wall_clock_ms(self) -> int:
        return self._graph.clock()

    @property
    def topic(self) -> str | None:
        return self._graph.topic

    @property
    def partition(self) -> int | None:
        return self._graph.partition

    @property
    def offset(self) -> int | None:
        return self._graph.offset


def _single_forward(ctx: NodeContext) -> Callable[..., None]:
    """``ctx.forward`` of a node with one child: that child's ``process`` without the loop
    (the per-record path runs one forward per node)."""
    process = ctx._targets[0].process
    forward_to = ctx._forward_to

    def forward(record: Record, child: str | None = None) -> None:
        if child is None:
            process(record)
        else:
            forward_to(record, child)

    return forward


class TaskGraph:
    """The processors of ``subtopology`` for task ``task_id``. ``stores``: the task's open
    store instances by name (every store the sub-topology declares); ``collector``: where
    sinks send; ``clock()``: wall-clock ms; ``partition_count(real topic)``: for custom
    partitioners. Not thread-safe: one task thread owns it."""

    def __init__(self, subtopology: Subtopology, *, application_id: str, task_id: TaskId,
                 stores: Mapping[str, Any], collector: RecordCollector,
                 clock: Callable[[], int],
                 partition_count: Callable[[str], int] | None = None,
                 cache_entries: int = 0) -> None:
        missing = set(subtopology.stores) - set(stores)
        if missing:
            raise ValueError(f"task {task_id}: stores not given: {sorted(missing)}")
        self.subtopology = subtopology
        self.application_id = application_id
        self.task_id = task_id
        self.stores = stores
        self.collector = collector
        self.clock = clock
        self.partition_count = partition_count or (lambda topic: 1)
        self.cache_entries = cache_entries
        self.stream_time = -1
        self.topic: str | None = None
        self.partition: int | None = None
        self.offset: int | None = None
        self.sources: dict[str, SourceSpec] = {
            topic_of(s, application_id): s for s in subtopology.sources}
        self._processors: dict[str, Any] = {}
        self._contexts: dict[str, NodeContext] = {}
        self._queues: dict[PunctuationType, list[tuple[int, int, _Schedule]]] = {
            PunctuationType.STREAM_TIME: [], PunctuationType.WALL_CLOCK_TIME: []}
        self._stream_queue = self._queues[PunctuationType.STREAM_TIME]
        self._seq = itertools.count()
        self._entries: dict[str, tuple] = {}
        self._contexts_of: dict[int, NodeContext] = {}
        self.run_offset = -1
        self._drains: tuple[Callable[[], None], ...] = ()
        self._initialized = False

    def init(self) -> None:
        """Make every node's processor and call its ``init`` (stores already open and
        restored)."""
        sub = self.subtopology
        for name, spec in sub.nodes.items():
            self._processors[name] = spec.factory()
            self._contexts[name] = NodeContext(self, name, spec.children, spec.stores)
        for name, ctx in self._contexts.items():
            ctx._targets = [self._processors[c] for c in sub.nodes[name].children]
            if len(ctx._targets) == 1:
                ctx.forward = _single_forward(ctx)  # type: ignore[method-assign]
        for name, proc in self._processors.items():
            proc.init(self._contexts[name])
        self._contexts_of = {id(self._processors[name]): ctx
                             for name, ctx in self._contexts.items()}
        # sinks that batch their records: drained at the end of every run, process,
        # punctuation and flush, so nothing waits in them past the call that made it
        self._drains = tuple(p.drain for p in self._processors.values()
                             if getattr(p, "batching", False))
        self._initialized = True

    def drain(self) -> None:
        """Send what the batching sinks hold (processors.SinkNode.drain)."""
        for drain in self._drains:
            drain()

    def record_from(self, topic: str, key: bytes | None, value: bytes | None,
                    timestamp: int, headers: Headers = ()) -> Record:
        """A consumed record of (real) ``topic`` deserialized with its source's serdes,
        its timestamp from the source's extractor if any."""
        source = self.source_for(topic)
        k = from_bytes(source.key_serde, topic, key)
        v = from_bytes(source.value_serde, topic, value)
        if source.timestamp_extractor is not None:
            timestamp = source.timestamp_extractor(k, v, timestamp)
            if not isinstance(timestamp, int) or timestamp < 0:
                raise ValueError(f"timestamp extractor of {topic!r} returned {timestamp!r}; "
                                 "expected an int >= 0 (ms)")
        return Record(k, v, timestamp, tuple(headers))

    def source_for(self, topic: str) -> SourceSpec:
        try:
            return self.sources[topic]
        except KeyError:
            raise KeyError(f"task {self.task_id} does not read {topic!r} (it reads: "
                           f"{', '.join(self.sources)})") from None

    def process(self, topic: str, record: Record, *, partition: int | None = None,
                offset: int | None = None) -> None:
        """Run ``record`` of (real) ``topic`` through the graph: stream time first becomes
        max(stream time, record timestamp), then the source node and its descendants, then
        the stream-time punctuations that are due."""
        if not self._initialized:
            raise RuntimeError("TaskGraph.init() has not been called")
        source = self.source_for(topic)
        if record.timestamp > self.stream_time:
            self.stream_time = record.timestamp
        self.topic, self.partition, self.offset = topic, partition, offset
        try:
            self._processors[source.node].process(record)
        finally:
            self.topic = self.partition = self.offset = None
        queue = self._stream_queue
        if queue and queue[0][0] <= self.stream_time:
            self._punctuate(PunctuationType.STREAM_TIME, self.stream_time)
        if self._drains:
            self.drain()

    def _entry(self, topic: str) -> tuple:
        """What ``run`` needs per (real) topic: the source's deserializers, timestamp
        extractor and the processes a record enters (a plain source node's children
        directly: it only forwards)."""
        entry = self._entries.get(topic)
        if entry is None:
            from .processors import PassThrough

            source = self.source_for(topic)
            proc = self._processors[source.node]
            if type(proc) is PassThrough:
                targets = tuple(p.process for p in self._contexts[source.node]._targets)
            else:
                targets = (proc.process,)
            plan = None  # batch.py
            if len(targets) == 1 and source.timestamp_extractor is None:
                first = (self._contexts[source.node]._targets[0]
                         if type(proc) is PassThrough else proc)
                plan = self._batch_plan(first)
            entry = self._entries[topic] = (source.key_serde.deserialize,
                                            source.value_serde.deserialize,
                                            source.timestamp_extractor, targets, plan)
        return entry

    def _batch_plan(self, proc: Any) -> tuple | None:
        """batch.py's plan from ``proc`` (a method: tests turn the batch path off here)."""
        return batch_plan(self, proc)

    def run(self, queue: Any, n: int, on_bad: Callable[[tuple, Exception], None]) -> int:
        """Process the first ``n`` consumed records of ``queue`` (a deque of the consumer's
        ``(topic, partition, offset, timestamp, key, value, headers)`` tuples, all of one
        partition): what ``record_from`` + ``process`` do per record, with the per-topic
        lookups done once. A record the serdes cannot decode goes to ``on_bad(rec, exc)``.
        Returns the offset after the last record done (-1: none), also kept in
        ``run_offset`` when a processor (or ``on_bad``) raises: the failing record is not
        done."""
        if not self._initialized:
            raise RuntimeError("TaskGraph.init() has not been called")
        popleft = queue.popleft
        topic = queue[0][0]
        kde, vde, extractor, targets, plan = self._entry(topic)
        single = targets[0] if len(targets) == 1 else None
        stream_queue = self._stream_queue
        if plan is not None and not stream_queue:
            return run_batches(self, queue, n, on_bad, topic, kde, vde, plan)
        next_offset = -1
        self.topic, self.partition = topic, queue[0][1]
        try:
            for _ in range(n):
                rec = popleft()
                ts = rec[3]
                try:
                    k = rec[4]
                    if k is not None:
                        k = kde(topic, k)
                    v = rec[5]
                    if v is not None:
                        v = vde(topic, v)
                    if extractor is not None:
                        ts = extractor(k, v, ts)
                        if not isinstance(ts, int) or ts < 0:
                            raise ValueError(f"timestamp extractor of {topic!r} returned "
                                             f"{ts!r}; expected an int >= 0 (ms)")
                    h = rec[6]
                    record = new_record((k, v, ts, tuple(h) if h else ()))
                except Exception as exc:  # noqa: BLE001 - the handler decides
                    on_bad(rec, exc)
                    next_offset = rec[2] + 1
                    continue
                if ts > self.stream_time:
                    self.stream_time = ts
                self.offset = rec[2]
                if single is not None:
                    single(record)
                else:
                    for process in targets:
                        process(record)
                if stream_queue and stream_queue[0][0] <= self.stream_time:
                    where = self.topic, self.partition
                    self.topic = self.partition = self.offset = None
                    self._punctuate(PunctuationType.STREAM_TIME, self.stream_time)
                    self.topic, self.partition = where
                next_offset = rec[2] + 1
        finally:
            self.end_run(next_offset)
        return next_offset

    def end_run(self, next_offset: int) -> None:
        """After a run of records (whether it finished or raised): no current record,
        ``next_offset`` the one to resume from, the drains run."""
        self.topic = self.partition = self.offset = None
        self.run_offset = next_offset
        if self._drains:
            self.drain()

    def flush(self) -> None:
        """Flush the record caches (before a commit): upstream nodes first, so what they
        forward reaches a downstream cache before that one flushes."""
        for proc in self._processors.values():
            flush = getattr(proc, "flush_cache", None)
            if flush is not None:
                flush()
        if self._drains:
            self.drain()

    # punctuation -----------------------------------------------------------------------
    def _schedule(self, ctx: NodeContext, interval: int, kind: PunctuationType,
                  callback: Callable[[int], None]) -> _Schedule:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"punctuation interval must be >= 1 ms, got {interval!r}")
        kind = PunctuationType(kind)
        # as Kafka's: stream time aligned to 0 (fires with the first record), wall clock
        # an interval from now
        first = 0 if kind is PunctuationType.STREAM_TIME else self.clock() + interval
        sched = _Schedule(ctx, interval, first, callback)
        heapq.heappush(self._queues[kind], (first, next(self._seq), sched))
        return sched

    def punctuate_stream_time(self) -> bool:
        """Run the stream-time punctuations due at the current stream time."""
        if self.stream_time < 0:
            return False
        fired = self._punctuate(PunctuationType.STREAM_TIME, self.stream_time)
        if fired and self._drains:
            self.drain()
        return fired

    def punctuate_wall_clock(self, now: int | None = None) -> bool:
        """Run the wall-clock punctuations due at ``now`` (default: ``clock()``)."""
        fired = self._punctuate(PunctuationType.WALL_CLOCK_TIME,
                                self.clock() if now is None else now)
        if fired and self._drains:
            self.drain()
        return fired

    def _punctuate(self, kind: PunctuationType, now: int) -> bool:
        queue = self._queues[kind]
        fired = False
        while queue and queue[0][0] <= now:
            _, _, sched = heapq.heappop(queue)
            if sched.cancelled:
                continue
            sched.callback(now)
            fired = True
            # Kafka's PunctuationSchedule.next: skip the intervals missed, fire once
            missed = (now - sched.next) // sched.interval
            sched.next += (missed + 1) * sched.interval
            if not sched.cancelled:
                heapq.heappush(queue, (sched.next, next(self._seq), sched))
        return fired

    def close(self) -> None:
        """Every processor's ``close()`` (stores are closed by their owner)."""
        errors = []
        for proc in self._processors.values():
            try:
                proc.close()
            except Exception as e:  # close them all; report the first
                errors.append(e)
        self._processors.clear()
        self._drains = ()
        self._initialized = False
        if errors:
            raise errors[0]


__all__ = ["NodeContext", "TaskGraph"]
