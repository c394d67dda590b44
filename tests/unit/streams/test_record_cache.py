"""The record cache (``statestore.cache.max.bytes``; docs/streams.md "Configuration"):
stream and tumbling/hopping windowed aggregations run through a task graph with the cache
on, flushed at random points as the runtime's commits do, against the same records with
the cache off. Downstream and the changelog get a subsequence of the uncached updates
(each key's latest per flush, in order), ending at the same values; the store reads see
every update before a flush; typed stores keep cached writes unserialized until flushed."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rillet.streams import serdes
from rillet.streams.api import Record, TaskId, Window
from rillet.streams.graph import TaskGraph
from rillet.streams.stores import build
from rillet.streams.topology import Topology
from rillet.streams.windows import (
    HoppingWindows,
    SessionWindowedSerde,
    SessionWindows,
    SlidingWindows,
    TumblingWindows,
)

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
    return _task(t, cache_entries)


def _task(t: Topology, cache_entries: int):
    """The one sub-topology of ``t`` as a started task graph, its stores open on changelogs
    that ``Sent`` collects: ``(graph, the store "n", sent)``."""
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


# ------------------------------------------- sliding and session windows, table aggregations


def _windowed_graph(windows, cache_entries: int, suppress: bool = False):
    t = Topology(serdes.String, serdes.Long)
    table = t.stream("in").group_by_key().window(windows).count(store="n")
    (table.suppress() if suppress else table).to_stream().to("out")
    return _task(t, cache_entries)


def _final(pairs: list[tuple]) -> dict:
    """Each key's last value, keys whose last value is a tombstone left out."""
    last = dict(pairs)
    return {k: v for k, v in last.items() if v is not None}


def _check_cached_against_plain(plain_sent, cached_sent, topics) -> None:
    """Per key, the cached run sent a subsequence of the uncached run's values ending at
    the same value; a key it never sent ended deleted in the uncached run (a session made
    and merged away within one commit interval never leaves the cache)."""
    for topic in topics:
        want, got = _per_key(plain_sent.by_topic[topic]), _per_key(cached_sent.by_topic[topic])
        assert set(got) <= set(want), topic
        for k in want:
            if k not in got:
                assert want[k][-1] is None, (topic, k, want[k])
                continue
            assert got[k][-1] == want[k][-1], (topic, k)
            assert _is_subsequence(got[k], want[k]), (topic, k, got[k], want[k])
        assert _final(cached_sent.by_topic[topic]) == _final(plain_sent.by_topic[topic])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([TumblingWindows(10_000, grace_ms=5_000),
                        HoppingWindows(10_000, 5_000, grace_ms=2_000),
                        SlidingWindows(5_000, grace_ms=20_000),
                        SlidingWindows(2_000, grace_ms=0),
                        SessionWindows(5_000, grace_ms=20_000),
                        SessionWindows(3_000, grace_ms=2_000)]),
       st.integers(1, 8), st.booleans(),
       st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 60_000), st.booleans()),
                max_size=60))
@example(TumblingWindows(10_000, grace_ms=5_000), 3, True,
         [("a", 0, False), ("a", 15_000, False), ("a", 10_000, False)])  # found in CI
def test_windowed_caches_send_each_windows_latest_per_flush_and_the_same_finals(
        windows, entries, suppress, records):
    """Every windowed cache, also in front of ``suppress``: the final results are the
    uncached run's, in the same order (a final result never overtakes the window's last
    update, which waits in the cache while stream time moves on)."""
    plain, plain_store, plain_sent = _windowed_graph(windows, 0, suppress)
    cached, cached_store, cached_sent = _windowed_graph(windows, entries, suppress)
    sessions = isinstance(windows, SessionWindows)
    for key, ts, commit in records:
        for graph in (plain, cached):
            graph.process("in", Record(key, 1, ts))
        # every update is readable at once, cached or not
        if isinstance(windows, HoppingWindows):
            start = ts - ts % windows.advance_ms
            assert cached_store.fetch(key, start) == plain_store.fetch(key, start)
        elif sessions:
            assert list(cached_store.fetch(key)) == list(plain_store.fetch(key))
            assert (list(cached_store.find_sessions(key, ts - 3_000, ts + 3_000))
                    == list(plain_store.find_sessions(key, ts - 3_000, ts + 3_000)))
        else:
            assert (list(cached_store.fetch_range(key, ts - 6_000, ts + 6_000))
                    == list(plain_store.fetch_range(key, ts - 6_000, ts + 6_000)))
        if commit:
            cached.flush()
    cached.flush()
    topics = ["out", "app-n-changelog"]
    if suppress:  # final results: exactly the same, in the same order
        assert cached_sent.by_topic["out"] == plain_sent.by_topic["out"]
        topics = ["app-n-changelog"]
    _check_cached_against_plain(plain_sent, cached_sent, topics)
    assert sorted(map(repr, cached_store.all())) == sorted(map(repr, plain_store.all()))


