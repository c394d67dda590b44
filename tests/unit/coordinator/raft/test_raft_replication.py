"""Replication: conflicts, commit rule (Raft 5.4.2), ordering of effects, snapshots, bad input."""

import pytest
from rillet.coordinator.raft import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ApplyCommitted,
    FlushLog,
    HardState,
    InstallSnapshotRequest,
    InvalidMessageError,
    LogEntry,
    MemoryRaftLog,
    RaftConfig,
    RaftNode,
    RestoreSnapshot,
    Send,
    Snapshot,
    TakeSnapshot,
    VoteRequest,
)

from tests.sim.raft_harness import CONFIG, Harness
from tests.sim.variants import PreviousTermCommitNode

pytestmark = pytest.mark.timeout(30)


def entry(term, payload):
    return LogEntry(term, payload)


def test_proposals_commit_and_apply_everywhere_in_order():
    h = Harness(3)
    h.elect(1)
    for i in range(5):
        h.propose(1, f"k{i}=v".encode())
    h.deliver_all()
    h.heartbeat()  # carries the leader's commit index to the followers
    for i in (1, 2, 3):
        assert h.applied[i] == [f"k{i}=v".encode() for i in range(5)]
        assert h.nodes[i].commit_index == 6  # the no-op + 5
    assert len({h.machines[i].digest for i in (1, 2, 3)}) == 1


def test_follower_flushes_before_it_acknowledges():
    h = Harness(3)
    h.elect(1)
    h.propose(1, b"a=1")
    request = next(m for m in h.inflight if isinstance(m, AppendEntriesRequest) and m.dst == 2)
    h.inflight.remove(request)
    effects = h.deliver(request)
    kinds = [type(e) for e in effects]
    assert kinds.index(FlushLog) < kinds.index(Send)
    assert effects[kinds.index(Send)].message.success


def test_leader_flushes_before_it_replicates_and_applies():
    h = Harness(3)
    h.elect(1)
    h.deliver_all()
    _, effects = h.nodes[1].propose(b"a=1", h.now)
    assert isinstance(effects[0], FlushLog)
    assert all(isinstance(e, Send) for e in effects[1:])
    h1 = Harness(1)
    h1.timeout(1)
    _, effects = h1.nodes[1].propose(b"b=2", h1.now)
    assert [type(e) for e in effects] == [FlushLog, ApplyCommitted]


def test_conflicting_uncommitted_entries_are_replaced():
    h = Harness(3, config=RaftConfig(election_timeout_ms=100, heartbeat_interval_ms=20))
    base = [entry(1, b"a=1"), entry(1, b"b=2")]
    for i, log in ((1, base), (2, base), (3, base[:1] + [entry(2, b"x=9"), entry(2, b"y=9")])):
        h.hard[i] = HardState(2, None)
        h.start(i, MemoryRaftLog(log))
    h.elect(1)  # node 2 votes for it; node 3's log is "newer" and refuses
    assert h.nodes[1].term == 3
    h.deliver_all()
    h.heartbeat()
    follower = h.nodes[3].log
    assert follower.last_index == 3
    assert [follower.entry(i) for i in (1, 2)] == base
    assert follower.entry(3).control and follower.entry(3).term == 3
    assert h.applied[3] == [b"a=1", b"b=2"]


def test_stale_or_duplicate_append_never_truncates():
    h = Harness(3)
    h.elect(1)
    for i in range(4):
        h.propose(1, f"k{i}=v".encode())
    h.deliver_all()
    follower = h.nodes[2]
    assert follower.log.last_index == 5
    old = AppendEntriesRequest(
        src=1,
        dst=2,
        term=1,
        prev_log_index=0,
        prev_log_term=0,
        entries=(follower.log.entry(1),),
        leader_commit=0,
    )
    effects = h.deliver(old)
    assert follower.log.last_index == 5
    assert not any(isinstance(e, FlushLog) for e in effects)  # nothing changed, nothing to flush


@pytest.mark.parametrize("broken", [False, True], ids=["raft", "figure8-bug"])
def test_entries_of_older_terms_commit_only_through_a_current_term_entry(broken):
    """Raft 5.4.2: a leader never commits an older-term entry by counting replicas.
    (The broken variant does, and this test notices.)"""
    config = RaftConfig(
        election_timeout_ms=100, heartbeat_interval_ms=20, max_entries_per_request=1
    )
    factory = PreviousTermCommitNode if broken else RaftNode
    h = Harness(3, config=config, node_factory=factory)
    h.hard[1] = HardState(2, 1)
    h.start(1, MemoryRaftLog([entry(1, b"a=1"), entry(2, b"b=2")]))
    for i in (2, 3):
        h.hard[i] = HardState(2, 1)
        h.start(i, MemoryRaftLog([entry(1, b"a=1")]))
    leader = h.nodes[1]
    h.timeout(1)
    while not leader.is_leader:
        h.deliver(h.inflight.pop(0))
    # hand-deliver until both followers acknowledged index 2 (the term-2 entry) but not 3
    while not all(leader.state.progress[p].match_index >= 2 for p in (2, 3)):
        message = h.inflight.pop(0)
        h.deliver(message)
    assert leader.is_leader and leader.term == 3
    assert leader.state.progress[2].match_index == 2 and leader.log.term_at(2) == 2
    if broken:
        assert leader.commit_index == 2  # the bug: committed by counting an old-term entry
        return
    assert leader.commit_index == 0, "index 2 is on every node but is not of term 3"
    h.deliver_all()  # the term-3 no-op gets replicated: everything up to it commits
    assert leader.commit_index == 3
    assert h.applied[1] == [b"a=1", b"b=2"]


