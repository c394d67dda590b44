"""TopologyTestDriver and the TaskGraph under it: input/output topics, timestamps and
extractors, punctuations by stream time and by wall clock, config serdes, clear errors."""

from __future__ import annotations

import pytest

from rillet.streams import serdes
from rillet.streams.api import Processor, PunctuationType, Record, StoreSpec
from rillet.streams.topology import Topology

S, L = serdes.String, serdes.Long


def test_unknown_topics_are_clear_errors(driver):
    t = Topology(S, S)
    t.stream("in").to("out")
    d = driver(t)
    with pytest.raises(KeyError, match="'nope' is not an input topic .*inputs: in"):
        d.pipe("nope", "k", "v", 0)
    with pytest.raises(KeyError, match="'typo' is not written by this topology"):
        d.read_output("typo")
    assert d.read_output("out") == []  # known, nothing written yet


def test_timestamp_defaults_to_the_wall_clock_and_extractor_wins(driver):
    t = Topology(S, L)
    t.stream("in").to("plain")
    t.stream("events", timestamp_extractor=lambda k, v, ts: v * 1000).to("extracted")
    d = driver(t, initial_wall_clock_ms=500)
    d.pipe("in", "k", 1)
    d.pipe("events", "k", 7, timestamp=3)
    assert d.read_output("plain") == [Record("k", 1, 500)]
    assert d.read_output("extracted") == [Record("k", 7, 7000)]


def test_bad_timestamp_extractor_result(driver):
    t = Topology(S, L)
    t.stream("in", timestamp_extractor=lambda k, v, ts: -1).to("out")
    with pytest.raises(ValueError, match="timestamp extractor of 'in' returned -1"):
        driver(t).pipe("in", "k", 1, 0)


def test_config_default_serdes(driver):
    t = Topology()
    t.stream("in").to("out")
    d = driver(t, config={"default.key.serde": "string", "default.value.serde": "long"})
    d.pipe("in", "k", 5, 0)
    assert d.read_output("out") == [Record("k", 5, 0)]
    assert d.compiled.subtopologies[0].sources[0].value_serde is L


def test_compiled_topology_is_accepted(driver):
    t = Topology(S, S)
    t.stream("in").to("out")
    d = driver(t.compile())
    d.pipe("in", "k", "v", 0)
    assert d.read_key_values("out") == [("k", "v")]
    with pytest.raises(TypeError, match="expected a Topology or CompiledTopology"):
        driver("not a topology")


def test_output_to_an_input_topic_is_fed_back(driver):
    t = Topology(S, S)
    t.stream("a").map_values(lambda v: v + "!").to("b")
    t.stream("b").map_values(str.upper).to("c")
    d = driver(t)
    d.pipe("a", "k", "x", 4)
    assert d.read_output("b") == [Record("k", "x!", 4)]
    assert d.read_output("c") == [Record("k", "X!", 4)]


class Ticker(Processor):
    """Counts records; on each wall-clock punctuation forwards the count, and cancels
    itself after three."""

    def init(self, context):
        super().init(context)
        self.n = 0
        self.ticks = 0
        self.handle = context.schedule(100, PunctuationType.WALL_CLOCK_TIME, self.tick)

    def process(self, record):
        self.n += 1

    def tick(self, now):
        self.ticks += 1
        self.context.forward(Record("count", self.n, now))
        if self.ticks == 3:
            self.handle.cancel()


def test_wall_clock_punctuation(driver):
    t = Topology(S, L)
    t.stream("in").process(Ticker).to("ticks")
    d = driver(t, initial_wall_clock_ms=1000)
    d.pipe("in", "k", 1, 0)
    d.advance_wall_clock(99)
    assert d.read_output("ticks") == []
    d.advance_wall_clock(1)
    d.pipe("in", "k", 1, 0)
    d.advance_wall_clock(250)  # 1200 and 1300 missed: one punctuation at 1350
    d.advance_wall_clock(100)
    d.advance_wall_clock(1000)  # cancelled after the third
    assert d.read_output("ticks") == [Record("count", 1, 1100), Record("count", 2, 1350),
                                      Record("count", 2, 1450)]
    with pytest.raises(ValueError, match="only moves forward"):
        d.advance_wall_clock(-1)


