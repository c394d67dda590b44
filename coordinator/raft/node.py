"""``RaftNode``: one Raft voter as a pure state machine (messages and ticks in, effects out).

The owner (the controller actor, or the simulator) drives it with three inputs and executes
the returned effects in order (see ``effects``)::

    node = RaftNode(1, voters={1, 2, 3}, log=log, hard_state=saved, rng=random.Random(seed),
                    now_ms=now)
    run(node.start())                       # RestoreSnapshot if the log begins with one
    run(node.tick(now))                     # at or after node.next_tick_ms (any ticker works)
    run(node.handle(message, now))          # every RaftMessage addressed to this node
    index, effects = node.propose(payload, now); run(effects)   # leader only

Protocol (docs/raft.md): Raft with pre-vote and check-quorum, push replication
(AppendEntries), snapshots sent whole (InstallSnapshot). A new leader appends a control no-op
entry so entries of earlier terms commit through it (Raft 5.4.2). Owned by one thread.

Disruption guards (KRaft's check-quorum / leader lease, Raft thesis 4.2.3): a node that has a
live leader (it leads, or heard its leader within one election timeout) neither grants nor
adopts the term of a VoteRequest (pre-vote or not) or a higher-term TimeoutNow, so one voter
cannot depose a healthy leader by asking; a leader that hears from no majority within an
election timeout resigns. Messages from a node that is not another voter, and messages whose
term is ``TERM_LIMIT`` or more (a term that could not be incremented again within int64), are
refused with ``InvalidMessageError`` and change nothing; a node never starts an election to a
term at or past the limit, so it never persists a term it could not leave.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from rillet.frozen import frozen

from .config import RaftConfig
from .effects import (
    ApplyCommitted,
    Effect,
    FlushLog,
    PersistHardState,
    RestoreSnapshot,
    Send,
    TakeSnapshot,
)
from .errors import InvalidMessageError, NotLeaderError
from .log import LogEntry, RaftLog, Snapshot
from .messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    RaftMessage,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from .replication import Replication
from .state import (
    Candidate,
    Follower,
    Leader,
    Progress,
    Prospective,
    Resigned,
    RoleState,
    Unattached,
    Voted,
    check_transition,
)

DEFAULT_CONFIG = RaftConfig()
# Terms travel as int64. A node at term T may need T + 1 (its next election); a term of
# TERM_LIMIT or more is refused, so every term a node holds can still be left.
TERM_LIMIT = (1 << 63) - 2
# fields that hold a log index or term, per message type (validated >= 0)
_POSITION_FIELDS = {
    VoteRequest: ("last_log_index", "last_log_term"),
    VoteResponse: (),
    AppendEntriesRequest: ("prev_log_index", "prev_log_term", "leader_commit"),
    AppendEntriesResponse: ("match_index", "hint_index", "rejected_index"),
    InstallSnapshotRequest: ("leader_commit",),
    InstallSnapshotResponse: ("match_index",),
    TimeoutNow: (),
}


@frozen
class HardState:
    """What a voter must find again after a restart (the last ``PersistHardState``)."""

    term: int = 0
    voted_for: int | None = None


NO_HARD_STATE = HardState()  # a voter's first start


class Rng(Protocol):
    """The randomness a node needs (``random.Random`` has it); injected, so a simulation
    replays exactly."""

    def randrange(self, start: int, stop: int) -> int: ...


class RaftNode(Replication):
    """One voter. Not thread-safe; never reads a clock or global randomness."""

    def __init__(
        self,
        node_id: int,
        voters: Collection[int],
        log: RaftLog,
        *,
        rng: Rng,
        now_ms: int,
        hard_state: HardState = NO_HARD_STATE,
        config: RaftConfig = DEFAULT_CONFIG,
    ) -> None:
        if node_id not in voters:
            raise ValueError(f"node {node_id} is not one of the voters {sorted(voters)}")
        self.node_id = node_id
        self.voters = frozenset(voters)
        self.others = tuple(sorted(self.voters - {node_id}))
        self.majority = len(self.voters) // 2 + 1
        self.log = log
        self.config = config
        self._rng = rng
        self.commit_index = log.snapshot_index  # not persisted: relearned from the leader
        self.applied_index = log.snapshot_index
        term, voted = hard_state.term, hard_state.voted_for
        deadline = self._deadline(now_ms)
        self.state: RoleState = (
            Voted(term, voted, deadline) if voted is not None else Unattached(term, deadline)
        )
        self._persisted = (term, voted)
        self._begin()

    # -- read-only view
    @property
    def term(self) -> int:
        return self.state.term

    @property
    def role(self) -> str:
        return self.state.role

    @property
    def leader_id(self) -> int | None:
        return self.state.leader_id

    @property
    def voted_for(self) -> int | None:
        return self.state.voted_for

    @property
    def is_leader(self) -> bool:
        return isinstance(self.state, Leader)

    @property
    def hard_state(self) -> HardState:
        return HardState(self.state.term, self.state.voted_for)

    @property
    def next_tick_ms(self) -> int:
        """The earliest time at which ``tick`` has something to do."""
        st = self.state
        if isinstance(st, Leader):
            return min(st.heartbeat_due_ms, st.check_quorum_due_ms)
        return st.election_deadline_ms

    def __repr__(self) -> str:
        return (
            f"RaftNode(id={self.node_id}, {self.role}, term={self.term}, "
            f"last={self.log.last_index}, commit={self.commit_index})"
        )

    # -- inputs
    def start(self) -> list[Effect]:
        """Effects to run once after construction (restore the state machine's snapshot)."""
        snap = self.log.snapshot()
        return [RestoreSnapshot(snap)] if snap is not None else []

    def tick(self, now_ms: int) -> list[Effect]:
        """Advance timers: heartbeats and check-quorum on a leader, elections elsewhere."""
        self._begin()
        st = self.state
        cfg = self.config
        if isinstance(st, Leader):
            if now_ms >= st.check_quorum_due_ms:
                window = cfg.check_quorum_ms
                st.check_quorum_due_ms = now_ms + window
                fresh = 1 + sum(
                    1 for pr in st.progress.values() if now_ms - pr.last_ack_ms < window
                )
                if fresh < self.majority:
                    self._become(Resigned(st.term, self.node_id, self._deadline(now_ms)))
                    return self._finish()
            if now_ms >= st.heartbeat_due_ms:
                st.heartbeat_due_ms = now_ms + cfg.heartbeat_interval_ms
                for peer in self.others:
                    self._send_append(peer)
        elif now_ms >= st.election_deadline_ms:
            self._start_pre_vote(now_ms)
        return self._finish()

    def handle(self, message: RaftMessage, now_ms: int) -> list[Effect]:
        """Process one message addressed to this node. ``InvalidMessageError`` leaves the
        node unchanged."""
        handler = self._HANDLERS.get(type(message))
        if handler is None:
            raise InvalidMessageError(message, "not a raft message")
        self._validate(message)
        self._begin()
        handler(self, message, now_ms)
        return self._finish()

    def propose(self, payload: bytes, now_ms: int) -> tuple[int, list[Effect]]:
        """Append ``payload`` as a new entry (leader only) and start replicating it.

        Returns the entry's index; it is committed when an ``ApplyCommitted`` covers that
        index with an entry of this term (another term there means it was lost: retry)."""
        st = self.state
        if not isinstance(st, Leader):
            raise NotLeaderError(self.node_id, st.term, st.leader_id)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        self._begin()
        self._append_local(LogEntry(st.term, bytes(payload)))
        index = self.log.last_index
        self._maybe_commit()
        for peer in self.others:
            if st.progress[peer].next_index == index:  # in sync: pipeline right away
                self._send_append(peer)
        return index, self._finish()

    def snapshot_taken(self, index: int, data: bytes) -> list[Effect]:
        """The owner's answer to ``TakeSnapshot(index)``: compact the log up to ``index``."""
        if index <= self.log.snapshot_index:
            return []  # an older request, already superseded
        if index > self.applied_index:
            raise ValueError(f"snapshot at {index} beyond applied index {self.applied_index}")
        self._begin()
        term = self.log.term_at(index)
        assert term is not None
        self.log.compact(Snapshot(index, term, bytes(data)))
        self._log_dirty = True
        return self._finish()

    def resign(self, now_ms: int) -> list[Effect]:
        """Step down as leader (graceful shutdown, rolling restart). The most up-to-date
        follower, if it has every entry, is told to start an election at once; the others
        follow when they hear from the new leader. A no-op on a non-leader."""
        st = self.state
        if not isinstance(st, Leader):
            return []
        self._begin()
        peer = max(self.others, key=lambda p: st.progress[p].match_index, default=None)
        self._become(Resigned(st.term, self.node_id, self._deadline(now_ms)))
        if peer is not None and st.progress[peer].match_index == self.log.last_index:
            self._sends.append(TimeoutNow(src=self.node_id, dst=peer, term=st.term))
        return self._finish()

    def read_committed(
        self, start_index: int, max_entries: int
    ) -> tuple[Snapshot | None, int, list[LogEntry]]:
        """Committed entries from ``start_index`` on, for readers of the metadata log that
        are not voters (brokers). Returns (snapshot, first_index, entries): when
        ``start_index`` is already compacted, the snapshot to load first and the entries that
        follow it; otherwise None. Pure read: no effects."""
        start = max(start_index, 1)
        snap = None
        if start <= self.log.snapshot_index:
            snap = self.log.snapshot()
            start = self.log.snapshot_index + 1
        stop = min(self.commit_index + 1, start + max(max_entries, 0))
        return snap, start, self.log.entries(start, stop) if stop > start else []

    # -- effect accumulation: durability first, then messages, then the state machine
    def _begin(self) -> None:
        self._sends: list[RaftMessage] = []
        self._applies: list[ApplyCommitted] = []
        self._restore: Snapshot | None = None
        self._log_dirty = False

    def _finish(self) -> list[Effect]:
        effects: list[Effect] = []
        hard = (self.state.term, self.state.voted_for)
        if hard != self._persisted:
            effects.append(PersistHardState(*hard))
            self._persisted = hard
        if self._log_dirty:
            effects.append(FlushLog(self.log.last_index))
        if self._restore is not None:
            effects.append(RestoreSnapshot(self._restore))
        effects.extend(Send(m) for m in self._sends)
        if self._applies:
            effects.extend(self._applies)
            threshold = self.config.snapshot_threshold
            if threshold and self.applied_index - self.log.snapshot_index >= threshold:
                effects.append(TakeSnapshot(self.applied_index))
        self._begin()
        return effects

    # -- helpers
    def _deadline(self, now_ms: int) -> int:
        timeout = self.config.election_timeout_ms
        return now_ms + self._rng.randrange(timeout, 2 * timeout)

    def _follower_deadline(self, now_ms: int) -> int:
        """When a follower that just heard from its leader gives up on it: a random election
        timeout, or with ``fetch_timeout_ms`` that fixed time (KRaft's fetch timer)."""
        if self.config.fetch_timeout_ms is None:
            return self._deadline(now_ms)
        return now_ms + self.config.fetch_timeout_ms

    def _become(self, new: RoleState) -> None:
        check_transition(self.state, new)
        self.state = new

    def _step_down(self, term: int, now_ms: int) -> None:
        self._become(Unattached(term, self._deadline(now_ms)))

    def _log_ok(self, last_log_term: int, last_log_index: int) -> bool:
        return (last_log_term, last_log_index) >= (self.log.last_term, self.log.last_index)

    def _append_local(self, entry: LogEntry) -> None:
        self.log.append([entry])
        self._log_dirty = True

    def _commit_to(self, index: int) -> None:
        self.commit_index = index
        if index > self.applied_index:
            first = self.applied_index + 1
            self._applies.append(ApplyCommitted(first, tuple(self.log.entries(first, index + 1))))
            self.applied_index = index

    def _validate(self, m: RaftMessage) -> None:
        if m.dst != self.node_id:
            raise InvalidMessageError(m, f"addressed to {m.dst}, this is {self.node_id}")
        if m.src not in self.voters or m.src == self.node_id:
            raise InvalidMessageError(m, f"sender {m.src} is not another voter")
        if not isinstance(m.term, int) or m.term < 0:
            raise InvalidMessageError(m, "negative term")
        if m.term >= TERM_LIMIT:
            raise InvalidMessageError(m, f"term {m.term} is at or past the limit {TERM_LIMIT}")
        for name in _POSITION_FIELDS[type(m)]:
            value = getattr(m, name)
            if not isinstance(value, int) or value < 0:
                raise InvalidMessageError(m, f"bad {name}")
        if isinstance(m, AppendEntriesRequest):
            if not isinstance(m.entries, tuple | list):
                raise InvalidMessageError(m, "entries must be a sequence")
            if any(not isinstance(e, LogEntry) or e.term > m.term for e in m.entries):
                raise InvalidMessageError(m, "entry from a future term")
        if isinstance(m, InstallSnapshotRequest) and (
            not isinstance(m.snapshot, Snapshot) or m.snapshot.index < 1 or m.snapshot.term > m.term
        ):
            raise InvalidMessageError(m, "bad snapshot position")

    # -- elections
    def _start_pre_vote(self, now_ms: int) -> None:
        st = self.state
        if st.term + 1 >= TERM_LIMIT:  # unreachable by counting; never enter such a term
            st.election_deadline_ms = self._deadline(now_ms)
            return
        voted = self.node_id if isinstance(st, Candidate | Resigned) else st.voted_for
        pro = Prospective(st.term, voted, self._deadline(now_ms), {self.node_id})
        self._become(pro)
        if len(pro.granted) >= self.majority:
            self._start_election(now_ms)
            return
        for peer in self.others:
            self._sends.append(
                VoteRequest(
                    src=self.node_id,
                    dst=peer,
                    term=pro.term + 1,
                    last_log_index=self.log.last_index,
                    last_log_term=self.log.last_term,
                    pre_vote=True,
                )
            )

    def _start_election(self, now_ms: int) -> None:
        cand = Candidate(self.state.term + 1, self.node_id, self._deadline(now_ms), {self.node_id})
        self._become(cand)
        if len(cand.granted) >= self.majority:
            self._become_leader(now_ms)
            return
        for peer in self.others:
            self._sends.append(
                VoteRequest(
                    src=self.node_id,
                    dst=peer,
                    term=cand.term,
                    last_log_index=self.log.last_index,
                    last_log_term=self.log.last_term,
                )
            )

    def _become_leader(self, now_ms: int) -> None:
        term = self.state.term
        cfg = self.config
        next_index = self.log.last_index + 1
        leader = Leader(
            term,
            self.node_id,
            {p: Progress(next_index, 0, now_ms) for p in self.others},
            heartbeat_due_ms=now_ms + cfg.heartbeat_interval_ms,
            check_quorum_due_ms=now_ms + cfg.check_quorum_ms,
        )
        self._become(leader)
        self._append_local(LogEntry(term, b"", control=True))
        self._maybe_commit()
        for peer in self.others:
            self._send_append(peer)

    def _lease_active(self, now_ms: int) -> bool:
        """True while this node has a live leader (itself, or one heard from recently)."""
        st = self.state
        if isinstance(st, Leader):
            return True
        return (
            isinstance(st, Follower)
            and now_ms - st.last_contact_ms < self.config.lease_ms
        )

    def _on_vote_request(self, m: VoteRequest, now_ms: int) -> None:
        st = self.state
        log_ok = self._log_ok(m.last_log_term, m.last_log_index)
        if m.pre_vote:  # answer only; never change term, vote or timer
            could_vote = m.term > st.term or (
                m.term == st.term and st.voted_for in (None, m.src) and st.leader_id is None
            )
            granted = could_vote and log_ok and not self._lease_active(now_ms)
            self._reply_vote(m, m.term if granted else st.term, granted)
            return
        if m.term < st.term or (m.term > st.term and self._lease_active(now_ms)):
            # a live leader: refuse without adopting the term (check-quorum / leader lease)
            self._reply_vote(m, st.term, False)
            return
        if m.term > st.term:
            self._step_down(m.term, now_ms)
            st = self.state
        can_vote = st.voted_for == m.src or (st.voted_for is None and st.leader_id is None)
        granted = can_vote and log_ok
        if granted:
            if st.voted_for is None:
                self._become(Voted(st.term, m.src, self._deadline(now_ms)))
            else:
                st.election_deadline_ms = self._deadline(now_ms)
        self._reply_vote(m, st.term, granted)

    def _reply_vote(self, m: VoteRequest, term: int, granted: bool) -> None:
        self._sends.append(
            VoteResponse(
                src=self.node_id, dst=m.src, term=term, granted=granted, pre_vote=m.pre_vote
            )
        )

    def _on_vote_response(self, m: VoteResponse, now_ms: int) -> None:
        st = self.state
        if m.pre_vote:
            if m.granted:  # echoes term + 1: not a sign of a newer term
                if isinstance(st, Prospective) and m.term == st.term + 1:
                    st.granted.add(m.src)
                    if len(st.granted) >= self.majority:
                        self._start_election(now_ms)
            elif m.term > st.term:
                self._step_down(m.term, now_ms)
            return
        if m.term > st.term:
            self._step_down(m.term, now_ms)
        elif isinstance(st, Candidate) and m.term == st.term and m.granted:
            st.granted.add(m.src)
            if len(st.granted) >= self.majority:
                self._become_leader(now_ms)

    def _on_timeout_now(self, m: TimeoutNow, now_ms: int) -> None:
        st = self.state
        if m.term > st.term:
            if not self._lease_active(now_ms):  # else: ignored, as a VoteRequest would be
                self._step_down(m.term, now_ms)
        elif m.term == st.term and st.leader_id == m.src:
            self._start_pre_vote(now_ms)  # prospective for an instant: the table allows no
            if isinstance(self.state, Prospective):  # follower -> candidate shortcut
                self._start_election(now_ms)

    _HANDLERS = {
        TimeoutNow: _on_timeout_now,
        VoteRequest: _on_vote_request,
        VoteResponse: _on_vote_response,
        AppendEntriesRequest: Replication._on_append,
        AppendEntriesResponse: Replication._on_append_response,
        InstallSnapshotRequest: Replication._on_install_snapshot,
        InstallSnapshotResponse: Replication._on_snapshot_response,
    }
