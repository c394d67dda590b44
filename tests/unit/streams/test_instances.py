"""instances.py: the instances topic's entries, the view with liveness, and the standby
placement every instance computes alike (docs/streams.md "Standby replicas")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rillet.streams.api import TaskId
from rillet.streams.instances import (
    Directory,
    HostInfo,
    InstanceInfo,
    decode,
    encode,
    place_standbys,
)

T = [TaskId(s, p) for s in (0, 1) for p in range(4)]


def test_entries_round_trip_and_bad_ones_are_refused() -> None:
    info = InstanceInfo(HostInfo("h", 1), frozenset(T[:2]), frozenset(T[5:]))
    assert decode(encode(info)) == info
    assert decode(encode(InstanceInfo(None, frozenset(), frozenset()))).server is None
    for bad in (b"", b"{}", b"[1]", b'{"server": "x", "active": [], "standby": []}',
                b'{"server": null, "active": ["zz"], "standby": []}', b"\xff"):
        with pytest.raises(ValueError, match="not an instance entry"):
            decode(bad)


def test_host_info_parses_host_port() -> None:
    assert HostInfo.parse("a.b-c:80") == HostInfo("a.b-c", 80)
    assert str(HostInfo.parse("[::1]:9")) == "[::1]:9"
    for bad in ("a", "a:0", "a:65536", ":80", "a b:1", None):
        with pytest.raises(ValueError):
            HostInfo.parse(bad)  # type: ignore[arg-type]


def test_an_instance_not_heard_of_is_dead_and_a_tombstone_removes_it() -> None:
    d = Directory("me", liveness_s=10)
    e = InstanceInfo(None, frozenset(), frozenset())
    d.apply("me", e, 0)
    d.apply("x", e, 0)
    d.apply("y", e, 5)
    assert set(d.live(10)) == {"me", "x", "y"}
    assert set(d.live(12)) == {"me", "y"}  # x silent 12 s; itself always listed
    d.apply("y", e, 4)  # an older record does not refresh it
    assert set(d.live(15.5)) == {"me"}
    d.apply("x", e, 20)
    d.apply("x", None, 21)
    assert set(d.live(21)) == {"me"}


def _view(active: dict[str, list[TaskId]]) -> dict[str, InstanceInfo]:
    return {i: InstanceInfo(None, frozenset(ts), frozenset()) for i, ts in active.items()}


@given(st.integers(1, 5), st.integers(0, 3), st.randoms(use_true_random=False))
def test_placement_gives_each_task_its_replicas_away_from_its_owner(n, replicas, rnd):
    instances = [f"i{k}" for k in range(n)]
    owner = {t: rnd.choice(instances) for t in T}
    live = _view({i: [t for t in T if owner[t] == i] for i in instances})
    placed = {i: place_standbys(i, T, live, replicas) for i in instances}
    for t in T:
        holders = [i for i in instances if t in placed[i]]
        assert owner[t] not in holders
        assert len(holders) == min(replicas, n - 1)


def test_placement_moves_few_standbys_when_an_instance_joins() -> None:
    many = [TaskId(0, p) for p in range(60)]
    two = _view({"a": many[:30], "b": many[30:]})
    before = {i: place_standbys(i, many, two, 1) for i in two}
    three = {**two, "c": InstanceInfo(None, frozenset(), frozenset())}
    after = {i: place_standbys(i, many, three, 1) for i in three}
    for i in two:  # standbys only move to the newcomer, never between a and b
        assert after[i] <= before[i]
    assert 0 < len(after["c"]) < 60 and len(after["c"]) == sum(
        len(before[i] - after[i]) for i in two)
    assert place_standbys("a", many, two, 0) == set()
