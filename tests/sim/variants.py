"""Deliberately broken Raft nodes and replication parts, to prove the simulators' checkers
catch real bugs (the replication simulator's other variants are switches in its code)."""

from __future__ import annotations

from rillet.coordinator.raft import PersistHardState, RaftNode
from rillet.coordinator.raft.effects import FlushLog, Send
from rillet.logstore import batch as B
from rillet.logstore.producer_state import SequenceCheck


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


class NoDedupProducerState:
    """Producer state for ``append_validated`` that never answers a retry as a duplicate:
    the leader appends it again (the replication simulator's "no-dedup" variant)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def check_batch(self, header) -> SequenceCheck:
        check = self.inner.check_batch(header)
        return SequenceCheck() if check.duplicate is not None else check

    def update(self, *args) -> None:
        self.inner.update(*args)

    def __getattr__(self, name: str):  # everything else as the real state does it
        return getattr(self.inner, name)


def reframed(data: bytes) -> bytes:
    """Batches with their digests recomputed, as a leader that re-encodes what it serves
    without checking it first would send them (the "no-digest-check" variant): rot in its
    log then passes the follower's and the consumer's digest checks."""
    out = bytearray(data)
    pos = 0
    while pos < len(out):
        end = pos + B.read_header(out, pos).length
        view = memoryview(out)[pos:end]
        digest = B._digest(view)
        view.release()
        out[pos + B.DIGEST_START : pos + B.DIGEST_END] = digest
        pos = end
    return bytes(out)


VARIANTS = {
    "no-log-check": NoLogCheckNode,
    "amnesiac": AmnesiacNode,
    "send-before-flush": SendBeforeFlushNode,
    "previous-term-commit": PreviousTermCommitNode,
}
__all__ = ["FlushLog", "VARIANTS"]
