"""Window specifications (rillet.streams.windows): assignment, closing, validation, the
windowed-key serdes. Pure; the aggregations are in test_windows_aggregate.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rillet.streams import serdes
from rillet.streams.api import Window, Windowed
from rillet.streams.windows import (
    HoppingWindows,
    JoinWindows,
    SessionWindowedSerde,
    SessionWindows,
    SlidingWindows,
    TimeWindowedSerde,
    TumblingWindows,
    merge_sessions,
)


def test_tumbling_windows_for():
    w = TumblingWindows(60_000, grace_ms=10_000)
    assert w.windows_for(0) == [Window(0, 60_000)]
    assert w.windows_for(59_999) == [Window(0, 60_000)]
    assert w.windows_for(125_000) == [Window(120_000, 180_000)]
    assert w.close_time(Window(120_000, 180_000)) == 190_000
    assert w.retention_ms() == 70_000
    assert w.windows_for(-1) == []


def test_hopping_windows_for():
    w = HoppingWindows(10, 4)
    # starts at multiples of 4 with start <= t < start + 10
    assert w.windows_for(13) == [Window(4, 14), Window(8, 18), Window(12, 22)]
    assert w.windows_for(2) == [Window(0, 10)]


@given(st.integers(1, 50), st.integers(1, 50), st.integers(0, 10_000))
def test_hopping_windows_are_exactly_those_holding_t(size, advance, t):
    if advance > size:
        advance, size = size, advance
    w = HoppingWindows(size, advance)
    expected = [Window(s, s + size) for s in range(0, t + 1, advance) if s <= t < s + size]
    assert w.windows_for(t) == expected


@pytest.mark.parametrize("make, message", [
    (lambda: TumblingWindows(0), "size_ms must be > 0"),
    (lambda: TumblingWindows(-5), "size_ms must be > 0"),
    (lambda: TumblingWindows(10, grace_ms=-1), "grace_ms must be >= 0"),
    (lambda: HoppingWindows(10, 11), "advance_ms \\(11\\) must be <= size_ms"),
    (lambda: HoppingWindows(10, 0), "advance_ms must be > 0"),
    (lambda: SlidingWindows(0), "time_difference_ms must be > 0"),
    (lambda: SessionWindows(0), "inactivity_gap_ms must be > 0"),
    (lambda: JoinWindows(-1), "before_ms must be >= 0"),
    (lambda: JoinWindows(5, -2), "after_ms must be >= 0"),
])
def test_invalid_windows_are_refused_with_a_clear_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_non_integer_durations_are_refused():
    with pytest.raises(TypeError, match="size_ms must be an int"):
        TumblingWindows(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="grace_ms must be an int"):
        SessionWindows(10, grace_ms=True)  # type: ignore[arg-type]


def test_join_windows_symmetric_by_default_and_matches():
    w = JoinWindows(5)
    assert (w.before_ms, w.after_ms, w.size_ms, w.retention_ms()) == (5, 5, 10, 10)
    a = JoinWindows(10, 2, grace_ms=3)
    assert a.matches(100, 90) and a.matches(100, 102)
    assert not a.matches(100, 89) and not a.matches(100, 103)
    assert a.retention_ms() == 15


def test_session_final_time_and_lateness():
    s = SessionWindows(5, grace_ms=2)
    session = Window(10, 20)
    # a record at 25 (= end + gap) still merges while 25 >= stream_time - 2
    assert s.final_time(session) == 28
    assert not s.is_late(Window(10, 25), 27)
    assert s.is_late(Window(10, 25), 28)
    assert merge_sessions([Window(3, 8), Window(12, 15)], 10) == Window(3, 15)


def test_windowed_serdes_round_trip_in_kafka_layout():
    tw = TimeWindowedSerde(serdes.String, 60)
    data = tw.serialize("t", Windowed("alice", Window(120, 180)))
    assert data == b"alice" + (120).to_bytes(8, "big")
    assert tw.deserialize("t", data) == Windowed("alice", Window(120, 180))
    sw = SessionWindowedSerde(serdes.String)
    data = sw.serialize("t", Windowed("bob", Window(3, 9)))
    assert data == b"bob" + (9).to_bytes(8, "big") + (3).to_bytes(8, "big")
    assert sw.deserialize("t", data) == Windowed("bob", Window(3, 9))


def test_windowed_serdes_refuse_bad_input():
    tw = TimeWindowedSerde(serdes.String, 60)
    with pytest.raises(TypeError, match="Windowed"):
        tw.serialize("t", "alice")
    with pytest.raises(ValueError, match="too short"):
        tw.deserialize("t", b"abc")
    with pytest.raises(ValueError, match="too short"):
        SessionWindowedSerde(serdes.String).deserialize("t", b"x" * 15)


def test_windowed_serde_without_inner_uses_the_default():
    tw = TimeWindowedSerde(None, 10, default=lambda: serdes.String)
    assert tw.deserialize("t", tw.serialize("t", Windowed("k", Window(0, 10)))).key == "k"
    assert tw.with_defaults(serdes.Long, serdes.Long).inner is serdes.Long
