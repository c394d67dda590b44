"""The record cache (``statestore.cache.max.bytes``; docs/streams.md "Configuration"):
stream and tumbling/hopping windowed aggregations run through a task graph with the cache
on, flushed at random points as the runtime's commits do, against the same records with
the cache off. Downstream and the changelog get a subsequence of the uncached updates
(each key's latest per flush, in order), ending at the same values; the store reads see
every update before a flush; typed stores keep cached writes unserialized until flushed."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rillet.streams import serdes
from rillet.streams.api import Record, TaskId
from rillet.streams.graph import TaskGraph
from rillet.streams.stores import build
from rillet.streams.topology import Topology
from rillet.streams.windows import HoppingWindows, TumblingWindows

from .stores_support import Collector as ListCollector
from .stores_support import opened

KEYS = ["a", "b", "c"]
TASK = TaskId(0, 0)


class Sent:
    def __init__(self) -> None:
        self.by_topic: dict[str, list[tuple]] = defaultdict(list)

    def send(self, topic, key, value, timestamp, headers=(), partition=None) -> None:
        self.by_topic[topic].append((key, value))


def _graph(windows, cache_entries: int):
    t = Topology(serdes.String, serdes.Long)
    grouped = t.stream("in").group_by_key()
    table = (grouped.count(store="n") if windows is None
             else grouped.window(windows).count(store="n"))
    table.to_stream().to("out", value_serde=serdes.Long)
    (sub,) = t.compile().subtopologies
    sent = Sent()
    stores = {name: build(spec, TASK) for name, spec in sub.stores.items()}
    for name, store in stores.items():
        store.open(None, sent, (f"app-{name}-changelog", 0))
    graph = TaskGraph(sub, application_id="app", task_id=TASK, stores=stores,
                      collector=sent, clock=lambda: 0, cache_entries=cache_entries)
    graph.init()
    return graph, stores["n"], sent


def _per_key(pairs: list[tuple]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = defaultdict(list)
    for k, v in pairs:
        out[k].append(v)
    return out


def _is_subsequence(short: list, long: list) -> bool:
    it = iter(long)
    return all(x in it for x in short)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([None, TumblingWindows(10_000), HoppingWindows(10_000, 5_000)]),
       st.integers(1, 8),
       st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 60_000), st.booleans()),
                max_size=60))
def test_the_cache_sends_each_keys_latest_per_flush(windows, entries, records):
    plain, plain_store, plain_sent = _graph(windows, 0)
    cached, cached_store, cached_sent = _graph(windows, entries)
    for key, ts, commit in records:
        for graph in (plain, cached):
            graph.process("in", Record(key, 1, ts))
        # every update is readable at once, cached or not
        if windows is None:
            assert cached_store.get(key) == plain_store.get(key)
        else:
            start = ts - ts % windows.advance_ms
            assert cached_store.fetch(key, start) == plain_store.fetch(key, start)
        if commit:
            cached.flush()
    cached.flush()
    for topic in ("out", "app-n-changelog"):
        want, got = _per_key(plain_sent.by_topic[topic]), _per_key(cached_sent.by_topic[topic])
        assert set(got) == set(want)
        for k in want:
            assert got[k][-1] == want[k][-1], (topic, k)
            assert _is_subsequence(got[k], want[k]), (topic, k, got[k], want[k])
    assert len(cached_store) == len(plain_store)
    assert sorted(map(repr, cached_store.all())) == sorted(map(repr, plain_store.all()))


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_cached_writes_are_read_back_and_flushed_before_other_reads(backend, tmp_path):
    log = ListCollector()
    kv = opened("kv", backend, None if backend == "memory" else tmp_path, log)
    kv.put("x", 1)
    kv.cache_put("x", 2)
    kv.cache_put("y", 3)
    assert kv.get("x") == 2 and kv.get("y") == 3 and len(log.sent) == 1
    with pytest.raises(RuntimeError, match="unflushed"):
        kv.commit(5)  # the changelog records of the cached writes must be in the commit
    assert sorted(kv.all()) == [("x", 2), ("y", 3)]  # an iteration flushes first
    assert [k for k, _ in log.changelog()] == [b"x", b"x", b"y"]
    kv.commit(7)
    kv.cache_put("z", 4)
    kv.put("z", 5)  # a direct put wins over the cached one
    kv.flush_cache()
    assert kv.get("z") == 5
    kv.cache_put("gone", 1)
    kv.close()  # not flushed: lost with the uncommitted writes
    with pytest.raises(TypeError):
        opened("kv", backend, None, None).cache_put(None, 1)


def test_window_store_cache_and_expiry(tmp_path):
    log = ListCollector()
    w = opened("window", "sqlite", tmp_path, log, retention_ms=100, window_size_ms=10)
    w.cache_put("k", 1, 0)
    w.cache_put("k", 2, 50)
    assert w.fetch("k", 0) == 1 and w.fetch("k", 50) == 2 and not log.sent
    assert list(w.fetch_range("k", 0, 100)) == [(0, 1), (50, 2)]  # flushed first
    assert len(log.sent) == 2
    w.cache_put("k", 3, 200)
    w.expire(250)  # flushes, then drops windows starting before 151
    assert list(w.fetch_range("k", 0, 300)) == [(200, 3)]
    assert w.fetch("k", 10_000) is None  # newer than any window: no SQL needed


@pytest.mark.parametrize("windows", [None, TumblingWindows(10_000)])
def test_one_record_per_key_per_flush(windows):
    graph, store, sent = _graph(windows, 100)
    for ts in range(10):
        graph.process("in", Record("k", 1, ts))
    assert not sent.by_topic and (store.get("k") if windows is None
                                  else store.fetch("k", 0)) == 10
    graph.flush()
    assert [serdes.Long.deserialize("t", v) for _, v in sent.by_topic["out"]] == [10]
    assert len(sent.by_topic["app-n-changelog"]) == 1


@pytest.mark.parametrize("windows", [None, TumblingWindows(10_000)])
def test_unhashable_keys_are_counted_without_the_cache(windows):
    """A JSON key may be a dict: it cannot be a cache key, so it is counted uncached."""
    t = Topology(serdes.Json, serdes.Long)
    grouped = t.stream("in").group_by_key()
    (grouped.count(store="n") if windows is None else grouped.window(windows).count(
        store="n")).to_stream().to("out", value_serde=serdes.Long)
    (sub,) = t.compile().subtopologies
    sent = Sent()
    stores = {name: build(spec, TASK) for name, spec in sub.stores.items()}
    for name, store in stores.items():
        store.open(None, sent, (f"app-{name}-changelog", 0))
    graph = TaskGraph(sub, application_id="app", task_id=TASK, stores=stores,
                      collector=sent, clock=lambda: 0, cache_entries=100)
    graph.init()
    for ts in range(3):
        graph.process("in", Record({"user": 1}, 1, ts))
        graph.process("in", Record("plain", 1, ts))
    graph.flush()
    counts = [serdes.Long.deserialize("t", v) for _, v in sent.by_topic["out"]]
    assert counts == [1, 2, 3, 3]  # the dict key's every update, then the cached one's
