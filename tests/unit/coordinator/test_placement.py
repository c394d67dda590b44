"""Replica placement: deterministic, balanced, refuses what cannot be placed."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rillet.coordinator.placement import PlacementError, assign_replicas, preferred_leader


def test_worked_example_from_the_docstring() -> None:
    assert assign_replicas([3, 1, 2], 6, 2) == [(1, 2), (2, 3), (3, 1), (1, 3), (2, 1), (3, 2)]


def test_single_broker() -> None:
    assert assign_replicas([7], 3, 1) == [(7,), (7,), (7,)]


def test_start_index_rotates_leaders_and_first_partition_continues() -> None:
    assert [r[0] for r in assign_replicas([1, 2, 3], 3, 1, start_index=1)] == [2, 3, 1]
    grown = assign_replicas([1, 2, 3], 2, 2, first_partition=4)
    assert grown == assign_replicas([1, 2, 3], 6, 2)[4:]


def test_refusals_are_clear() -> None:
    with pytest.raises(PlacementError, match="larger than the number of live brokers"):
        assign_replicas([1, 2], 1, 3)
    with pytest.raises(PlacementError, match="partitions must be positive") as info:
        assign_replicas([1], 0, 1)
    assert not info.value.replication_factor
    with pytest.raises(PlacementError):
        assign_replicas([1], 1, 0)


def test_preferred_leader() -> None:
    assert preferred_leader((4, 2)) == 4 and preferred_leader(()) == -1


@given(
    brokers=st.sets(st.integers(0, 50), min_size=1, max_size=8),
    data=st.data(),
)
def test_balanced_and_distinct(brokers, data) -> None:
    n = len(brokers)
    rf = data.draw(st.integers(1, n))
    rounds = data.draw(st.integers(1, 4))
    layout = assign_replicas(sorted(brokers, reverse=True), n * rounds, rf)
    assert layout == assign_replicas(list(brokers), n * rounds, rf)  # order-independent
    assert all(len(set(r)) == rf and set(r) <= brokers for r in layout)
    leaders = Counter(r[0] for r in layout)
    assert set(leaders.values()) == {rounds}  # every broker leads equally
    load = Counter(b for r in layout for b in r)
    assert max(load.values()) - min(load.values()) <= (rf - 1)
