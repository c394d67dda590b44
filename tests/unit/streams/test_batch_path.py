"""The task graph's batch path (rillet/streams/batch.py): a linear chain of
stateless nodes ending at a sink or a cached stream aggregation runs a list of records
per node instead of one record through every node. It must send exactly what the
record-by-record path sends, in the same order, leave the same store contents, hand the
same records to the bad-record handler, and report the same offsets; and it must not be
taken where the two could differ (a branch, a user subclass, punctuations)."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rillet.streams import serdes
from rillet.streams.api import TaskId, new_record
from rillet.streams.graph import TaskGraph
from rillet.streams.processors import MapValuesNode
from rillet.streams.stores import build
from rillet.streams.topology import Topology


class Calls:
    """A collector that batches (as the runtime's) and records every call."""

    batching = True

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def send(self, topic, key, value, timestamp, headers=(), partition=None) -> None:
        self.calls.append(("send", topic, partition, key, value, timestamp, tuple(headers)))

    def send_many(self, topic, partition, keys, values, timestamps, headers=None) -> None:
        self.calls.append(("send_many", topic, partition, list(keys), list(values),
                           list(timestamps), headers and list(headers)))


def wordcount(t: Topology) -> None:
    (t.stream("in", value_serde=serdes.String).flat_map_values(str.split)
     .group_by(lambda _k, w: w, key_serde=serdes.String).count(store="counts")
     .to_stream().to("out", key_serde=serdes.String, value_serde=serdes.Long))


def stateless(t: Topology) -> None:
    (t.stream("in", key_serde=serdes.String, value_serde=serdes.String)
     .filter(lambda k, v: not v.startswith("x"))
     .flat_map(lambda k, v: [(k, w) for w in v.split()])
     .map(lambda k, v: (None if v == "nokey" else v, k))
     .map_values(lambda v: v and v.upper())
     .select_key(lambda k, v: k)
     .to("out", key_serde=serdes.String, value_serde=serdes.String))


def graphs(build_topology, cache_entries: int, batch: bool) -> list[TaskGraph]:
    t = Topology(serdes.String, serdes.String)
    build_topology(t)
    out = []
    for sub in t.compile().subtopologies:
        stores = {}
        for name, spec in sub.stores.items():
            store = build(spec, TaskId(sub.id, 0))
            store.open(None, None, None)
            stores[name] = store
        g = TaskGraph(sub, application_id="app", task_id=TaskId(sub.id, 0), stores=stores,
                      collector=Calls(), clock=lambda: 0, partition_count=lambda _t: 3,
                      cache_entries=cache_entries)
        g.init()
        if not batch:
            g._batch_plan = lambda _proc: None  # record by record
        out.append(g)
    return out


def run_all(gs: list[TaskGraph], records: list[tuple], chunk: int) -> dict:
    """The records through the first graph (``chunk`` per run), what it sends to the
    repartition topic through the next, a flush; everything observable."""
    bad: list[int] = []
    offsets = []
    feed = records
    for g in gs:
        queue = deque(feed)
        while queue:
            g.run(queue, min(chunk, len(queue)), lambda rec, exc: bad.append(rec[2]))
            offsets.append(g.run_offset)
        g.flush()
        calls = g.collector.calls
        feed = [(topic, 0, i, ts, k, v, ())
                for kind, topic, _p, keys, values, tss, _h in calls
                if kind == "send_many" and topic.endswith("-repartition")
                for i, (k, v, ts) in enumerate(zip(keys, values, tss, strict=True))]
    stores = {name: sorted(s.all()) for g in gs for name, s in g.stores.items()}
    return {"calls": [g.collector.calls for g in gs], "bad": bad, "offsets": offsets,
            "stores": stores, "stream_time": [g.stream_time for g in gs]}


WORDS = st.sampled_from(["a", "b", "c", "nokey", "xa", "dd"])
LINE = st.one_of(st.lists(WORDS, max_size=4).map(" ".join).map(str.encode),
                 st.just(b"\xff bad"))
RECORDS = st.lists(st.tuples(st.one_of(st.none(), st.sampled_from([b"k1", b"k2"])), LINE,
                             st.integers(0, 50)), max_size=200)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=RECORDS, chunk=st.sampled_from([1, 7, 100, 1000]),
       cache=st.sampled_from([0, 3, 1000]), shape=st.sampled_from([wordcount, stateless]))
