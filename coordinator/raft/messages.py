"""Messages exchanged by Raft voters (classic push replication, see docs/raft.md).

Every message names its sender ``src``, its target ``dst`` and the sender's ``term``. They are
frozen, slotted, keyword-only dataclasses so a transport can encode them field by field; log
entries travel as ``LogEntry`` (term, payload bytes, control flag) and snapshots as ``Snapshot``.

Vocabulary mapping to Kafka's KRaft: ``term`` is the leader epoch, an entry ``index`` is the
metadata-log offset + 1 (index 0 is the empty log), ``commit_index`` is the high watermark.
"""

from __future__ import annotations

from rillet.frozen import frozen

from .log import LogEntry, Snapshot


@frozen(kw_only=True)
class VoteRequest:
    """Ask for a (pre-)vote. For a pre-vote ``term`` is the term the sender *would* use
    (its current term + 1) and no receiver changes its own term or vote because of it."""

    src: int
    dst: int
    term: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False


@frozen(kw_only=True)
class VoteResponse:
    """Answer to a VoteRequest. A granted pre-vote echoes the requested term; a rejection
    carries the responder's current term so a stale requester learns it."""

    src: int
    dst: int
    term: int
    granted: bool
    pre_vote: bool = False


@frozen(kw_only=True)
class AppendEntriesRequest:
    """Leader -> follower: entries following ``prev_log_index`` (empty for a heartbeat)."""

    src: int
    dst: int
    term: int
    prev_log_index: int
    prev_log_term: int
    entries: tuple[LogEntry, ...]
    leader_commit: int


@frozen(kw_only=True)
class AppendEntriesResponse:
    """Follower -> leader. On success ``match_index`` is the last index known to match the
    leader's log. On failure ``rejected_index`` is the request's ``prev_log_index`` (so the
    leader can tell a stale rejection from a current one) and ``hint_index`` is where the
    leader should retry from (the follower's log end + 1, or the first index of the
    conflicting term)."""

    src: int
    dst: int
    term: int
    success: bool
    match_index: int = 0
    hint_index: int = 0
    rejected_index: int = 0


@frozen(kw_only=True)
class InstallSnapshotRequest:
    """Leader -> a follower whose next entry the leader has already compacted away.

    The whole snapshot travels in one message (metadata images are small)."""

    src: int
    dst: int
    term: int
    snapshot: Snapshot
    leader_commit: int


@frozen(kw_only=True)
class InstallSnapshotResponse:
    """Follower -> leader: the follower now matches the leader up to ``match_index``."""

    src: int
    dst: int
    term: int
    match_index: int


@frozen(kw_only=True)
class TimeoutNow:
    """A resigning leader -> its most up-to-date follower: start an election now, without
    the pre-vote round (Raft thesis 3.10 leadership transfer; Kafka's EndQuorumEpoch)."""

    src: int
    dst: int
    term: int


RaftMessage = (
    VoteRequest
    | VoteResponse
    | AppendEntriesRequest
    | AppendEntriesResponse
    | InstallSnapshotRequest
    | InstallSnapshotResponse
    | TimeoutNow
)
MESSAGE_TYPES = (
    VoteRequest,
    VoteResponse,
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    TimeoutNow,
)
