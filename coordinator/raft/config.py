"""Tuning of the Raft core (Kafka names where KRaft has one, in milliseconds)."""

from __future__ import annotations

from rillet.frozen import frozen


@frozen
class RaftConfig:
    """``election_timeout_ms`` (controller.quorum.election.timeout.ms): a follower that hears
    no leader for a random time in [election_timeout_ms, 2 * election_timeout_ms) starts a
    pre-vote; a leader that hears from no majority within it resigns (check-quorum).
    ``heartbeat_interval_ms``: leader -> follower AppendEntries period (well below the
    election timeout). ``max_entries_per_request``: cap on entries per AppendEntries.
    ``snapshot_threshold``: ask for a snapshot once this many applied entries follow the last
    one (0 = never).

    ``fetch_timeout_ms`` (controller.quorum.fetch.timeout.ms), None: the election timeout
    does everything above. Set, as KRaft does: a follower that has a leader waits this long
    without hearing from it (not a random election timeout) before its pre-vote, refuses
    votes while it heard from its leader within it (the lease), and a leader resigns when
    no majority has answered it within 1.5 times it (KRaft's check-quorum timer). A loaded
    machine then keeps its leader through pauses of up to this long; elections themselves
    (candidates, an unattached node) keep the random [T, 2T) election timeout."""

    election_timeout_ms: int = 1000
    heartbeat_interval_ms: int = 100
    max_entries_per_request: int = 64
    snapshot_threshold: int = 1000
    fetch_timeout_ms: int | None = None

    @property
    def lease_ms(self) -> int:
        """How long a follower trusts a leader it heard from (no pre-vote, no vote)."""
        return self.election_timeout_ms if self.fetch_timeout_ms is None else self.fetch_timeout_ms

    @property
    def check_quorum_ms(self) -> int:
        """How long a leader goes on without answers from a majority before it resigns."""
        if self.fetch_timeout_ms is None:
            return self.election_timeout_ms
        return self.fetch_timeout_ms * 3 // 2

    def __post_init__(self) -> None:
        if self.election_timeout_ms <= 0 or self.heartbeat_interval_ms <= 0:
            raise ValueError("election_timeout_ms and heartbeat_interval_ms must be > 0")
        if self.heartbeat_interval_ms >= self.election_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below election_timeout_ms")
        if self.fetch_timeout_ms is not None and self.fetch_timeout_ms <= self.heartbeat_interval_ms:
            raise ValueError("fetch_timeout_ms must be above heartbeat_interval_ms")
        if self.max_entries_per_request <= 0 or self.snapshot_threshold < 0:
            raise ValueError("max_entries_per_request must be > 0, snapshot_threshold >= 0")
