"""Windowed aggregations and suppress through the TopologyTestDriver (real stores, real
serdes), against plain-Python reference models over hypothesis-generated inputs with
out-of-order and late records."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rillet.streams import serdes
from rillet.streams.api import Window, Windowed
from rillet.streams.driver import TopologyTestDriver
from rillet.streams.topology import Topology
from rillet.streams.windows import (
    HoppingWindows,
    SessionWindows,
    SlidingWindows,
    TumblingWindows,
)

MINUTE = 60_000
CUSTOMERS = ["alice", "bob", "carol"]
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def orders(draw, max_step=20_000, max_back=90_000, max_ahead=5_000):
    """(customer, amount, timestamp) in arrival order: time moves forward in random steps,
    each record's timestamp jittered back (out of order; the large jitters are late)."""
    out, base = [], draw(st.integers(0, 3 * MINUTE))
    for _ in range(draw(st.integers(0, 60))):
        base += draw(st.integers(0, max_step))
        ts = max(0, base + draw(st.integers(-max_back, max_ahead)))
        out.append((draw(st.sampled_from(CUSTOMERS)), draw(st.integers(1, 100)), ts))
    return out


def _topology(windows, *, suppress: bool, kind: str = "count"):
    t = Topology(serdes.String, serdes.Long)
    grouped = t.stream("orders").group_by_key()
    w = grouped.window(windows)
    if kind == "count":
        table = w.count(store="per-window")
    elif kind == "sum":
        table = w.reduce(lambda a, b: a + b, store="per-window")
    else:  # sessions: aggregate with a merger
        table = w.aggregate(lambda: 0, lambda k, v, agg: agg + v, lambda k, a, b: a + b,
                            store="per-window", value_serde=serdes.Long)
    table.to_stream().to("updates", value_serde=serdes.Long)
    if suppress:
        table.suppress().to_stream().to("final", value_serde=serdes.Long)
    return t


def _run(windows, records, *, suppress=False, kind="count"):
    """Pipe ``records``; returns (latest value per windowed key from the updates, the
    final results as (Windowed, value, stream time when emitted), stream time, driver)."""
    driver = TopologyTestDriver(_topology(windows, suppress=suppress, kind=kind))
    table: dict[Windowed, int] = {}
    finals = []
    stream_time = -1
    for customer, amount, ts in records:
        driver.pipe("orders", customer, amount, ts)
        stream_time = max(stream_time, ts)
        for r in driver.read_output("updates"):
            if r.value is None:
                table.pop(r.key, None)
            else:
                table[r.key] = r.value
        if suppress:
            finals += [(r.key, r.value, stream_time) for r in driver.read_output("final")]
    return table, finals, stream_time, driver


def _value(kind, amount):
    return 1 if kind == "count" else amount


# ------------------------------------------------------------------ tumbling / hopping


def reference_time_windows(records, size, advance, grace, kind="count"):
    """Window [s, s + size) for s = 0, advance, 2*advance, ...; a record counts in each of
    its windows that is still open (end > stream time - grace) when it arrives."""
    table: dict[Windowed, int] = defaultdict(int)
    stream_time = -1
    for customer, amount, ts in records:
        stream_time = max(stream_time, ts)
        for s in range(0, ts + 1, advance):
            if s <= ts < s + size and s + size > stream_time - grace:
                table[Windowed(customer, Window(s, s + size))] += _value(kind, amount)
    return dict(table)


def _check_finals(finals, reference, stream_time, close_time):
    """Each closed window's final result exactly once, after it closed; nothing else."""
    keys = [k for k, _, _ in finals]
    assert len(keys) == len(set(keys)), "a window's final result was emitted twice"
    for key, value, emitted_at in finals:
        assert close_time(key.window) <= emitted_at, f"{key} emitted before it closed"
        assert reference[key] == value
    expected = {k: v for k, v in reference.items() if close_time(k.window) <= stream_time}
    assert {k: v for k, v, _ in finals} == expected


@SETTINGS
@given(orders(), st.booleans())
def test_orders_per_customer_per_minute_equal_the_reference(records, suppress):
    """The issue's test: tumbling one-minute counts per customer with a 10 s grace over
    out-of-order and late records, with and without suppress."""
    w = TumblingWindows(MINUTE, grace_ms=10_000)
    table, finals, stream_time, driver = _run(w, records, suppress=suppress)
    reference = reference_time_windows(records, MINUTE, MINUTE, 10_000)
    assert table == reference
    if suppress:
        _check_finals(finals, reference, stream_time, lambda win: win.end + 10_000)
    driver.close()


@SETTINGS
@given(orders(), st.integers(1, 4), st.integers(0, 30_000))
def test_hopping_sums_equal_the_reference(records, hops, grace):
    size, advance = MINUTE, MINUTE // hops
    w = HoppingWindows(size, advance, grace_ms=grace)
    table, finals, stream_time, driver = _run(w, records, suppress=True, kind="sum")
    reference = reference_time_windows(records, size, advance, grace, kind="sum")
    assert table == reference
    _check_finals(finals, reference, stream_time, lambda win: win.end + grace)
    driver.close()


