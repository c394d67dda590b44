"""The transition table: docstring and data agree; illegal transitions raise, change nothing."""

import random

import pytest
from rillet.coordinator.raft import (
    AppendEntriesRequest,
    IllegalTransitionError,
    MemoryRaftLog,
    RaftNode,
)
from rillet.coordinator.raft import state as st

from tests.sim.raft_harness import Harness


def test_docstring_table_is_the_checked_table():
    rows = [
        line.split("|")
        for line in st.__doc__.splitlines()
        if "|" in line and not line.strip().startswith("from")
    ]
    parsed = {}
    for row in rows:
        src = row[0].strip()
        for dst, rule in zip(st.ROLES, (c.strip() for c in row[1:]), strict=True):
            if rule != "-":
                parsed[(src, dst)] = rule
    assert parsed == st.TRANSITIONS
    assert len(parsed) == 30


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (st.Leader(3, 1, {}, 0, 0), st.Follower(3, 2, None, 0, 0)),  # same-term leader change
        (st.Unattached(3, 0), st.Leader(3, 1, {}, 0, 0)),  # leader without election
        (st.Prospective(3, None, 0), st.Candidate(5, 1, 0)),  # must be exactly term + 1
        (st.Follower(4, 2, None, 0, 0), st.Unattached(3, 0)),  # terms never go back
        (st.Voted(4, 2, 0), st.Voted(4, 3, 0)),  # a second vote in one term
    ],
)
def test_illegal_transitions_raise(old, new):
    with pytest.raises(IllegalTransitionError):
        st.check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (st.Unattached(3, 0), st.Voted(3, 2, 0)),
        (st.Prospective(3, None, 0), st.Candidate(4, 1, 0)),
        (st.Candidate(4, 1, 0), st.Leader(4, 1, {}, 0, 0)),
        (st.Leader(4, 1, {}, 0, 0), st.Resigned(4, 1, 0)),
        (st.Leader(4, 1, {}, 0, 0), st.Follower(5, 2, None, 0, 0)),
    ],
)
def test_legal_transitions_pass(old, new):
    st.check_transition(old, new)


def test_illegal_event_raises_and_leaves_the_leader_unchanged():
    h = Harness(3)
    leader = h.elect(1)
    before = (leader.state, leader.term, leader.log.last_index, leader.commit_index)
    rogue = AppendEntriesRequest(
        src=2,
        dst=1,
        term=leader.term,
        prev_log_index=0,
        prev_log_term=0,
        entries=(),
        leader_commit=0,
    )
    with pytest.raises(IllegalTransitionError, match="leader.*follower"):
        leader.handle(rogue, h.now)
    assert (leader.state, leader.term, leader.log.last_index, leader.commit_index) == before
    assert leader.is_leader


def test_node_must_be_a_voter():
    with pytest.raises(ValueError, match="not one of the voters"):
        RaftNode(9, {1, 2, 3}, MemoryRaftLog(), rng=random.Random(0), now_ms=0)