class Misbehaving(Processor):
    def __init__(self, what):
        self.what = what

    def process(self, record):
        if self.what == "store":
            self.context.store("undeclared")
        elif self.what == "child":
            self.context.forward(record, "not-a-child")
        else:
            self.context.schedule(0, PunctuationType.STREAM_TIME, print)


@pytest.mark.parametrize("what, error, match", [
    ("store", KeyError, "did not declare store 'undeclared'"),
    ("child", KeyError, "'not-a-child' is not a child"),
    ("schedule", ValueError, "interval must be >= 1 ms"),
])
def test_context_misuse_is_a_clear_error(driver, what, error, match):
    t = Topology(S, S)
    t.add_store(StoreSpec("undeclared", "kv", S, S))
    t.stream("in").process(lambda: Misbehaving(what)).to("out")
    with pytest.raises(error, match=match):
        driver(t).pipe("in", "k", "v", 0)


def test_context_record_metadata(driver):
    seen = []

    class Meta(Processor):
        def process(self, record):
            c = self.context
            seen.append((c.topic, c.partition, c.offset, c.stream_time, str(c.task_id),
                         c.application_id, c.wall_clock_ms))

    t = Topology(S, S)
    t.stream("in").process(Meta)
    d = driver(t, "app", initial_wall_clock_ms=9)
    d.pipe("in", "k", "v", 20)
    d.pipe("in", "k", "v", 10)  # out of order: stream time stays 20
    assert seen == [("in", 0, 0, 20, "0_0", "app", 9), ("in", 0, 1, 20, "0_0", "app", 9)]


def test_store_access_and_close(driver):
    t = Topology(S, S)
    t.stream("in").group_by_key().count("n")
    d = driver(t)
    d.pipe("in", "k", "v", 0)
    assert d.store("n").get("k") == 1
    with pytest.raises(KeyError, match="no store 'm'"):
        d.store("m")
    d.close()
    d.close()
    with pytest.raises(RuntimeError, match="closed"):
        d.pipe("in", "k", "v", 0)


def test_task_graph_as_the_runtime_uses_it():
    """graph.py's docstring recipe: stores in, record_from, process, partition_count."""
    from rillet.streams.api import TaskId
    from rillet.streams.graph import TaskGraph
    from rillet.streams.stores import build

    t = Topology(S, L)
    t.stream("in").group_by_key().count("n").to_stream().to(
        "out", partitioner=lambda k, v, n: n - 1)
    (sub,) = t.compile().subtopologies
    sent = []

    class Collector:
        def send(self, topic, key, value, timestamp, headers=(), partition=None):
            sent.append((topic, key, value, timestamp, partition))

    task = TaskId(sub.id, 3)
    stores = {name: build(spec, task) for name, spec in sub.stores.items()}
    for name, store in stores.items():
        store.open(None, Collector(), (f"app-{name}-changelog", 3))
    graph = TaskGraph(sub, application_id="app", task_id=task, stores=stores,
                      collector=Collector(), clock=lambda: 0, partition_count=lambda t: 4)
    with pytest.raises(RuntimeError, match="init"):
        graph.process("in", Record("k", 1, 0))
    graph.init()
    record = graph.record_from("in", b"k", serdes.Long.serialize("in", 5), 42)
    assert record == Record("k", 5, 42)
    graph.process("in", record, partition=3, offset=10)
    assert graph.stream_time == 42
    assert ("out", b"k", serdes.Long.serialize("out", 1), 42, 3) in sent
    assert any(s[0] == "app-n-changelog" and s[4] == 3 for s in sent)
    with pytest.raises(KeyError, match="does not read 'other'"):
        graph.record_from("other", None, None, 0)
    with pytest.raises(ValueError, match="stores not given"):
        TaskGraph(sub, application_id="app", task_id=task, stores={}, collector=Collector(),
                  clock=lambda: 0)
    graph.close()
