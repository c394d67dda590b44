"""Every stateless Stream operation, through the TopologyTestDriver."""

from __future__ import annotations

import pytest

from rillet.streams import serdes
from rillet.streams.api import Processor, PunctuationType, Record, StoreSpec
from rillet.streams.serdes import SerdeError
from rillet.streams.topology import Topology

S, J, L = serdes.String, serdes.Json, serdes.Long


def topo():
    return Topology(S, S)


def test_map_map_values_select_key(driver):
    t = topo()
    s = t.stream("in")
    s.map(lambda k, v: (v, k)).to("swapped")
    s.map_values(str.upper).to("upper")
    s.select_key(lambda k, v: k + v).to("keyed")
    d = driver(t)
    d.pipe("in", "k", "v", timestamp=7, headers=(("h", b"1"),))
    assert d.read_output("swapped") == [Record("v", "k", 7, (("h", b"1"),))]
    assert d.read_key_values("upper") == [("k", "V")]
    assert d.read_key_values("keyed") == [("kv", "v")]
    assert d.read_output("upper") == []  # read_output forgets what it returned


def test_filter_and_filter_not(driver):
    t = topo()
    s = t.stream("in")
    s.filter(lambda k, v: v.startswith("a")).to("a")
    s.filter_not(lambda k, v: v.startswith("a")).to("not-a")
    d = driver(t)
    for v in ["ax", "b", "ay", "c"]:
        d.pipe("in", "k", v, 1)
    assert [v for _, v in d.read_key_values("a")] == ["ax", "ay"]
    assert [v for _, v in d.read_key_values("not-a")] == ["b", "c"]


def test_flat_map_and_flat_map_values(driver):
    t = topo()
    s = t.stream("in")
    s.flat_map(lambda k, v: [(w, k) for w in v.split()]).to("fm")
    s.flat_map_values(str.split).to("fmv")
    d = driver(t)
    d.pipe("in", "k", "x y", 3)
    d.pipe("in", "k", "", 4)
    assert d.read_output("fm") == [Record("x", "k", 3), Record("y", "k", 3)]
    assert d.read_key_values("fmv") == [("k", "x"), ("k", "y")]


def test_map_must_return_a_pair(driver):
    t = topo()
    t.stream("in").map(lambda k, v: v).to("out")
    d = driver(t)
    with pytest.raises(TypeError, match=r"must return a \(key, value\) tuple"):
        d.pipe("in", "k", "v", 0)


def test_peek_sees_every_record_and_forwards_it(driver):
    seen = []
    t = topo()
    t.stream("in").peek(lambda k, v: seen.append((k, v))).to("out")
    d = driver(t)
    d.pipe("in", "a", "1", 0)
    d.pipe("in", None, None, 0)
    assert seen == [("a", "1"), (None, None)]
    assert d.read_key_values("out") == seen


def test_branch_first_match_wins_and_unmatched_are_dropped(driver):
    t = topo()
    small, big = t.stream("in", value_serde=L).branch(lambda k, v: v < 10,
                                                      lambda k, v: v < 100)
    small.to("small")
    big.to("big")
    d = driver(t)
    for v in [1, 50, 500, 9]:
        d.pipe("in", "k", v, 0)
    assert [v for _, v in d.read_key_values("small")] == [1, 9]
    assert [v for _, v in d.read_key_values("big")] == [50]
    with pytest.raises(ValueError, match="at least one predicate"):
        t.stream("other").branch()


def test_merge(driver):
    t = topo()
    t.stream("a").merge(t.stream("b")).to("out")
    d = driver(t)
    d.pipe("a", "k", "1", 0)
    d.pipe("b", "k", "2", 0)
    d.pipe("a", "k", "3", 0)
    assert [v for _, v in d.read_key_values("out")] == ["1", "2", "3"]
    with pytest.raises(TypeError, match="same topology"):
        t.stream("c").merge(Topology().stream("d"))


