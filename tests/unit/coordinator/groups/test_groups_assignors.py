"""Assignors: worked examples, and hypothesis properties (coverage, balance, stickiness)."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rillet.coordinator.groups import assignors
from rillet.coordinator.groups.assignors import (
    MemberSubscription,
    is_balanced,
    range_assign,
    uniform_assign,
)
from rillet.coordinator.groups.model import TopicPartition as TP

pytestmark = pytest.mark.timeout(60)


def test_docstring_worked_examples() -> None:
    result = doctest.testmod(assignors)
    assert result.attempted >= 6 and result.failed == 0


TOPICS = ["t0", "t1", "t2", "t3"]


@st.composite
def groups(draw, homogeneous: bool = False, with_current: bool = True):
    topics = {t: draw(st.integers(0, 9)) for t in draw(st.sets(st.sampled_from(TOPICS), min_size=1))}
    n = draw(st.integers(1, 7))
    shared = draw(st.sets(st.sampled_from([*TOPICS, "missing"]), min_size=1))
    members = {}
    for i in range(n):
        subs = shared if homogeneous else draw(st.sets(st.sampled_from([*TOPICS, "missing"]),
                                                       min_size=1))
        current = frozenset()
        if with_current:
            current = frozenset(
                draw(st.sets(st.builds(TP, st.sampled_from(TOPICS), st.integers(0, 10)),
                             max_size=6))
            )
        members[f"m{i}"] = MemberSubscription(frozenset(subs), current)
    return members, topics


def check_exactly_once(members, topics, out) -> None:
    assert set(out) == set(members)
    seen: dict[TP, str] = {}
    for m, ps in out.items():
        for tp in ps:
            assert tp not in seen, f"{tp} assigned to {seen[tp]} and {m}"
            seen[tp] = m
            assert tp.topic in members[m].topics, f"{m} is not subscribed to {tp.topic}"
            assert 0 <= tp.partition < topics[tp.topic]
    expected = {
        TP(t, p)
        for t, n in topics.items()
        if any(t in s.topics for s in members.values())
        for p in range(n)
    }
    assert set(seen) == expected


@given(groups())
def test_uniform_assigns_every_partition_once_and_is_balanced(g) -> None:
    members, topics = g
    out = uniform_assign(members, topics)
    check_exactly_once(members, topics, out)
    assert is_balanced(out, members)


@given(groups(homogeneous=True))
def test_uniform_homogeneous_counts_differ_by_at_most_one(g) -> None:
    members, topics = g
    out = uniform_assign(members, topics)
    if any(t in topics for t in next(iter(members.values())).topics):
        counts = [len(ps) for ps in out.values()]
        assert max(counts) - min(counts) <= 1


@given(groups())
def test_range_assigns_every_partition_once_balanced_per_topic(g) -> None:
    members, topics = g
    out = range_assign(members, topics)
    check_exactly_once(members, topics, out)
    for t in topics:
        per = [len([tp for tp in out[m] if tp.topic == t]) for m in members if t in members[m].topics]
        if per:
            assert max(per) - min(per) <= 1


@given(groups(), st.randoms(use_true_random=False))
def test_assignors_are_deterministic_whatever_the_input_order(g, rnd) -> None:
    members, topics = g
    keys = list(members)
    rnd.shuffle(keys)
    tkeys = list(topics)
    rnd.shuffle(tkeys)
    shuffled_members = {k: members[k] for k in keys}
    shuffled_topics = {k: topics[k] for k in tkeys}
    for assign in (uniform_assign, range_assign):
        assert assign(members, topics) == assign(shuffled_members, shuffled_topics)


@given(groups())
def test_uniform_is_stable_on_its_own_output(g) -> None:
    members, topics = g
    out = uniform_assign(members, topics)
    again = uniform_assign(
        {m: MemberSubscription(s.topics, out[m]) for m, s in members.items()}, topics
    )
    assert again == out


@given(groups(homogeneous=True, with_current=False), st.data())
def test_uniform_join_moves_only_what_the_new_member_takes(g, data) -> None:
    members, topics = g
    before = uniform_assign(members, topics)
    subs = {m: MemberSubscription(s.topics, before[m]) for m, s in members.items()}
    subs["new"] = MemberSubscription(next(iter(members.values())).topics)
    after = uniform_assign(subs, topics)
    taken = after["new"]
    for m in members:
        assert after[m] <= before[m], "an existing member gained partitions on a join"
    assert sum(len(before[m] - after[m]) for m in members) == len(taken)
    counts = [len(ps) for ps in after.values()]
    if sum(counts):
        assert max(counts) - min(counts) <= 1


@given(groups(homogeneous=True, with_current=False), st.data())
def test_uniform_leave_moves_only_the_leavers_partitions(g, data) -> None:
    members, topics = g
    if len(members) < 2:
        return
    before = uniform_assign(members, topics)
    leaver = data.draw(st.sampled_from(sorted(members)))
    subs = {m: MemberSubscription(s.topics, before[m]) for m, s in members.items() if m != leaver}
    after = uniform_assign(subs, topics)
    for m in subs:
        assert before[m] <= after[m], "a remaining member lost partitions on a leave"
    gained = set().union(*(after[m] - before[m] for m in subs))
    assert gained == set(before[leaver])


def test_uniform_heterogeneous_example() -> None:
    # A subscribes to t0 only, B to t0 and t1: B takes t1, A most of t0.
    members = {
        "A": MemberSubscription(frozenset({"t0"})),
        "B": MemberSubscription(frozenset({"t0", "t1"})),
    }
    out = uniform_assign(members, {"t0": 4, "t1": 2})
    assert out["B"] >= {TP("t1", 0), TP("t1", 1)}
    assert len(out["A"]) == 3 and len(out["B"]) == 3
    assert is_balanced(out, members)


def test_members_without_topics_get_empty_sets() -> None:
    members = {"A": MemberSubscription(frozenset({"nope"}))}
    assert uniform_assign(members, {"t": 3}) == {"A": frozenset()}
    assert range_assign(members, {"t": 3}) == {"A": frozenset()}