def test_late_records_are_dropped_counted_and_logged():
    from loguru import logger

    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        w = TumblingWindows(MINUTE, grace_ms=10_000)
        records = [("alice", 1, 5_000), ("alice", 1, 75_000), ("alice", 1, 59_000),
                   ("bob", 1, 50_000), ("alice", 1, 70_001)]
        table, _, _, driver = _run(w, records)
    finally:
        logger.remove(sink)
    # at stream time 75 000 the first minute's window closed at 70 000: 59 000 and
    # 50 000 are late; 70 001 is in the open second minute
    assert table == {Windowed("alice", Window(0, MINUTE)): 1,
                     Windowed("alice", Window(MINUTE, 2 * MINUTE)): 2}
    node = next(p for g in driver._tasks for p in g._processors.values()
                if hasattr(p, "drops"))
    assert node.dropped == 2
    assert any("timestamp=59000" in m and "late" in m for m in warnings)
    driver.close()


# ---------------------------------------------------------------------------- sliding


def reference_sliding(records, d, grace, kind="count"):
    """Kafka's sliding windows, from their definition: for each accepted record r (not
    late: r + d >= stream time - grace) its left window [r - d, r] ([0, d] if r < d)
    exists if it was open (end >= stream time - grace) when r arrived; its right window
    [r + 1, r + 1 + d] exists if a record in it arrived while it was open. A window holds
    the accepted records in it that arrived while it was open."""
    accepted = []  # (customer, amount, ts, close time at arrival)
    stream_time = -1
    for customer, amount, ts in records:
        stream_time = max(stream_time, ts)
        close = stream_time - grace
        if ts + d >= close:
            accepted.append((customer, amount, ts, close))
    starts = set()
    for c, _, ts, close in accepted:
        left = max(0, ts - d)
        if left + d >= close:
            starts.add((c, left))
        for c2, _, ts2, close2 in accepted:
            if c2 == c and ts < ts2 <= ts + 1 + d and ts + 1 + d >= close2:
                starts.add((c, ts + 1))
    table = {}
    for c, s in starts:
        inside = [_value(kind, a) for c2, a, ts, close in accepted
                  if c2 == c and s <= ts <= s + d and s + d >= close]
        table[Windowed(c, Window(s, s + d))] = sum(inside)
    return table


@SETTINGS
@given(orders(8_000, 40_000, 3_000),
       st.integers(1, 30_000), st.integers(0, 20_000), st.booleans())
def test_sliding_windows_equal_the_reference(records, d, grace, suppress):
    w = SlidingWindows(d, grace_ms=grace)
    table, finals, stream_time, driver = _run(w, records, suppress=suppress, kind="sum")
    reference = reference_sliding(records, d, grace, kind="sum")
    assert table == reference
    if suppress:
        _check_finals(finals, reference, stream_time, lambda win: win.end + grace + 1)
    driver.close()


def test_sliding_windows_kafka_example():
    """Records at 8, 10 and 14 (d = 5), in order: Kafka's windows [3,8], [5,10], [9,14],
    [9,14]'s predecessor right windows, counted."""
    table, _, _, driver = _run(SlidingWindows(5), [("k", 1, 8), ("k", 1, 10), ("k", 1, 14)])
    got = {(wk.window.start, wk.window.end): n for wk, n in table.items()}
    assert got == {(3, 8): 1, (5, 10): 2, (9, 14): 2, (11, 16): 1}
    driver.close()


# ---------------------------------------------------------------------------- sessions


def reference_sessions(records, gap, grace):
    """Sessions per customer: a record merges the sessions within ``gap`` that are not
    final yet (final: stream time > end + gap + grace); dropped if the merged session ends
    before stream time - grace."""
    sessions: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    stream_time = -1
    for customer, amount, ts in records:
        stream_time = max(stream_time, ts)
        found = [s for s in sessions[customer] if s[1] >= ts - gap and s[0] <= ts + gap
                 and s[1] + gap + grace + 1 > stream_time]
        start = min([ts] + [s[0] for s in found])
        end = max([ts] + [s[1] for s in found])
        if end < stream_time - grace:
            continue
        for s in found:
            sessions[customer].remove(s)
        sessions[customer].append((start, end, amount + sum(s[2] for s in found)))
    return {Windowed(c, Window(s, e)): v for c, ss in sessions.items() for s, e, v in ss}


@SETTINGS
@given(orders(15_000, 40_000, 2_000),
       st.integers(1, 20_000), st.integers(0, 20_000), st.booleans())
def test_session_windows_equal_the_reference(records, gap, grace, suppress):
    w = SessionWindows(gap, grace_ms=grace)
    table, finals, stream_time, driver = _run(w, records, suppress=suppress, kind="session")
    reference = reference_sessions(records, gap, grace)
    assert table == reference
    if suppress:
        _check_finals(finals, reference, stream_time,
                      lambda win: win.end + gap + grace + 1)
    driver.close()


