"""The task graph's batch path (docs/streams.md "Running"): ``TaskGraph.run`` hands a
partition's consumed records to :func:`run_batches` when its source leads into a *batch
plan*, a linear chain of stateless nodes (each with one child and a ``map_batch(records)
-> records``: map, map_values, flat_map, flat_map_values, filter, select_key, the
repartition filter, a plain source) ending at a node that takes a whole list
(``process_batch``: a sink, a stream aggregation with its record cache on). The records go
``_BATCH`` at a time through each stage as one list comprehension instead of one record
through every node's ``process`` (a Python call and a ``Record`` per node per record).

A record cache's flush (a stream or table aggregation's, processors._flush_cached) hands
its records to its one child the same way when that child starts such a chain (the word
count's ``to_stream().to(...)``: under exactly_once, with its 100 ms commits, about as many
records as the input's words).

Since the chain is linear and its end forwards nothing per record, every record reaches
the end in the same order as record by record, and the sinks, stores and changelogs see
the same writes (tests/unit/streams/test_batch_path.py). What changes is only when a
user's function runs: each stage's for a whole list before the next stage's (Kafka
promises no interleaving either). Not taken: with a stream-time punctuation scheduled, a
timestamp extractor, a branch or any node with several children, ``peek``, a custom
processor, or a subclass that overrides ``process``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .api import Record, new_record

if TYPE_CHECKING:
    from .graph import TaskGraph

# records per batch: a list that stays in the CPU cache (2,048 was slower than record by
# record in the word count's chain, 64 about a quarter faster)
_BATCH = 64


def _native(proc: Any, method: str) -> bool:
    """``proc`` has ``method`` from the class that also gives it its ``process`` (a
    subclass overriding ``process`` alone does not get the batch path of its parent)."""
    cls = type(proc)
    for klass in cls.__mro__:
        if method in klass.__dict__:
            return cls.process is klass.__dict__.get("process")
    return False


def batch_plan(graph: TaskGraph, proc: Any) -> tuple[tuple[Callable, ...], Callable] | None:
    """The batch plan from ``proc`` (the node a source's records enter): the stages'
    ``map_batch`` and the last node's ``process_batch``; None when there is none."""
    stages = []
    node = proc
    while True:
        if _native(node, "map_batch"):
            targets = graph._contexts_of[id(node)]._targets
            if len(targets) != 1:
                return None
            stages.append(node.map_batch)
            node = targets[0]
            continue
        if _native(node, "process_batch") and getattr(node, "batch_terminal",
                                                      lambda: True)():
            return tuple(stages), node.process_batch
        return None


def children_plan(node: Any) -> tuple[tuple[Callable, ...], Callable] | None:
    """The batch plan from ``node``'s one child (None: none, or several children): how a
    record cache's flush hands its records on (processors._flush_cached)."""
    ctx = getattr(node, "context", None)
    graph = getattr(ctx, "_graph", None)
    targets = getattr(ctx, "_targets", None)
    if graph is None or not targets or len(targets) != 1:
        return None
    return graph._batch_plan(targets[0])


def run_plan_chunks(plan: tuple, records: list[Record]) -> None:
    """``records`` through ``plan``, ``_BATCH`` at a time (a flush: no stream time, no
    offsets to account)."""
    stages, last = plan
    for i in range(0, len(records), _BATCH):
        batch = records[i:i + _BATCH]
        for stage in stages:
            batch = stage(batch)
            if not batch:
                break
        else:
            last(batch)


def run_batches(graph: TaskGraph, queue: Any, n: int,
                on_bad: Callable[[tuple, Exception], None], topic: str, kde: Callable,
                vde: Callable, plan: tuple) -> int:
    """``TaskGraph.run`` along ``plan``: up to ``_BATCH`` records at a time deserialized,
    passed through each stage as a list and handed to the last node. Stream time moves to
    the largest timestamp of a batch before it runs; the context's ``offset`` is None
    meanwhile (as in a cache flush). A record the serdes cannot decode first lets the
    records before it through, then goes to ``on_bad``. When a stage raises, no record of
    that batch counts as done (``run_offset``: the end of the batch before), which can
    only make more records be processed again."""
    stages, last = plan
    popleft = queue.popleft
    next_offset = -1
    graph.topic, graph.partition, graph.offset = topic, queue[0][1], None
    try:
        while n > 0:
            m = min(n, _BATCH)
            n -= m
            raw = [popleft() for _ in range(m)]
            try:
                batch = [new_record((None if r[4] is None else kde(topic, r[4]),
                                     None if r[5] is None else vde(topic, r[5]),
                                     r[3], tuple(r[6]) if r[6] else ()))
                         for r in raw]
            except Exception:  # noqa: BLE001 - one by one: the handler decides
                batch = None
            if batch is None:
                batch = []
                for rec in raw:
                    try:
                        k, v = rec[4], rec[5]
                        record = new_record((None if k is None else kde(topic, k),
                                             None if v is None else vde(topic, v),
                                             rec[3], tuple(rec[6]) if rec[6] else ()))
                    except Exception as exc:  # noqa: BLE001 - the handler decides
                        if batch:
                            _run_plan(graph, batch, stages, last)
                            batch = []
                        next_offset = rec[2]  # the records before it are done
                        on_bad(rec, exc)
                        next_offset = rec[2] + 1
                        continue
                    batch.append(record)
            if batch:
                _run_plan(graph, batch, stages, last)
            next_offset = raw[-1][2] + 1
    finally:
        graph.end_run(next_offset)
    return next_offset


def _run_plan(graph: TaskGraph, batch: list[Record], stages: tuple, last: Callable) -> None:
    ts = max(r[2] for r in batch)
    if ts > graph.stream_time:
        graph.stream_time = ts
    for stage in stages:
        batch = stage(batch)
        if not batch:
            return
    last(batch)


__all__ = ["batch_plan", "children_plan", "run_batches", "run_plan_chunks"]
