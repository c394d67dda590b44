"""Topology compilation: sub-topologies split at repartition topics, internal topics and
their configs, names, serde defaults, co-partition groups, describe(), clear errors."""

from __future__ import annotations

import pytest

from rillet.streams import serdes
from rillet.streams.api import StoreSpec
from rillet.streams.processors import PassThrough
from rillet.streams.topology import Topology, TopologyError

S, L = serdes.String, serdes.Long

WORDCOUNT_DESCRIPTION = """\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [text])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> counts-repartition-filter
      <-- KSTREAM-FLATMAPVALUES-0000000001
    Processor: counts-repartition-filter (stores: [])
      --> counts-repartition-sink
      <-- KSTREAM-KEY-SELECT-0000000002
    Sink: counts-repartition-sink (topic: counts-repartition)
      <-- counts-repartition-filter

   Sub-topology: 1
    Source: counts-repartition-source (topics: [counts-repartition])
      --> KSTREAM-AGGREGATE-0000000003
    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [counts])
      --> KTABLE-TOSTREAM-0000000004
      <-- counts-repartition-source
    Processor: KTABLE-TOSTREAM-0000000004 (stores: [])
      --> KSTREAM-SINK-0000000005
      <-- KSTREAM-AGGREGATE-0000000003
    Sink: KSTREAM-SINK-0000000005 (topic: word-counts)
      <-- KTABLE-TOSTREAM-0000000004
"""


def wordcount() -> Topology:
    t = Topology()
    (t.stream("text", value_serde=S).flat_map_values(str.split)
     .group_by(lambda _k, w: w, key_serde=S).count("counts")
     .to_stream().to("word-counts", value_serde=L))
    return t


def test_wordcount_splits_at_the_repartition_topic():
    c = wordcount().compile()
    sub0, sub1 = c.subtopologies
    assert [s.topic for s in sub0.sources] == ["text"]
    assert not sub0.sources[0].internal
    assert [(s.topic, s.internal, s.node) for s in sub1.sources] == [
        ("counts", True, "counts-repartition-source")]
    assert sub0.stores == {} and list(sub1.stores) == ["counts"]
    assert sub1.stores["counts"].key_serde is S and sub1.stores["counts"].value_serde is L
    assert c.source_topics() == {"text"}
    assert c.sink_topics == {"word-counts"}
    assert sub1.nodes["KSTREAM-AGGREGATE-0000000003"].children == (
        "KTABLE-TOSTREAM-0000000004",)
    assert sub1.nodes["KSTREAM-AGGREGATE-0000000003"].stores == ("counts",)


def test_internal_topics_and_their_configs():
    t = wordcount()
    t.stream("clicks").group_by_key().count("plain")
    t.add_store(StoreSpec("w", "window", S, L, retention_ms=60_000, window_size_ms=1000))
    t.add_store(StoreSpec("quiet", "kv", S, L, logged=False))
    t.add_processor("uses-w", PassThrough, ("KSTREAM-SOURCE-0000000000",), ("w", "quiet"))
    internal = {i.name: i for i in t.compile().internal_topics}
    assert set(internal) == {"counts-repartition", "counts-changelog", "plain-changelog",
                             "w-changelog"}
    rep = internal["counts-repartition"]
    assert (rep.kind, rep.partitions, rep.upstream_subtopology) == ("repartition", None, 0)
    assert rep.configs == {"cleanup.policy": "delete"}
    assert internal["counts-changelog"].configs == {"cleanup.policy": "compact"}
    assert internal["w-changelog"].configs == {"cleanup.policy": "compact,delete",
                                               "retention.ms": str(60_000 + 86_400_000)}


def test_repartition_partitions_are_carried():
    t = Topology()
    t.stream("in").repartition("r", partitions=3).to("out")
    (rep,) = t.compile().internal_topics
    assert (rep.name, rep.partitions) == ("r-repartition", 3)
    with pytest.raises(TopologyError, match="partitions must be >= 1"):
        t.stream("in2").repartition("r2", partitions=0)


def test_describe_as_kafka():
    assert wordcount().describe() == WORDCOUNT_DESCRIPTION


