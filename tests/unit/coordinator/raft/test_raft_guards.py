"""Disruption guards: leader lease on votes, the term limit, messages from non-voters.

A forged or runaway VoteRequest must neither depose a healthy leader nor leave a node in a
term it cannot leave (issue #11: one VoteRequest with term 2**63 - 1 ended the quorum).
"""

import pytest
from rillet.coordinator.raft import (
    TERM_LIMIT,
    HardState,
    InvalidMessageError,
    MemoryRaftLog,
    PersistHardState,
    Send,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)

from tests.sim.raft_harness import Harness

pytestmark = pytest.mark.timeout(30)


def sends(effects, kind=None):
    return [
        e.message
        for e in effects
        if isinstance(e, Send) and (kind is None or isinstance(e.message, kind))
    ]


def _vote(src, dst, term, *, pre_vote=False, last=(0, 0)):
    return VoteRequest(
        src=src,
        dst=dst,
        term=term,
        last_log_index=last[0],
        last_log_term=last[1],
        pre_vote=pre_vote,
    )


def _stable(n=3):
    h = Harness(n)
    h.elect(1)
    h.propose(1, b"a=1")
    h.deliver_all()
    h.heartbeat()
    return h


@pytest.mark.parametrize("pre_vote", [False, True])
def test_a_follower_with_a_live_leader_ignores_a_higher_term_vote(pre_vote):
    h = _stable()
    term = h.nodes[1].term
    node = h.nodes[2]
    last = (node.log.last_index, node.log.last_term)  # as up to date as it gets
    effects = h.nodes[2].handle(_vote(3, 2, term + 1, pre_vote=pre_vote, last=last), h.now)
    (reply,) = sends(effects, VoteResponse)
    assert not reply.granted and reply.term == term
    assert not any(isinstance(e, PersistHardState) for e in effects)  # nothing adopted
    assert node.term == term and node.role == "follower" and node.leader_id == 1


def test_the_leader_ignores_a_higher_term_vote():
    h = _stable()
    leader = h.nodes[1]
    term = leader.term
    effects = leader.handle(_vote(2, 1, term + 1, last=(99, term)), h.now)
    (reply,) = sends(effects, VoteResponse)
    assert not reply.granted and reply.term == term
    assert leader.is_leader and leader.term == term


def test_the_vote_is_granted_once_the_lease_has_run_out():
    h = _stable()
    term = h.nodes[1].term
    node = h.nodes[2]
    h.advance(h.config.election_timeout_ms)
    effects = node.handle(
        _vote(3, 2, term + 1, last=(node.log.last_index, node.log.last_term)), h.now
    )
    (reply,) = sends(effects, VoteResponse)
    assert reply.granted and node.term == term + 1 and node.voted_for == 3


def test_repeated_term_plus_one_votes_never_move_a_healthy_cluster():
    """A DoS by repetition: term + 1 in a voter's name, again and again, to every node."""
    h = _stable()
    term = h.nodes[1].term
    for _ in range(30):
        for dst in h.voters:
            src = next(v for v in h.voters if v != dst)
            h.run(dst, h.nodes[dst].handle(_vote(src, dst, h.nodes[dst].term + 1), h.now))
        h.deliver_all()
        h.advance(h.config.heartbeat_interval_ms)
        h.heartbeat()
    assert h.nodes[1].is_leader and all(n.term == term for n in h.nodes.values())


def test_a_higher_term_timeout_now_is_ignored_while_the_leader_is_alive():
    h = _stable()
    term = h.nodes[1].term
    effects = h.nodes[2].handle(TimeoutNow(src=3, dst=2, term=term + 5), h.now)
    assert effects == [] and h.nodes[2].term == term and h.nodes[2].leader_id == 1


@pytest.mark.parametrize("term", [TERM_LIMIT, TERM_LIMIT + 1, (1 << 63) - 1, 1 << 70])
@pytest.mark.parametrize("pre_vote", [False, True])
def test_a_term_that_cannot_be_incremented_is_refused(term, pre_vote):
    h = Harness(3)  # no leader: no lease protects these nodes
    node = h.nodes[2]
    before = (node.term, node.voted_for, node.role)
    with pytest.raises(InvalidMessageError, match="limit"):
        node.handle(_vote(3, 2, term, pre_vote=pre_vote), h.now)
    assert (node.term, node.voted_for, node.role) == before


def test_a_vote_from_a_node_that_is_not_a_voter_is_refused():
    h = Harness(3)
    node = h.nodes[2]
    with pytest.raises(InvalidMessageError, match="not another voter"):
        node.handle(_vote(9, 2, 5, last=(1 << 40, 1 << 40)), h.now)
    assert node.term == 0 and node.voted_for is None


def test_a_node_at_the_last_term_never_elects_itself_past_the_limit():
    """A node restarted at TERM_LIMIT - 1 (the largest term it may hold) times out again and
    again: it sends no VoteRequest and persists nothing past the limit."""
    h = Harness(3)
    h.hard[2] = HardState(TERM_LIMIT - 1, None)
    node = h.start(2, MemoryRaftLog())
    for _ in range(5):
        h.now = max(h.now, node.next_tick_ms)
        effects = node.tick(h.now)
        assert not sends(effects, VoteRequest)
        assert all(e.term < TERM_LIMIT for e in effects if isinstance(e, PersistHardState))
    assert node.term == TERM_LIMIT - 1


def test_leadership_transfer_still_works_with_three_voters():
    """TimeoutNow skips the lease: the resigned leader's vote plus the candidate's own."""
    h = _stable()
    term = h.nodes[1].term
    h.run(1, h.nodes[1].resign(h.now))
    h.deliver_all()
    leaders = [n for n in h.nodes.values() if n.is_leader]
    assert len(leaders) == 1 and leaders[0].node_id != 1 and leaders[0].term == term + 1