def test_to_with_serdes_and_partitioner(driver):
    t = topo()
    calls = []

    def partitioner(key, value, n):
        calls.append((key, value, n))
        return 0

    t.stream("in").to("out", value_serde=serdes.Json, partitioner=partitioner)
    d = driver(t)
    d.pipe("in", "k", "v", 0)
    assert d.read_output("out", value_serde=serdes.Bytes) == [Record("k", b'"v"', 0)]
    assert calls == [("k", "v", 1)]


def test_partitioner_out_of_range_is_a_clear_error(driver):
    t = topo()
    t.stream("in").to("out", partitioner=lambda k, v, n: n)
    d = driver(t)
    with pytest.raises(ValueError, match=r"partitioner for 'out' returned 1; expected 0..0"):
        d.pipe("in", "k", "v", 0)


def test_serdes_round_trip_on_the_way_in_and_out(driver):
    t = topo()
    t.stream("in", value_serde=L).map_values(lambda v: v * 2).to("out")
    d = driver(t)
    d.pipe("in", "k", 21, 0)
    assert d.read_key_values("out") == [("k", 42)]
    with pytest.raises(SerdeError, match="long serde, topic 'in'"):
        d.pipe("in", "k", "not a number", 0)
    # a value the (kept) output serde cannot encode fails at the sink, naming the topic
    t2 = topo()
    t2.stream("in").map_values(len).to("out")
    with pytest.raises(SerdeError, match="string serde, topic 'out'"):
        driver(t2).pipe("in", "k", "abc", 0)


def test_repartition_goes_through_an_internal_topic(driver):
    t = topo()
    t.stream("in").select_key(lambda k, v: v).repartition("by-value").to("out")
    d = driver(t, "app")
    d.pipe("in", "k", "v", 5)
    assert d.read_output("app-by-value-repartition") == [Record("v", "v", 5)]
    assert d.read_output("out") == [Record("v", "v", 5)]


def test_repartition_drops_null_keys(driver):
    t = topo()
    t.stream("in").repartition("r").to("out")
    d = driver(t)
    d.pipe("in", None, "v", 0)
    d.pipe("in", "k", "v", 0)
    assert d.read_key_values("out") == [("k", "v")]


class Dedup(Processor):
    """Forwards a key's first record only; emits how many it saw on each punctuation."""

    def init(self, context):
        super().init(context)
        self.seen = context.store("seen")
        context.schedule(10, PunctuationType.STREAM_TIME, self.punctuate)

    def process(self, record):
        if self.seen.get(record.key) is None:
            self.seen.put(record.key, "1")
            self.context.forward(record)

    def punctuate(self, timestamp):
        self.context.forward(Record("seen", str(len(self.seen)), timestamp))


def test_process_with_a_store_and_stream_time_punctuation(driver):
    t = topo()
    t.stream("in").process(Dedup, stores=[StoreSpec("seen", "kv", S, S)]).to("out")
    d = driver(t, "app")
    d.pipe("in", "a", "1", 0)  # stream time 0: the first punctuation is due at once
    d.pipe("in", "a", "2", 5)
    d.pipe("in", "b", "3", 9)
    d.pipe("in", "c", "4", 25)  # 10 and 20 were missed: one punctuation, at 25
    out = d.read_output("out")
    assert out == [Record("a", "1", 0), Record("seen", "1", 0), Record("b", "3", 9),
                   Record("c", "4", 25), Record("seen", "3", 25)]
    assert [(r.key, r.value) for r in d.read_output("app-seen-changelog")] == [
        ("a", "1"), ("b", "1"), ("c", "1")]


def test_process_result_is_repartitioned_before_aggregating():
    t = topo()
    t.stream("in").process(Dedup, stores=[StoreSpec("seen", "kv", S, S)]) \
        .group_by_key().count("n")
    names = {i.name for i in t.compile().internal_topics}
    assert "n-repartition" in names


def test_functions_are_checked_when_the_topology_is_built():
    s = topo().stream("in")
    for op in (s.map, s.map_values, s.filter, s.filter_not, s.flat_map, s.flat_map_values,
               s.select_key, s.peek, s.process):
        with pytest.raises(TypeError, match="expected a function"):
            op("not callable")