def _table_graphs(cache_entries: int):
    """users (key: user, value: group) -> group_by(group) -> count: two sub-topologies,
    the repartition records of the first fed to the second at once."""
    t = Topology(serdes.String, serdes.String)
    (t.table("users", store="users").group_by(lambda user, group: (group, user))
     .count(store="n").to_stream().to("out", value_serde=serdes.Long))
    sub0, sub1 = t.compile().subtopologies
    sent = Sent()
    graphs = []

    class Feed(Sent):
        def send(self, topic, key, value, timestamp, headers=(), partition=None) -> None:
            if topic.endswith("-repartition"):
                g = graphs[1]
                g.process(topic, g.record_from(topic, key, value, timestamp, headers))
            else:
                sent.send(topic, key, value, timestamp, headers, partition)

    feed = Feed()
    all_stores = {}
    for sub in (sub0, sub1):
        stores = {name: build(spec, TASK) for name, spec in sub.stores.items()}
        for name, store in stores.items():
            store.open(None, feed, (f"app-{name}-changelog", 0))
        all_stores.update(stores)
        graph = TaskGraph(sub, application_id="app", task_id=TASK, stores=stores,
                          collector=feed, clock=lambda: 0, cache_entries=cache_entries)
        graph.init()
        graphs.append(graph)
    return graphs, all_stores["n"], sent


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 8),
       st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3", "u4"]),
                          st.sampled_from(["g1", "g2", None]), st.booleans()),
                max_size=40))
def test_the_table_aggregation_cache_sends_each_groups_latest_per_flush(entries, rows):
    (p0, p1), plain_store, plain_sent = _table_graphs(0)
    (c0, c1), cached_store, cached_sent = _table_graphs(entries)
    for i, (user, group, commit) in enumerate(rows):
        for g in (p0, c0):
            g.process("users", Record(user, group, i))
        for group_ in ("g1", "g2"):
            assert cached_store.get(group_) == plain_store.get(group_)
        if commit:
            c0.flush()
            c1.flush()
    c0.flush()
    c1.flush()
    _check_cached_against_plain(plain_sent, cached_sent, ["out", "app-n-changelog"])
    assert sorted(cached_store.all()) == sorted(plain_store.all())


def test_a_session_merged_within_one_interval_is_never_sent():
    graph, store, sent = _windowed_graph(SessionWindows(10, grace_ms=20), 100)
    for ts in (0, 30, 15, 22):  # [15, 30] swallows [15, 15] and [30, 30]
        graph.process("in", Record("k", 1, ts))
    assert "out" not in sent.by_topic
    graph.flush()
    keys = SessionWindowedSerde(serdes.String)
    out = sorted((keys.deserialize("out", k).window, serdes.Long.deserialize("out", v))
                 for k, v in sent.by_topic["out"])
    assert out == [(Window(0, 0), 1), (Window(15, 30), 3)]  # nothing of [15,15], [30,30]
    assert [(wk.window.start, wk.window.end, n) for wk, n in store.fetch("k")] == [
        (0, 0, 1), (15, 30, 3)]


@pytest.mark.parametrize("windows", [SlidingWindows(100, grace_ms=1_000),
                                     SessionWindows(100, grace_ms=1_000)])
def test_one_record_per_sliding_or_session_window_per_flush(windows):
    graph, store, sent = _windowed_graph(windows, 1_000)
    for ts in range(0, 50, 5):
        graph.process("in", Record("k", 1, ts))
    assert "out" not in sent.by_topic and "app-n-changelog" not in sent.by_topic
    windows_now = (list(store.fetch("k")) if isinstance(windows, SessionWindows)
                   else list(store.fetch_range("k", 0, 1_000)))
    graph.flush()
    assert len(sent.by_topic["out"]) == len(windows_now)
    # the changelog: each window's latest once (sessions: also tombstones of the sessions
    # merged away, which downstream never saw)
    changelog = sent.by_topic["app-n-changelog"]
    assert len(_final(changelog)) == len(windows_now)
    assert len([v for _, v in changelog if v is not None]) == len(windows_now)


def test_one_record_per_group_per_flush():
    (g0, g1), store, sent = _table_graphs(1_000)
    for i, (user, group) in enumerate([("u1", "g1"), ("u2", "g1"), ("u1", "g2"),
                                       ("u3", "g2"), ("u2", "g2")]):
        g0.process("users", Record(user, group, i))
    assert "out" not in sent.by_topic
    g0.flush()
    g1.flush()
    got = {serdes.String.deserialize("out", k): serdes.Long.deserialize("out", v)
           for k, v in sent.by_topic["out"]}
    assert len(sent.by_topic["out"]) == 2 and got == {"g1": 0, "g2": 3}


@pytest.mark.parametrize("windows, timestamps", [
    (SlidingWindows(5_000, grace_ms=20_000), [5_001, 0, 25_002]),
    (TumblingWindows(10_000, grace_ms=5_000), [1_000, 12_000, 2_000, 40_000]),
])
def test_a_final_result_waits_for_the_windows_cached_update(windows, timestamps):
    """The window's last update sits in the cache when a record closes the window: the
    suppressed final result is the updated value, in the uncached run's order."""
    plain, _, plain_sent = _windowed_graph(windows, 0, suppress=True)
    cached, _, cached_sent = _windowed_graph(windows, 3, suppress=True)
    for ts in timestamps:
        for graph in (plain, cached):
            graph.process("in", Record("a", 1, ts))
    cached.flush()
    assert plain_sent.by_topic["out"] and (cached_sent.by_topic["out"]
                                           == plain_sent.by_topic["out"])
