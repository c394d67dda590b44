"""Log replication and snapshots: the leader's and the follower's side of AppendEntries and
InstallSnapshot, as a mixin of ``RaftNode`` (node.py holds inputs, effects and elections).

Leader: one ``Progress`` per follower; ``next_index`` advances optimistically when entries are
sent (pipelining) and backs off to the follower's hint on a rejection; ``match_index`` only
moves on acknowledgements. Heartbeats are AppendEntries with whatever the follower still lacks.
A follower whose next entry was compacted away gets the snapshot, whole. The commit index is
the highest index on a majority whose entry is of the current term (Raft 5.4.2).

Follower: accepts entries whose predecessor matches, truncates only a conflicting suffix (never
on a duplicate or stale request, never below the commit index: that raises RaftSafetyError),
and acknowledges the last index the request proved matching.
"""

from __future__ import annotations

from .errors import RaftSafetyError
from .messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
)
from .state import Follower, Leader, Progress


class Replication:
    """Mixin: every method runs on a ``RaftNode`` (``self`` has its fields)."""

    # -- replication, leader side
    def _send_append(self, peer: int) -> None:
        st = self.state
        assert isinstance(st, Leader)
        pr = st.progress[peer]
        log = self.log
        pr.next_index = min(pr.next_index, log.last_index + 1)
        if pr.next_index <= log.snapshot_index:
            snap = log.snapshot()
            assert snap is not None
            self._sends.append(
                InstallSnapshotRequest(
                    src=self.node_id,
                    dst=peer,
                    term=st.term,
                    snapshot=snap,
                    leader_commit=self.commit_index,
                )
            )
            pr.next_index = snap.index + 1
            return
        prev = pr.next_index - 1
        stop = min(log.last_index + 1, pr.next_index + self.config.max_entries_per_request)
        entries = tuple(log.entries(pr.next_index, stop))
        prev_term = log.term_at(prev)
        assert prev_term is not None
        self._sends.append(
            AppendEntriesRequest(
                src=self.node_id,
                dst=peer,
                term=st.term,
                prev_log_index=prev,
                prev_log_term=prev_term,
                entries=entries,
                leader_commit=self.commit_index,
            )
        )
        pr.next_index += len(entries)

    def _maybe_commit(self) -> None:
        """Commit the highest index stored on a majority, if it is of the current term."""
        st = self.state
        assert isinstance(st, Leader)
        matches = sorted(
            [self.log.last_index, *(pr.match_index for pr in st.progress.values())],
            reverse=True,
        )
        index = matches[self.majority - 1]
        if index > self.commit_index and self.log.term_at(index) == st.term:
            self._commit_to(index)

    def _leader_progress(self, m: AppendEntriesResponse | InstallSnapshotResponse, now_ms: int):
        """The sender's Progress if ``m`` is a response for this leader's term, else None."""
        st = self.state
        if m.term > st.term:
            self._step_down(m.term, now_ms)
            return None
        if not isinstance(st, Leader) or m.term < st.term:
            return None  # stale
        pr = st.progress[m.src]
        pr.last_ack_ms = now_ms
        return pr

    def _acknowledged(self, peer: int, pr: Progress, match_index: int) -> None:
        if match_index > pr.match_index and match_index <= self.log.last_index:
            pr.match_index = match_index
            pr.next_index = max(pr.next_index, match_index + 1)
            self._maybe_commit()
            if pr.next_index <= self.log.last_index:
                self._send_append(peer)

    def _on_append_response(self, m: AppendEntriesResponse, now_ms: int) -> None:
        pr = self._leader_progress(m, now_ms)
        if pr is None:
            return
        if m.success:
            self._acknowledged(m.src, pr, m.match_index)
        elif m.rejected_index > pr.match_index:  # else stale: it predates an acknowledgement
            # Back off, but resend only if that changed something: a stale or duplicated
            # rejection must not start a request/response loop at network speed.
            next_index = max(pr.match_index + 1, min(pr.next_index - 1, m.hint_index))
            if next_index < pr.next_index:
                pr.next_index = next_index
                self._send_append(m.src)

    def _on_snapshot_response(self, m: InstallSnapshotResponse, now_ms: int) -> None:
        pr = self._leader_progress(m, now_ms)
        if pr is not None:
            self._acknowledged(m.src, pr, m.match_index)

    # -- replication, follower side
    def _follow(self, term: int, leader_id: int, now_ms: int) -> None:
        st = self.state
        if isinstance(st, Follower) and st.term == term:
            if st.leader_id != leader_id:
                raise RaftSafetyError(f"two leaders in term {term}: {st.leader_id}, {leader_id}")
            st.last_contact_ms = now_ms
            st.election_deadline_ms = self._follower_deadline(now_ms)
            return
        voted = st.voted_for if st.term == term else None
        self._become(Follower(term, leader_id, voted, self._follower_deadline(now_ms), now_ms))

    def _reply_append(self, m: AppendEntriesRequest, success: bool, index: int) -> None:
        self._sends.append(
            AppendEntriesResponse(
                src=self.node_id,
                dst=m.src,
                term=self.state.term,
                success=success,
                match_index=index if success else 0,
                hint_index=0 if success else index,
                rejected_index=0 if success else m.prev_log_index,
            )
        )

    def _on_append(self, m: AppendEntriesRequest, now_ms: int) -> None:
        log = self.log
        if m.term < self.state.term:
            self._reply_append(m, False, log.last_index + 1)
            return
        self._follow(m.term, m.src, now_ms)
        prev, entries = m.prev_log_index, m.entries
        base = log.snapshot_index
        if prev < base:  # the start is inside our snapshot: committed, hence identical
            skip = min(base - prev, len(entries))
            prev, entries = prev + skip, entries[skip:]
            if prev < base:
                self._reply_append(m, True, prev)
                return
        elif prev > log.last_index:
            self._reply_append(m, False, log.last_index + 1)
            return
        elif log.term_at(prev) != m.prev_log_term:
            if prev <= self.commit_index:
                raise RaftSafetyError(f"leader {m.src} disagrees on committed entry {prev}")
            conflict = log.term_at(prev)
            hint = prev
            while hint - 1 > max(base, self.commit_index) and log.term_at(hint - 1) == conflict:
                hint -= 1
            self._reply_append(m, False, hint)
            return
        for i, entry in enumerate(entries):
            index = prev + 1 + i
            if index <= log.last_index:
                if log.term_at(index) == entry.term:
                    continue  # already have it (duplicate or overlapping request)
                if index <= self.commit_index:
                    raise RaftSafetyError(f"leader {m.src} would overwrite committed {index}")
                log.truncate_from(index)
            log.append(entries[i:])
            self._log_dirty = True
            break
        match = prev + len(entries)
        commit = min(m.leader_commit, match)
        if commit > self.commit_index:
            self._commit_to(commit)
        self._reply_append(m, True, match)

    def _on_install_snapshot(self, m: InstallSnapshotRequest, now_ms: int) -> None:
        if m.term < self.state.term:
            self._sends.append(
                InstallSnapshotResponse(
                    src=self.node_id, dst=m.src, term=self.state.term, match_index=0
                )
            )
            return
        self._follow(m.term, m.src, now_ms)
        snap = m.snapshot
        log = self.log
        if snap.index > self.commit_index:
            if snap.index > log.snapshot_index and log.term_at(snap.index) == snap.term:
                log.compact(snap)  # keep the entries after it (Raft section 7)
            else:
                log.reset(snap)
            self._log_dirty = True
            self.commit_index = snap.index
            self.applied_index = snap.index
            self._restore = snap
        self._sends.append(
            InstallSnapshotResponse(
                src=self.node_id, dst=m.src, term=self.state.term, match_index=snap.index
            )
        )
