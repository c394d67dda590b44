"""Ring 2: thousands of seeded Raft simulations, invariants checked after every step.

Environment knobs (a failure prints its own reproducer, too):
  RILLET_SIM_SEED=1234       run just that seed (with RILLET_SIM_STEPS, default as below)
  RILLET_SIM_SEEDS=5000      how many seeds the default suite sweeps (default 400)
  RILLET_SIM_STEPS=600       fault-phase steps per seed
"""

from __future__ import annotations

import os

import pytest
from rillet.coordinator.raft import HardState, LogEntry, MemoryRaftLog, RaftNode, VoteRequest

from .checker import InvariantViolation, RaftChecker
from .raft_harness import Harness
from .raft_sim import RaftSimulation, SimFailure, run_seed
from .variants import VARIANTS

SEEDS = int(os.environ.get("RILLET_SIM_SEEDS", "400"))
STEPS = int(os.environ.get("RILLET_SIM_STEPS", "600"))
ONE_SEED = os.environ.get("RILLET_SIM_SEED")
CHUNKS = 8


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_raft_survives_seeded_faults(chunk):
    seeds = [int(ONE_SEED)] if ONE_SEED is not None else range(chunk, SEEDS, CHUNKS)
    if ONE_SEED is not None and chunk:
        pytest.skip("RILLET_SIM_SEED runs in chunk 0 only")
    for seed in seeds:
        run_seed(seed, STEPS)  # SimFailure names the seed and a reproducer


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_raft_long_sweep():
    for seed in range(100_000, 110_000):
        run_seed(seed, 2000)


@pytest.mark.timeout(60)
def test_raft_survives_forged_vote_requests():
    """Forged VoteRequests at random times (non-voters; a voter's name with a term of 2**63-2
    or more, or term + 1), on top of each seed's faults: invariants hold (no term past the
    limit is ever persisted or sent) and a leader commits at the end."""
    forged = refused = 0
    for seed in range(120):
        stats = run_seed(seed, 400, forge_rate=0.05)
        forged += stats.forged
        refused += stats.forged_refused
    assert forged > 1000 and 0 < refused < forged


@pytest.mark.timeout(30)
def test_forged_term_plus_one_votes_do_not_move_a_stable_leader():
    """The DoS by repetition: term + 1 in a voter's name every few ms, for 40 election
    timeouts; the leader and the term stay as they were."""
    sim = RaftSimulation(5, 0, nodes=3)
    sim.faults = sim.faults.__class__(0.0, 0.0, 5, 0.0, 0.0, 0.0)
    sim.loss = sim.duplicate = sim.mid_effect_crash = 0.0
    while not any(sn.raft.is_leader for sn in sim.nodes.values()):
        sim._step()
    for _ in range(200):
        sim._step()
    leader = next(sn for sn in sim.nodes.values() if sn.raft.is_leader)
    term = leader.raft.term
    start = sim.now
    while sim.now < start + 40 * 150:
        for sn in sim.nodes.values():
            src = next(v for v in sim.voters if v != sn.node_id)
            forged = VoteRequest(
                src=src, dst=sn.node_id, term=sn.raft.term + 1, last_log_index=0, last_log_term=0
            )
            sim._push(sim.now + 1, 2, forged)
        for _ in range(10):
            sim._step()
    assert leader.raft.is_leader and leader.raft.term == term
    assert max(sn.raft.term for sn in sim.nodes.values()) == term


@pytest.mark.timeout(60)
@pytest.mark.parametrize("variant", ["no-log-check", "amnesiac", "send-before-flush"])
def test_checker_catches_broken_nodes(variant):
    """The simulator is only worth its runtime if it fails on real Raft bugs."""
    factory = VARIANTS[variant]
    for seed in range(400):
        try:
            run_seed(seed, STEPS, node_factory=factory, variant=variant)
        except SimFailure as failure:
            assert f"--seed {seed} " in str(failure) and f"--variant {variant}" in str(failure)
            return
    pytest.fail(f"no seed in 0..399 exposed the {variant} bug")


def _cluster(payloads, leader=1, term=0):
    h = Harness(3)
    for i in h.voters:
        h.hard[i] = HardState(term, None)
        h.start(i, MemoryRaftLog())
    h.elect(leader)
    for p in payloads:
        h.propose(leader, p)
    h.deliver_all()
    h.heartbeat()
    return h