def test_the_batch_path_sends_what_the_record_path_sends(records, chunk, cache, shape):
    recs = [("in", 0, 10 + i, ts, k, v, ()) for i, (k, v, ts) in enumerate(records)]
    assert run_all(graphs(shape, cache, True), recs, chunk) == run_all(
        graphs(shape, cache, False), recs, chunk)


def test_the_word_count_takes_the_batch_path_in_both_subtopologies():
    first, second = graphs(wordcount, 1000, True)
    assert first._entry("in")[4] is not None
    assert second._entry("app-counts-repartition")[4] is not None
    # without the record cache the count forwards per record: not a batch terminal
    _, uncached = graphs(wordcount, 0, True)
    assert uncached._entry("app-counts-repartition")[4] is None


class Shouting(MapValuesNode):
    """A user subclass that changes ``process`` only: it must keep its own behaviour."""

    def process(self, record):
        self._forward(new_record((record.key, record.value + "!", record.timestamp,
                                  record.headers)))


@pytest.mark.parametrize("what", ["branch", "peek", "subclass"])
def test_no_batch_path_where_it_could_differ(what):
    t = Topology(serdes.String, serdes.String)
    s = t.stream("in").map_values(str.upper)
    if what == "branch":
        a, b = s.branch(lambda k, v: v.startswith("A"), lambda k, v: True)
        a.to("out")
        b.to("out")
    elif what == "peek":
        s.peek(print).to("out")
    else:
        s.process(lambda: Shouting(str), stores=()).to("out")
    (sub,) = t.compile().subtopologies
    g = TaskGraph(sub, application_id="app", task_id=TaskId(0, 0), stores={},
                  collector=Calls(), clock=lambda: 0)
    g.init()
    assert g._entry("in")[4] is None
    if what == "subclass":
        g.run(deque([("in", 0, 0, 1, b"k", b"v", ())]), 1, lambda rec, exc: None)
        assert g.collector.calls[0][4] == [b"V!"]


def test_a_failing_bad_record_handler_leaves_the_offset_at_that_record():
    """log_and_fail: the records before the bad one are done, it is not."""
    for batch in (True, False):
        (g, _) = graphs(wordcount, 1000, batch)
        queue = deque([("in", 0, 5, 1, None, b"a b", ()), ("in", 0, 6, 2, None, b"c", ()),
                       ("in", 0, 7, 3, None, b"\xff", ()), ("in", 0, 8, 4, None, b"d", ())])

        def fail(rec, exc):
            raise RuntimeError(rec[2])

        with pytest.raises(RuntimeError):
            g.run(queue, 4, fail)
        assert g.run_offset == 7
        sent = [k for c in g.collector.calls for k in c[3]]
        assert sorted(sent) == [b"a", b"b", b"c"]


def test_a_cache_flush_hands_its_records_on_along_the_batch_path():
    _, counting = graphs(wordcount, 1000, True)
    queue = deque(("app-counts-repartition", 0, i, i, w, w, ())
                  for i, w in enumerate([b"a", b"b", b"a"]))
    counting.run(queue, 3, lambda rec, exc: None)
    counting.flush()
    (node,) = [p for p in counting._processors.values() if hasattr(p, "_flush_plan")]
    assert node._flush_plan is not None
    calls = counting.collector.calls
    assert {c[0] for c in calls} == {"send_many"}
    assert sorted(kv for c in calls for kv in zip(c[3], c[4], strict=True)) == [
        (b"a", (2).to_bytes(8, "big")), (b"b", (1).to_bytes(8, "big"))]