def test_leader_backs_off_to_a_lagging_follower():
    h = Harness(3)
    h.elect(1)
    h.blocked.add(3)
    for i in range(10):
        h.propose(1, f"k{i}=v".encode())
    h.deliver_all()
    h.blocked.clear()
    for _ in range(3):
        h.heartbeat()
    assert h.nodes[3].log.last_index == h.nodes[1].log.last_index == 11
    assert h.applied[3] == h.applied[1]


def snapshot_config():
    return RaftConfig(election_timeout_ms=100, heartbeat_interval_ms=20, snapshot_threshold=4)


def test_log_is_compacted_by_snapshots():
    h = Harness(3, config=snapshot_config())
    h.elect(1)
    for i in range(9):
        h.propose(1, f"k{i}=v{i}".encode())
        h.deliver_all()
    h.heartbeat()
    assert any(isinstance(e, TakeSnapshot) for e in h.effects[1])
    for i in (1, 2, 3):
        log = h.nodes[i].log
        assert log.snapshot_index >= 4
        assert log.last_index - log.snapshot_index < 4 + 1
    assert h.machines[1].kv[b"k8"] == b"v8"


def test_lagging_follower_gets_the_snapshot_then_the_tail():
    h = Harness(3, config=snapshot_config())
    h.elect(1)
    h.blocked.add(3)
    for i in range(12):
        h.propose(1, f"k{i}=v{i}".encode())
        h.deliver_all()
    assert h.nodes[1].log.snapshot_index > h.nodes[3].log.last_index
    h.blocked.clear()
    h.effects[3].clear()
    for _ in range(3):
        h.heartbeat()
    assert any(isinstance(e, RestoreSnapshot) for e in h.effects[3])
    assert h.machines[3].digest == h.machines[1].digest
    assert h.machines[3].kv == h.machines[1].kv
    assert h.nodes[3].commit_index == h.nodes[1].commit_index


def test_restart_restores_the_state_machine_from_the_snapshot():
    h = Harness(3, config=snapshot_config())
    h.elect(1)
    for i in range(9):
        h.propose(1, f"k{i}=v{i}".encode())
        h.deliver_all()
    h.heartbeat()
    digest = h.machines[2].digest
    node = h.crash_and_restart(2)
    assert isinstance(h.effects[2][-1], RestoreSnapshot)
    assert node.commit_index == node.log.snapshot_index > 0
    h.heartbeat()
    h.heartbeat()
    assert h.machines[2].digest == digest


def test_follower_installs_snapshot_keeping_a_matching_suffix():
    h = Harness(3)
    log = MemoryRaftLog([entry(1, b"a=1"), entry(1, b"b=2"), entry(1, b"c=3")])
    h.hard[2] = HardState(1, None)
    node = h.start(2, log)
    snap = Snapshot(2, 1, b"")
    h.deliver(InstallSnapshotRequest(src=1, dst=2, term=1, snapshot=snap, leader_commit=2))
    assert node.log.snapshot_index == 2 and node.log.last_index == 3
    assert node.commit_index == 2


@pytest.mark.parametrize(
    "message",
    [
        VoteRequest(src=2, dst=3, term=1, last_log_index=0, last_log_term=0),  # not for node 1
        VoteRequest(src=7, dst=1, term=1, last_log_index=0, last_log_term=0),  # unknown voter
        VoteRequest(src=1, dst=1, term=1, last_log_index=0, last_log_term=0),  # from itself
        VoteRequest(src=2, dst=1, term=-1, last_log_index=0, last_log_term=0),
        AppendEntriesRequest(
            src=2, dst=1, term=1, prev_log_index=-3, prev_log_term=0, entries=(), leader_commit=0
        ),
        AppendEntriesRequest(
            src=2,
            dst=1,
            term=1,
            prev_log_index=0,
            prev_log_term=0,
            entries=(LogEntry(5, b"future"),),
            leader_commit=0,
        ),
        AppendEntriesResponse(src=2, dst=1, term=1, success=True, match_index=-1),
        "not a message",
    ],
)
def test_invalid_messages_raise_and_change_nothing(message):
    h = Harness(3, config=CONFIG)
    node = h.nodes[1]
    before = (node.state, node.term, node.voted_for, node.log.last_index)
    with pytest.raises(InvalidMessageError):
        node.handle(message, h.now)
    assert (node.state, node.term, node.voted_for, node.log.last_index) == before


def test_rejections_back_off_once_and_stale_ones_are_ignored():
    h = Harness(3)
    leader = h.elect(1)
    for i in range(6):
        h.propose(1, f"k{i}=v".encode())
    h.deliver_all()
    progress = leader.state.progress[2]
    assert progress.match_index == 7
    progress.next_index = 12  # as if optimistic sends had gone out and were lost
    h.propose(1, b"more=1")
    h.inflight.clear()
    # a current rejection of prev 11 whose conflict hint is below the match: retry after match
    current = AppendEntriesResponse(
        src=2, dst=1, term=1, success=False, hint_index=3, rejected_index=11
    )
    effects = h.deliver(current)
    (retry,) = [e.message for e in effects if isinstance(e, Send)]
    assert retry.prev_log_index == 7 and progress.next_index > 8
    # a stale rejection (of a prev the follower has since acknowledged): no resend storm
    stale = AppendEntriesResponse(
        src=2, dst=1, term=1, success=False, hint_index=3, rejected_index=5
    )
    assert [e for e in h.deliver(stale) if isinstance(e, Send)] == []
    h.deliver_all()
    h.heartbeat()
    assert h.nodes[2].log.last_index == leader.log.last_index
