"""Grouping and aggregation, tables and grouped tables, through the TopologyTestDriver;
word count and the grouped-table adder/subtractor against plain Python references."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rillet.streams import serdes
from rillet.streams.api import Record
from rillet.streams.driver import TopologyTestDriver
from rillet.streams.dsl import Materialized
from rillet.streams.topology import Topology

S, L, J = serdes.String, serdes.Long, serdes.Json


def wordcount() -> Topology:
    t = Topology()
    counts = (t.stream("text", value_serde=S)
              .flat_map_values(str.split)
              .group_by(lambda _key, word: word, key_serde=S)
              .count(store="counts"))
    counts.to_stream().to("word-counts", value_serde=L)
    return t


LINES = st.lists(st.text(alphabet="abc \n\té", max_size=12), max_size=25)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(LINES)
def test_word_count_equals_a_python_reference(store_factory, lines):
    with TopologyTestDriver(wordcount(), "wc", store_factory=store_factory) as d:
        for i, line in enumerate(lines):
            d.pipe("text", None, line, timestamp=i)
        out = d.read_output("word-counts")
        running = Counter()
        expected = []
        for i, line in enumerate(lines):
            for word in line.split():
                running[word] += 1
                expected.append(Record(word, running[word], i))
        assert out == expected
        assert dict(d.store("counts").all()) == dict(running)
        changelog = d.read_key_values("wc-counts-changelog")
        assert changelog == [(r.key, r.value) for r in expected]


def test_group_by_key_count_skips_null_keys_and_values(driver):
    t = Topology(S, S)
    t.stream("in").group_by_key().count("n").to_stream().to("out", value_serde=L)
    d = driver(t)
    for k, v in [("a", "1"), (None, "x"), ("a", None), ("b", "2"), ("a", "3")]:
        d.pipe("in", k, v, 0)
    assert d.read_key_values("out") == [("a", 1), ("b", 1), ("a", 2)]
    # no key change: no repartition topic, a single sub-topology
    assert len(d.compiled.subtopologies) == 1


def test_reduce_and_aggregate(driver):
    t = Topology(S, L)
    g = t.stream("in").group_by_key()
    g.reduce(lambda agg, v: agg + v, "sum").to_stream().to("sums")
    g.aggregate(lambda: [], lambda k, v, agg: agg + [v], "lists",
                value_serde=J).to_stream().to("lists")
    d = driver(t)
    for k, v, ts in [("a", 1, 10), ("b", 5, 11), ("a", 2, 12)]:
        d.pipe("in", k, v, ts)
    assert d.read_output("sums") == [Record("a", 1, 10), Record("b", 5, 11),
                                      Record("a", 3, 12)]
    assert d.read_key_values("lists") == [("a", [1]), ("b", [5]), ("a", [1, 2])]


def test_aggregation_store_names_and_materialized(driver):
    t = Topology(S, S)
    s = t.stream("in")
    a = s.group_by_key().count()
    b = s.group_by_key().count(Materialized("mem", in_memory=True, logged=False))
    assert a._store == "KSTREAM-AGGREGATE-STATE-STORE-0000000001"
    c = t.compile()
    specs = {n: sp for sub in c.subtopologies for n, sp in sub.stores.items()}
    assert specs["mem"].in_memory and not specs["mem"].logged
    assert not specs[a._store].in_memory and specs[a._store].logged
    assert {i.name for i in c.internal_topics} == {f"{a._store}-changelog"}
    assert b._store == "mem"
    with pytest.raises(ValueError, match="part of the changelog topic"):
        s.group_by_key().count("bad name!")


def test_to_table_keeps_the_latest_value_and_deletes_on_none(driver):
    t = Topology(S, S)
    table = t.stream("in").to_table("latest")
    table.to_stream().to("out")
    d = driver(t)
    for k, v in [("a", "1"), ("b", "2"), ("a", "3"), ("b", None)]:
        d.pipe("in", k, v, 0)
    assert d.read_key_values("out") == [("a", "1"), ("b", "2"), ("a", "3"), ("b", None)]
    assert dict(d.store("latest").all()) == {"a": "3"}


def test_to_table_after_a_key_change_repartitions():
    t = Topology(S, S)
    t.stream("in").select_key(lambda k, v: v).to_table("by-value")
    c = t.compile()
    assert len(c.subtopologies) == 2
    assert {i.name for i in c.internal_topics} == {"by-value-repartition",
                                                  "by-value-changelog"}


def test_table_from_topic_with_its_own_changelog(driver):
    t = Topology(S, S)
    users = t.table("users")
    assert users._store == "users-STATE-STORE-0000000000"
    users.to_stream().to("out")
    d = driver(t, "app")
    d.pipe("users", "u1", "ann", 1)
    d.pipe("users", "u1", "bob", 2)
    d.pipe("users", "u1", None, 3)
    d.pipe("users", None, "ignored", 4)
    assert d.read_output("out") == [Record("u1", "ann", 1), Record("u1", "bob", 2),
                                     Record("u1", None, 3)]
    assert d.read_key_values("app-users-STATE-STORE-0000000000-changelog") == [
        ("u1", "ann"), ("u1", "bob"), ("u1", None)]


def test_table_filter_emits_exactly_the_changes_of_its_result(driver):
    t = Topology(S, L)
    prices = t.table("prices", "prices")
    prices.filter(lambda k, v: v < 10).to("cheap")
    prices.filter_not(lambda k, v: v < 10, store="dear").to("dear")
    prices.map_values(lambda v: v * 100).to("cents")
    d = driver(t)
    for k, v in [("a", 5), ("b", 50), ("a", 20), ("b", 7), ("a", None), ("c", 60)]:
        d.pipe("prices", k, v, 0)
    assert d.read_key_values("cheap") == [("a", 5), ("a", None), ("b", 7)]
    assert d.read_key_values("dear") == [("b", 50), ("a", 20), ("b", None), ("a", None),
                                         ("c", 60)]
    assert dict(d.store("dear").all()) == {"c": 60}
    # the materialized filter logs only the changes of its result
    assert d.read_key_values("test-dear-changelog") == [
        ("b", 50), ("a", 20), ("b", None), ("a", None), ("c", 60)]
    assert d.read_key_values("cents") == [("a", 500), ("b", 5000), ("a", 2000), ("b", 700),
                                          ("a", None), ("c", 6000)]


def test_grouped_table_count_moves_rows_between_groups(driver):
    t = Topology(S, S)
    (t.table("users", "users")
     .group_by(lambda user, region: (region, user))
     .count("per-region")
     .to("counts", value_serde=L))
    d = driver(t, "app")
    for user, region in [("ann", "eu"), ("bob", "eu"), ("ann", "us"), ("bob", None)]:
        d.pipe("users", user, region, 0)
    assert d.read_key_values("counts") == [("eu", 1), ("eu", 2), ("eu", 1), ("us", 1),
                                           ("eu", 0)]
    assert dict(d.store("per-region").all()) == {"eu": 0, "us": 1}
    assert "app-per-region-repartition" in d.output_topics()


def test_grouped_table_reduce(driver):
    t = Topology(S, L)
    (t.table("balances", "balances")
     .group_by(lambda acct, amount: ("total", amount))
     .reduce(lambda agg, v: agg + v, lambda agg, v: agg - v, "total")
     .to("total"))
    d = driver(t)
    for acct, amount in [("a", 10), ("b", 5), ("a", 1)]:
        d.pipe("balances", acct, amount, 0)
    assert [v for _, v in d.read_key_values("total")] == [10, 15, 5, 6]


ROWS = st.lists(st.tuples(st.sampled_from("abcde"),
                          st.none() | st.tuples(st.sampled_from("xyz"),
                                                st.integers(-50, 50))),
                max_size=40)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ROWS)
def test_grouped_table_adder_subtractor_equals_a_reference(store_factory, rows):
    """Rows ``key -> (group, amount)``; per group the sum and the count of its rows.
    After every update the aggregates equal a recomputation over the current table."""
    t = Topology(S, J)
    grouped = t.table("rows", "rows").group_by(lambda k, v: (v[0], v[1]))
    grouped.aggregate(lambda: 0, lambda k, v, agg: agg + v, lambda k, v, agg: agg - v,
                      "sums", value_serde=L).to("sums", value_serde=L)
    grouped.count("counts").to("counts", value_serde=L)
    with TopologyTestDriver(t, store_factory=store_factory) as d:
        table: dict[str, tuple[str, int]] = {}
        touched: set[str] = set()
        for key, value in rows:
            d.pipe("rows", key, None if value is None else list(value), 0)
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            touched.update(g for g, _ in table.values())
            sums = dict(d.store("sums").all())
            counts = dict(d.store("counts").all())
            for group in touched | set(sums):
                members = [amt for g, amt in table.values() if g == group]
                assert sums.get(group, 0) == sum(members)
                assert counts.get(group, 0) == len(members)
        # the last record per group in the output topic is the store's content
        last = dict(d.read_key_values("sums"))
        assert last == dict(d.store("sums").all())


def test_materialized_keeps_an_unmaterialized_table_in_a_store(driver):
    t = Topology(S, L)
    prices = t.table("prices", "prices")
    assert prices._materialized() is prices
    cheap = prices.filter(lambda k, v: v < 10)
    assert cheap._store is None
    kept = cheap._materialized()
    assert kept._store == "KTABLE-MATERIALIZE-STATE-STORE-0000000003"
    kept.to("cheap")
    d = driver(t)
    for k, v in [("a", 5), ("b", 50), ("c", 1), ("a", 20)]:
        d.pipe("prices", k, v, 0)
    assert dict(d.store(kept._store).all()) == {"c": 1}
    assert d.read_key_values("cheap") == [("a", 5), ("c", 1), ("a", None)]
