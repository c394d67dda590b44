"""Sinks that batch (docs/streams.md "Repartitioning"): with a collector that offers
``send_many`` (the runtime's, over a producer that partitions keys by murmur2) a sink holds
keyed records per partition and the task graph hands each partition's records over in one
call, in order, at the end of every ``process``/``run``/flush; a record without a key
drains what is held first. Without ``send_many`` (the test driver) a sink sends one by
one."""

from __future__ import annotations

from collections import deque

from rillet._partitioner import partition_for_key
from rillet.streams import serdes
from rillet.streams.api import Record, TaskId
from rillet.streams.graph import TaskGraph
from rillet.streams.topology import Topology

TASK = TaskId(0, 0)


class BatchingCollector:
    batching = True

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def send(self, topic, key, value, timestamp, headers=(), partition=None) -> None:
        self.calls.append(("send", topic, partition, [(key, value, timestamp, headers)]))

    def send_many(self, topic, partition, keys, values, timestamps, headers=None) -> None:
        self.calls.append(("send_many", topic, partition,
                           list(zip(keys, values, timestamps, headers or [()] * len(keys),
                                    strict=True))))


def _graph(collector, partitions: int = 3) -> TaskGraph:
    t = Topology(serdes.String, serdes.String)
    t.stream("in").map_values(str.upper).to("out")
    (sub,) = t.compile().subtopologies
    graph = TaskGraph(sub, application_id="app", task_id=TASK, stores={},
                      collector=collector, clock=lambda: 0,
                      partition_count=lambda topic: partitions)
    graph.init()
    return graph


def test_keyed_records_go_out_per_partition_in_order_at_the_end_of_a_run():
    collector = BatchingCollector()
    graph = _graph(collector)
    keys = [f"k{i % 7}" for i in range(40)]
    queue = deque(("in", 0, i, 100 + i, k.encode(), f"v{i}".encode(), ())
                  for i, k in enumerate(keys))
    graph.run(queue, 40, lambda rec, exc: None)
    assert {c[0] for c in collector.calls} == {"send_many"}
    assert len(collector.calls) == len({c[2] for c in collector.calls})  # one per partition
    for _, topic, partition, records in collector.calls:
        assert topic == "out"
        want = [(k.encode(), f"V{i}".encode(), 100 + i, ())
                for i, k in enumerate(keys) if partition_for_key(k.encode(), 3) == partition]
        assert records == want


def test_a_record_without_a_key_drains_the_held_ones_first():
    collector = BatchingCollector()
    graph = _graph(collector, partitions=1)
    queue = deque([("in", 0, 0, 1, b"a", b"x", ()), ("in", 0, 1, 2, None, b"y", ()),
                   ("in", 0, 2, 3, b"b", b"z", ())])
    graph.run(queue, 3, lambda rec, exc: None)
    assert [(c[0], [r[1] for r in c[3]]) for c in collector.calls] == [
        ("send_many", [b"X"]), ("send", [b"Y"]), ("send_many", [b"Z"])]


def test_process_drains_too_and_a_plain_collector_gets_one_send_per_record():
    collector = BatchingCollector()
    graph = _graph(collector)
    graph.process("in", Record("k", "v", 5, (("h", b"1"),)))
    assert collector.calls == [("send_many", "out", partition_for_key(b"k", 3),
                                [(b"k", b"V", 5, (("h", b"1"),))])]
    collector.batching = False  # as the test driver's collector: no send_many
    plain = _graph(collector)
    collector.calls.clear()
    plain.process("in", Record("k", "v", 5))
    assert collector.calls == [("send", "out", None, [(b"k", b"V", 5, ())])]
