"""Deliberately broken Raft nodes, to prove the simulator's checker catches real bugs."""

from __future__ import annotations

from rillet.coordinator.raft import PersistHardState, RaftNode
from rillet.coordinator.raft.effects import FlushLog, Send


class NoLogCheckNode(RaftNode):
    """Grants votes without the 'candidate log at least as up-to-date' check (Raft 5.4.1)."""

    def _log_ok(self, last_log_term: int, last_log_index: int) -> bool:
        return True


class AmnesiacNode(RaftNode):
    """Never persists its term and vote: after a restart it may vote twice in one term."""

    def _finish(self):
        return [e for e in super()._finish() if not isinstance(e, PersistHardState)]


class SendBeforeFlushNode(RaftNode):
    """Replies before its log is durable: a crash can lose entries it acknowledged."""

    def _finish(self):
        effects = super()._finish()
        sends = [e for e in effects if isinstance(e, Send)]
        return sends + [e for e in effects if not isinstance(e, Send)]


class PreviousTermCommitNode(RaftNode):
    """Commits entries of earlier terms by counting replicas (the Raft Figure 8 bug)."""

    def _maybe_commit(self) -> None:
        st = self.state
        matches = sorted(
            [self.log.last_index, *(pr.match_index for pr in st.progress.values())],
            reverse=True,
        )
        index = matches[self.majority - 1]
        if index > self.commit_index:
            self._commit_to(index)


VARIANTS = {
    "no-log-check": NoLogCheckNode,
    "amnesiac": AmnesiacNode,
    "send-before-flush": SendBeforeFlushNode,
    "previous-term-commit": PreviousTermCommitNode,
}
__all__ = ["FlushLog", "VARIANTS"]