def _observe(checker, h, i):
    checker.observe(i, h.nodes[i], h.machines[i].digest, h.nodes[i].applied_index)


def test_checker_accepts_a_healthy_cluster():
    h = _cluster([b"a=1", b"b=2"])
    checker = RaftChecker()
    for i in h.voters:
        _observe(checker, h, i)
    assert checker.commit_index == 3


def test_checker_catches_a_changed_committed_entry():
    checker = RaftChecker()
    _observe(checker, _cluster([b"a=1", b"b=2"]), 1)
    with pytest.raises(InvariantViolation, match="committed .* before"):
        _observe(checker, _cluster([b"a=1", b"b=3"]), 2)


def test_checker_catches_two_leaders_in_one_term():
    checker = RaftChecker()
    _observe(checker, _cluster([], leader=1), 1)
    with pytest.raises(InvariantViolation, match="two leaders in term 1"):
        _observe(checker, _cluster([], leader=2), 2)


def test_checker_catches_a_commit_index_going_back():
    h = _cluster([b"a=1"])
    checker = RaftChecker()
    _observe(checker, h, 2)
    h.nodes[2].commit_index -= 1
    with pytest.raises(InvariantViolation, match="went back"):
        _observe(checker, h, 2)


def test_checker_catches_a_committed_entry_rewritten_in_place():
    h = _cluster([b"a=1", b"b=2", b"c=3"])
    checker = RaftChecker()
    _observe(checker, h, 2)
    log = h.nodes[2].log
    log._entries[:] = [LogEntry(e.term, b"rewritten", e.control) for e in log._entries]
    with pytest.raises(InvariantViolation, match="changed committed entry"):
        _observe(checker, h, 2)


def test_checker_catches_a_diverged_state_machine():
    h = _cluster([b"a=1"])
    h.machines[3].apply(b"extra=1")
    with pytest.raises(InvariantViolation, match="diverged"):
        _observe(RaftChecker(), h, 3)


def test_checker_catches_a_leader_missing_committed_entries():
    checker = RaftChecker()
    _observe(checker, _cluster([b"a=1", b"b=2"]), 1)  # committed in term 1
    h = Harness(3)
    for i in h.voters:
        h.hard[i] = HardState(1, None)
        h.start(i, MemoryRaftLog())
    h.timeout(3)
    while not h.nodes[3].is_leader:  # a term-2 leader that never had them
        h.deliver(h.inflight.pop(0))
    with pytest.raises(InvariantViolation, match="lacks committed entry 1"):
        _observe(checker, h, 3)


@pytest.mark.timeout(30)
def test_isolated_follower_rejoins_without_disrupting_the_leader():
    """Pre-vote: a node cut off for many election timeouts comes back at the same term."""
    sim = RaftSimulation(11, 0, nodes=5)
    sim.faults = sim.faults.__class__(0.0, 0.0, 5, 0.0, 0.0, 0.0)
    sim.loss = sim.duplicate = sim.mid_effect_crash = 0.0
    while not any(sn.raft.is_leader for sn in sim.nodes.values()):
        sim._step()
    for _ in range(500):
        sim._step()
    leader = next(sn for sn in sim.nodes.values() if sn.raft.is_leader)
    term = leader.raft.term
    victim = next(i for i in sim.voters if i != leader.node_id)
    sim.blocked = {(victim, o) for o in sim.voters} | {(o, victim) for o in sim.voters}
    start = sim.now
    while sim.now < start + 20 * 150:  # twenty election timeouts alone
        sim._step()
    assert sim.nodes[victim].raft.role == "prospective"
    assert sim.nodes[victim].raft.term == term
    sim.blocked.clear()
    start = sim.now
    while sim.now < start + 10 * 150:
        sim._step()
    assert leader.raft.is_leader and leader.raft.term == term
    assert sim.nodes[victim].raft.leader_id == leader.node_id
    assert max(sn.raft.term for sn in sim.nodes.values()) == term


def test_default_node_is_the_real_one():
    assert RaftSimulation(1, 10).node_factory is RaftNode
