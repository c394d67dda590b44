"""Raft invariants, checked by the simulator after every step (RaftEventSimulationTest-style).

The checker keeps a *reference* committed log: the first time any node is seen committing
index i, entry i becomes part of the reference, together with the state-machine digest after
it and the term in which the commit was first observed. Then, for every observation:

- election safety: at most one leader per term (ever, across restarts);
- committed entries are never lost or changed: every entry a node commits equals the reference
  entry at that index (so no two nodes ever commit different entries at one index, and a node
  that crashed and recovered never commits something different);
- committed entries stay put: each observation also re-reads one older committed entry of
  the node (rotating), so a log rewritten in place below its commit index is caught;
- commit index monotonic: it never decreases within one incarnation of a node (a restarted
  node starts again from its snapshot and must re-commit the same entries);
- state machines apply the same sequence: a node's machine digest equals the reference digest
  at its applied index (this also checks every snapshot it restored);
- leader completeness: a leader of term T holds every entry first seen committed in a term < T
  (Raft's Leader Completeness; "a leader has every committed entry");
- durable majority: when an entry is first seen committed, a majority of nodes would keep it
  through a crash (Kafka's MajorityReachedHighWatermark), if ``durable_copies`` is given.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from rillet.coordinator.raft import LogEntry, RaftNode

from .machines import GENESIS, chain


class InvariantViolation(AssertionError):
    """A Raft safety property broke."""


class RaftChecker:
    def __init__(self, durable_copies: Callable[[int, int], tuple[int, int]] | None = None) -> None:
        # durable_copies(index, term) -> (nodes that would keep that entry through a crash, voters)
        self.durable_copies = durable_copies
        self.leader_of_term: dict[int, int] = {}
        self.ref: list[LogEntry] = []  # entry i is ref[i - 1]
        self.digests: list[bytes] = [GENESIS]  # digest after applying entries 1..i
        self.commit_terms: list[int] = []  # prefix maximum of the first-observed commit term
        self._seen_commit: dict[int, int] = {}
        self._leader_checked: dict[tuple[int, int], int] = {}
        self._probe = 0

    @property
    def commit_index(self) -> int:
        """Highest index known committed anywhere."""
        return len(self.ref)

    def restarted(self, node_id: int, node: RaftNode) -> None:
        """A node came back from its durable state: a new incarnation starts."""
        self._seen_commit[node_id] = node.commit_index
        if node.commit_index > len(self.ref):
            raise InvariantViolation(
                f"node {node_id} restarted with a snapshot at {node.commit_index} beyond "
                f"anything committed ({len(self.ref)})"
            )

    def observe(self, node_id: int, node: RaftNode, digest: bytes, applied: int) -> None:
        """Check one live node after a step that touched it."""
        term = node.term
        if node.is_leader:
            other = self.leader_of_term.setdefault(term, node_id)
            if other != node_id:
                raise InvariantViolation(f"two leaders in term {term}: {other} and {node_id}")
        log = node.log
        commit = node.commit_index
        seen = self._seen_commit.get(node_id, 0)
        if commit < seen:
            raise InvariantViolation(f"node {node_id} commit index went back {seen} -> {commit}")
        for index in range(max(seen, log.snapshot_index) + 1, commit + 1):
            self._check_committed(node_id, index, log.entry(index), term)
        self._seen_commit[node_id] = commit
        if commit > log.snapshot_index:  # spot-check that older committed entries stay put
            self._probe += 1
            index = log.snapshot_index + 1 + self._probe % (commit - log.snapshot_index)
            if log.entry(index) != self.ref[index - 1]:
                raise InvariantViolation(f"node {node_id} changed committed entry {index}")
        if applied > commit or applied > len(self.ref):
            raise InvariantViolation(f"node {node_id} applied {applied} beyond commit {commit}")
        if digest != self.digests[applied]:
            raise InvariantViolation(
                f"node {node_id} state machine diverged at applied index {applied}"
            )
        if node.is_leader:
            self._check_leader(node_id, node)

    def _check_committed(self, node_id: int, index: int, entry: LogEntry, term: int) -> None:
        if index <= len(self.ref):
            if self.ref[index - 1] != entry:
                raise InvariantViolation(
                    f"node {node_id} committed {entry} at {index}, but "
                    f"{self.ref[index - 1]} was committed there before"
                )
            return
        if index != len(self.ref) + 1:
            raise InvariantViolation(f"node {node_id} committed {index} past a gap")
        if self.durable_copies is not None:
            copies, voters = self.durable_copies(index, entry.term)
            if copies <= voters // 2:
                raise InvariantViolation(
                    f"entry {index} committed (seen on node {node_id}) but durable on only "
                    f"{copies} of {voters} nodes"
                )
        self.ref.append(entry)
        last = self.digests[-1]
        self.digests.append(last if entry.control else chain(last, entry.payload))
        self.commit_terms.append(max(term, self.commit_terms[-1] if self.commit_terms else 0))

    def _check_leader(self, node_id: int, node: RaftNode) -> None:
        key = (node_id, node.term)
        bound = bisect_left(self.commit_terms, node.term)  # entries committed in older terms
        log = node.log
        for index in range(self._leader_checked.get(key, 0) + 1, bound + 1):
            if index <= log.snapshot_index:
                continue  # inside its snapshot, whose digest was checked when applied
            if index > log.last_index or log.entry(index) != self.ref[index - 1]:
                raise InvariantViolation(
                    f"leader {node_id} of term {node.term} lacks committed entry {index}"
                )
        self._leader_checked[key] = max(bound, self._leader_checked.get(key, 0))