def test_session_merge_forwards_a_delete_for_the_merged_sessions():
    driver = TopologyTestDriver(_topology(SessionWindows(10, grace_ms=20), suppress=False))
    for ts in (0, 30, 15):  # three sessions: 15 is more than 10 from both
        driver.pipe("orders", "k", 1, ts)
    driver.pipe("orders", "k", 1, 22)  # within 10 of [15,15] and [30,30]: merges them
    got = [(r.key.window, r.value) for r in driver.read_output("updates")]
    assert got[-3:] == [(Window(15, 15), None), (Window(30, 30), None), (Window(15, 30), 3)]
    driver.close()


# ------------------------------------------------------------------- suppress and restart


def test_suppress_emits_each_final_result_once_across_a_restart():
    """The suppress buffer and the window store are logged: a second driver restored from
    the first one's changelogs emits the remaining final results, and none twice."""
    w = TumblingWindows(MINUTE, grace_ms=10_000)
    first = [("alice", 1, 1_000), ("bob", 1, 2_000), ("alice", 1, 61_000),
             ("alice", 1, 71_000)]  # closes [0, 60000)
    second = [("bob", 1, 65_000), ("alice", 1, 200_000)]  # closes [60000, 120000)
    d1 = TopologyTestDriver(_topology(w, suppress=True))
    for r in first:
        d1.pipe("orders", *r)
    before = [(r.key.key, r.key.window.start, r.value) for r in d1.read_output("final")]
    assert sorted(before) == [("alice", 0, 1), ("bob", 0, 1)]
    changelogs = {}
    for topic in sorted(t for t in d1.output_topics() if t.endswith("-changelog")):
        name = topic[len("test-"):-len("-changelog")]
        changelogs[name] = [(r.key, r.value) for r in
                            d1.read_output(topic, serdes.Bytes, serdes.Bytes)]
    assert len(changelogs) == 2 and all(changelogs.values())
    d1.close()

    d2 = TopologyTestDriver(_topology(w, suppress=True))
    for name, records in changelogs.items():
        d2.store(name).restore(records)
    for r in second:
        d2.pipe("orders", *r)
    after = [(r.key.key, r.key.window.start, r.value) for r in d2.read_output("final")]
    assert sorted(after) == [("alice", MINUTE, 2), ("bob", MINUTE, 1)]
    d2.close()


def test_suppress_needs_a_windowed_table():
    t = Topology(serdes.String, serdes.Long)
    table = t.stream("orders").group_by_key().count()
    with pytest.raises(TypeError, match="needs the table a windowed aggregation returns"):
        table.suppress()
    w = t.stream("x").group_by_key().window(TumblingWindows(10)).count()
    with pytest.raises(ValueError, match="only until_window_closes=True"):
        w.suppress(until_window_closes=False)


def test_windowed_aggregation_after_a_key_change_repartitions():
    t = Topology(serdes.String, serdes.Long)
    (t.stream("orders").group_by(lambda k, v: k.upper())
     .window(TumblingWindows(MINUTE)).count(store="by-upper")
     .to_stream().to("out", value_serde=serdes.Long))
    compiled = t.compile()
    assert [x.name for x in compiled.internal_topics if x.kind == "repartition"] == [
        "by-upper-repartition"]
    driver = TopologyTestDriver(t)
    for k in ("a", "A", "a"):
        driver.pipe("orders", k, 1, 10)
    assert [(r.key.key, r.value) for r in driver.read_output("out")][-1] == ("A", 3)
    store = {s.name: s for s in compiled.subtopologies[1].stores.values()}["by-upper"]
    assert (store.kind, store.retention_ms, store.window_size_ms) == ("window", MINUTE, MINUTE)
    driver.close()


def test_windowed_api_refuses_bad_arguments():
    t = Topology(serdes.String, serdes.Long)
    g = t.stream("orders").group_by_key()
    with pytest.raises(TypeError, match="expected TumblingWindows"):
        g.window(60_000)
    with pytest.raises(ValueError, match="retention_ms .* must be at least"):
        g.window(TumblingWindows(100, grace_ms=10)).count(retention_ms=50)
    with pytest.raises(TypeError, match="reduce: expected a function"):
        g.window(SessionWindows(10)).reduce(None)  # type: ignore[arg-type]


def test_counts_by_kind_are_consistent():
    """Tumbling counts per minute add up to the accepted records (a sanity cross-check
    of the reference itself)."""
    records = [("alice", 1, t) for t in (0, 10, 59_999, 60_000, 119_999)]
    table, _, _, driver = _run(TumblingWindows(MINUTE), records)
    assert Counter({k.window.start: v for k, v in table.items()}) == Counter(
        {0: 3, MINUTE: 2})
    driver.close()
