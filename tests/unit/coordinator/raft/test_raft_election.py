"""Elections: pre-vote, votes, persistence before answering, check-quorum, restarts."""

import pytest
from rillet.coordinator.raft import (
    AppendEntriesResponse,
    HardState,
    NotLeaderError,
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


def test_first_election_goes_through_pre_vote_without_changing_terms():
    h = Harness(3)
    h.timeout(1)
    node = h.nodes[1]
    assert node.role == "prospective" and node.term == 0
    pre = sends(h.effects[1], VoteRequest)
    assert [(m.dst, m.term, m.pre_vote) for m in pre] == [(2, 1, True), (3, 1, True)]
    assert not any(isinstance(e, PersistHardState) for e in h.effects[1])
    h.deliver(h.inflight.pop(0))  # node 2 answers the pre-vote ...
    assert h.nodes[2].term == 0 and h.hard[2] == HardState(0, None)  # ... without moving
    h.deliver_all()
    assert node.is_leader and node.term == 1
    assert h.hard[2] == HardState(1, 1) and h.hard[3] == HardState(1, 1)


def test_candidate_persists_its_vote_before_asking():
    h = Harness(3)
    h.timeout(1)
    h.effects[1].clear()
    h.deliver(h.inflight.pop(0))  # node 2's pre-vote grant reaches... node 2 first
    h.deliver(h.inflight.pop(0))  # node 3
    h.deliver(h.inflight.pop(0))  # the grant reaches node 1: majority -> candidate
    kinds = [type(e).__name__ for e in h.effects[1]]
    assert kinds[0] == "PersistHardState" and h.effects[1][0] == PersistHardState(1, 1)
    assert kinds[1:] == ["Send", "Send"]
    assert all(not m.pre_vote for m in sends(h.effects[1], VoteRequest))


def test_voter_persists_before_granting():
    h = Harness(3)
    request = VoteRequest(src=1, dst=2, term=1, last_log_index=0, last_log_term=0)
    effects = h.deliver(request)
    assert effects[0] == PersistHardState(1, 1)
    assert isinstance(effects[1], Send) and effects[1].message.granted


def test_one_vote_per_term_even_after_a_restart():
    h = Harness(3)
    h.deliver(VoteRequest(src=1, dst=2, term=1, last_log_index=0, last_log_term=0))
    h.crash_and_restart(2)
    effects = h.deliver(VoteRequest(src=3, dst=2, term=1, last_log_index=5, last_log_term=1))
    (reply,) = sends(effects)
    assert not reply.granted and h.nodes[2].voted_for == 1


def test_vote_refused_to_a_less_up_to_date_log():
    h = Harness(3)
    h.elect(1)
    h.propose(1, b"a=1")
    h.deliver_all()
    h.advance(h.config.election_timeout_ms)  # node 2's leader lease has run out
    effects = h.deliver(VoteRequest(src=3, dst=2, term=9, last_log_index=1, last_log_term=1))
    (reply,) = sends(effects)
    assert not reply.granted and reply.term == 9 and h.nodes[2].term == 9


def test_pre_vote_rejected_while_the_leader_is_alive():
    h = Harness(3)
    leader = h.elect(1)
    term = leader.term
    h.blocked.add(3)  # node 3 is partitioned away and keeps timing out
    for _ in range(50):
        h.heartbeat()
        h.tick(3)
    isolated = h.nodes[3]
    assert isolated.role == "prospective"
    assert isolated.term == term, "pre-vote must not let an isolated node bump its term"
    h.blocked.clear()  # healed: its pre-votes now reach a live leader and a fresh follower
    replies = []
    for dst in (1, 2):
        request = VoteRequest(
            src=3,
            dst=dst,
            term=isolated.term + 1,
            last_log_index=isolated.log.last_index,
            last_log_term=isolated.log.last_term,
            pre_vote=True,
        )
        replies += sends(h.deliver(request), VoteResponse)
    assert [(r.granted, r.term) for r in replies] == [(False, term), (False, term)]
    for _ in range(5):
        h.heartbeat()
        h.tick(3)
    assert leader.is_leader and leader.term == term
    assert isolated.role == "follower" and isolated.leader_id == 1 and isolated.term == term


def test_pre_vote_granted_when_the_leader_is_gone():
    h = Harness(3)
    h.elect(1)
    h.blocked.add(1)
    h.advance(1000)  # followers' leases expire
    h.timeout(2)
    h.deliver_all()
    assert h.nodes[2].is_leader and h.nodes[2].term == 2


def test_higher_term_makes_the_leader_step_down_and_persist():
    h = Harness(3)
    leader = h.elect(1)
    effects = h.deliver(AppendEntriesResponse(src=2, dst=1, term=7, success=False, hint_index=1))
    assert leader.role == "unattached" and leader.term == 7
    assert effects[0] == PersistHardState(7, None)


def test_check_quorum_resigns_a_leader_that_hears_nobody():
    h = Harness(3)
    leader = h.elect(1)
    h.blocked.update({2, 3})
    for _ in range(12):
        h.advance(20)
        h.tick(1)
        if not leader.is_leader:
            break
    assert leader.role == "resigned" and leader.voted_for == 1
    with pytest.raises(NotLeaderError) as err:
        leader.propose(b"x", h.now)
    assert err.value.retriable


def test_single_voter_elects_itself_and_commits_alone():
    h = Harness(1)
    h.timeout(1)
    assert h.nodes[1].is_leader
    h.propose(1, b"k=v")
    assert h.applied[1] == [b"k=v"] and h.nodes[1].commit_index == 2


def test_restart_keeps_term_and_vote():
    h = Harness(3)
    h.elect(1)
    node = h.crash_and_restart(2)
    assert (node.term, node.voted_for, node.role) == (1, 1, "voted")
    assert node.log.last_index == 1  # the leader's no-op was flushed before it was acked


def test_not_leader_error_names_the_leader():
    h = Harness(3)
    h.elect(1)
    with pytest.raises(NotLeaderError) as err:
        h.propose(2, b"x")
    assert err.value.leader_id == 1


def test_resign_hands_leadership_to_an_up_to_date_follower_at_once():
    h = Harness(3)
    leader = h.elect(1)
    h.propose(1, b"a=1")
    h.deliver_all()
    effects = leader.resign(h.now)
    (handoff,) = sends(effects, TimeoutNow)
    assert leader.role == "resigned" and handoff.term == 1
    h.run(1, effects)
    h.deliver_all()  # no clock movement: the follower elects itself right away
    new = h.nodes[handoff.dst]
    assert new.is_leader and new.term == 2
    h.propose(new.node_id, b"b=2")
    h.deliver_all()
    h.heartbeat()
    assert h.applied[1] == h.applied[2] == h.applied[3] == [b"a=1", b"b=2"]
    assert leader.resign(h.now) == []  # not a leader any more: nothing to do
