"""The record cache's flush and the window store's expiry, batched (docs/streams.md "State
stores"): a flush hands the backend its rows under one lock (``write_many``) and the
changelog its records in one ``send_many`` when the collector has one; an expiry does not
write to SQLite the cached windows it is about to delete (their changelog records are still
sent); a tumbling or hopping aggregation reuses the windows of a time slot; a sink to a
one-partition topic hashes no key."""

from __future__ import annotations

import random
import sqlite3

import pytest

from rillet.streams import processors, serdes
from rillet.streams.api import Record, TaskId, Window
from rillet.streams.graph import TaskGraph
from rillet.streams.stores.keys import split_window_key
from rillet.streams.topology import Topology
from rillet.streams.windowed_nodes import TimeWindowAggregateNode
from rillet.streams.windows import HoppingWindows, TumblingWindows

from .stores_support import Collector as ListCollector
from .stores_support import opened


class ManyCollector(ListCollector):
    """A collector with ``send_many`` (as the runtime's): each call kept whole."""

    batching = True  # (sinks batch through it too)

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple] = []

    def send_many(self, topic, partition, keys, values, timestamps, headers=None) -> None:
        self.batches.append((topic, partition, list(keys), list(values), list(timestamps)))


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("kind", ["kv", "window"])
def test_a_flush_sends_its_changelog_records_in_one_batch(kind, backend, tmp_path):
    many, plain = ManyCollector(), ListCollector()
    kw = {"retention_ms": 10_000, "window_size_ms": 10} if kind == "window" else {}
    stores = [opened(kind, backend, None if backend == "memory" else tmp_path / str(i),
                     log, **kw) for i, log in enumerate((many, plain))]
    for store in stores:
        for i in range(5):
            if kind == "kv":
                store.cache_put(f"k{i}", i)
            else:
                store.cache_put(f"k{i}", i, 100 * i)
        store.flush_cache()
    assert not many.sent and len(many.batches) == 1
    topic, partition, keys, values, timestamps = many.batches[0]
    assert (topic, partition) == ("app-s-changelog", 1)
    # the same records, in order, as the collector without send_many gets one by one
    assert list(zip(keys, values, strict=True)) == plain.changelog()
    assert [p for *_, p in plain.sent] == [1] * 5
    if kind == "window":
        assert [split_window_key(k)[1] for k in keys] == [0, 100, 200, 300, 400]
        assert timestamps == [0, 100, 200, 300, 400]  # the window start, as put sends
        assert [stores[0].fetch(f"k{i}", 100 * i) for i in range(5)] == list(range(5))
    else:
        assert [stores[0].get(f"k{i}") for i in range(5)] == list(range(5))
    for store in stores:
        store.commit(None)
        store.close()


def test_expiry_deletes_cached_windows_without_writing_them(tmp_path):
    log = ListCollector()
    w = opened("window", "sqlite", tmp_path, log, retention_ms=100, window_size_ms=10)
    w.put("old", 7, 0)
    w.commit(None)  # a committed row the expiry must delete
    w.cache_put("k", 1, 10)
    w.flush_cache()  # in the backend's write-back cache, not yet in SQLite
    w.cache_put("k", 2, 20)  # still in the typed cache: written by the expiry
    w.cache_put("k", 3, 200)  # live: stays cached until the commit
    written: list = []
    real_write = w._b._write
    w._b._write = lambda rows: (written.extend(rows), real_write(rows))
    w.expire(250)  # drops windows starting before 151
    assert all(pk[1] >= 151 for pk, _ in written), written
    # every update of the dropped windows still reached the changelog
    assert [(split_window_key(k)[1], v) for k, v in log.changelog()] == [
        (0, b"\0" * 7 + b"\7"), (10, b"\0" * 7 + b"\1"), (20, b"\0" * 7 + b"\2")]
    w.flush_cache()
    w.commit(None)
    assert list(w.fetch_range("k", 0, 300)) == [(200, 3)]
    w.close()
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        assert conn.execute("SELECT start FROM win").fetchall() == [(200,)]


@pytest.mark.parametrize("windows", [TumblingWindows(60), HoppingWindows(60, 20),
                                     HoppingWindows(50, 7, grace_ms=5)])
def test_the_windows_of_a_time_slot_are_windows_for(windows):
    node = TimeWindowAggregateNode("s", windows, lambda: 0, lambda k, v, a: a + v)

    class Context:
        cache_entries = 0

        def store(self, name):
            return None

        def forward(self, record, child=None):
            pass

    node.init(Context())
    rng = random.Random(16)
    # more slots than it keeps (512), out of order, negative times included
    for ts in [rng.randrange(-200, 100_000) for _ in range(3000)] + [0, 59, 60, 61, -1]:
        assert node._windows_for(ts) == tuple(windows.windows_for(ts))
    assert all(isinstance(w, Window) for w in node._windows_for(130))
    assert len(node._windows_of) <= 512


def test_a_sink_to_a_one_partition_topic_hashes_no_key(monkeypatch):
    monkeypatch.setattr(processors, "partition_for_key",
                        lambda key, n: pytest.fail("murmur2 of a key for 1 partition"))
    collector = ManyCollector()
    t = Topology(serdes.String, serdes.String)
    t.stream("in").to("out")
    (sub,) = t.compile().subtopologies
    graph = TaskGraph(sub, application_id="app", task_id=TaskId(0, 0), stores={},
                      collector=collector, clock=lambda: 0, partition_count=lambda _t: 1)
    graph.init()
    graph.process("in", Record("a", "x", 1))
    graph.process("in", Record("b", "y", 2))
    assert [(b[0], b[1], b[2]) for b in collector.batches] == [
        ("out", 0, [b"a"]), ("out", 0, [b"b"])]