def test_node_and_store_names_as_kafka():
    t = Topology()
    s = t.stream("in")
    assert s._node == "KSTREAM-SOURCE-0000000000"
    assert s.map(lambda k, v: (k, v))._node == "KSTREAM-MAP-0000000001"
    assert s.filter(bool)._node == "KSTREAM-FILTER-0000000002"
    table = s.group_by_key().count()
    assert table._store == "KSTREAM-AGGREGATE-STATE-STORE-0000000003"
    assert table._node == "KSTREAM-AGGREGATE-0000000004"
    assert t.new_name("X-") == "X-0000000005"


def test_defaults_fill_unset_serdes_at_compile():
    t = Topology(default_value_serde=S)
    t.stream("in").group_by_key().count("n").to_stream().to("out")
    c = t.compile()
    (sub,) = c.subtopologies
    assert sub.sources[0].key_serde is serdes.Bytes and sub.sources[0].value_serde is S
    assert sub.stores["n"].value_serde is L  # count's own serde wins
    c2 = t.compile(default_key_serde=serdes.Json)
    assert c2.subtopologies[0].sources[0].key_serde is serdes.Json


def test_nodes_sharing_a_store_are_one_subtopology():
    t = Topology()
    a = t.add_source("a", S, S)
    b = t.add_source("b", S, S)
    t.add_store(StoreSpec("shared", "kv", S, S))
    t.add_processor("pa", PassThrough, (a,), ("shared",))
    t.add_processor("pb", PassThrough, (b,))
    assert len(t.compile().subtopologies) == 2
    t.connect_store("pb", "shared")
    (sub,) = t.compile().subtopologies
    assert [s.topic for s in sub.sources] == ["a", "b"]


def test_copartition_groups_name_topics():
    t = Topology()
    left = t.stream("orders").select_key(lambda k, v: v).repartition("by-customer")
    right = t.add_source("customers", S, S)
    t.copartition(left._node, right)
    assert t.compile().copartition_groups == (
        frozenset({"by-customer-repartition", "customers"}),)
    with pytest.raises(TopologyError, match="is not a source node"):
        t.copartition("KSTREAM-KEY-SELECT-0000000001")


def test_clear_errors():
    with pytest.raises(TopologyError, match="has no source"):
        Topology().compile()
    t = Topology()
    src = t.add_source("in", S, S)
    with pytest.raises(TopologyError, match="'p' uses store 'nope', which is never declared"):
        t.add_processor("p", PassThrough, (src,), ("nope",))
        t.compile()
    t = Topology()
    src = t.add_source("in", S, S)
    t.add_processor("p", PassThrough, (src,))
    with pytest.raises(TopologyError, match="node name 'p' is used twice"):
        t.add_processor("p", PassThrough, (src,))
    with pytest.raises(TopologyError, match="sink 'out-sink' .* has no parent"):
        t.add_sink("out", S, S, (), "out-sink")
    with pytest.raises(TopologyError, match="no node named 'ghost'"):
        t.add_processor("q", PassThrough, ("ghost",))
    with pytest.raises(TopologyError, match="already read by source KSTREAM-SOURCE"):
        t.stream("in")
    t.add_sink("out", S, S, ("p",), "snk")
    with pytest.raises(TopologyError, match="a sink .* cannot be a parent"):
        t.add_processor("after-sink", PassThrough, ("snk",))
    with pytest.raises(TopologyError, match="declared twice, differently"):
        t.add_store(StoreSpec("s", "kv", S, S))
        t.add_store(StoreSpec("s", "kv", S, L))
    t.add_store(StoreSpec("s", "kv", S, S))  # the same spec again is fine
    with pytest.raises(TopologyError, match="is made twice"):
        t.stream("x").repartition("dup")
        t.stream("y").repartition("dup")


def test_repartition_topics_must_be_written_and_read():
    t = Topology()
    src = t.add_source("in", S, S)
    t.add_sink("orphan", S, S, (src,), internal=True)
    with pytest.raises(TopologyError, match="orphan-repartition is written, never read"):
        t.compile()
    t = Topology()
    t.add_source("lonely", S, S, internal=True)
    with pytest.raises(TopologyError, match="lonely-repartition is read, never written"):
        t.compile()

