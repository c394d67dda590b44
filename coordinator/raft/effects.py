"""Decisions returned by the Raft core, executed by its owner (an actor, or the simulator).

Every call into ``RaftNode`` returns a list of effects that MUST be executed in order, each one
completed before the next starts. The core always orders durability first, so a reply never
leaves a node before the term, vote and log entries it is based on are on disk:

    PersistHardState -> FlushLog -> RestoreSnapshot -> Send... -> ApplyCommitted -> TakeSnapshot

A crash in the middle of a list is safe: whatever was not executed is as if the input never
arrived (nothing was sent based on state that was not yet durable).
"""

from __future__ import annotations

from rillet.frozen import frozen

from .log import LogEntry, Snapshot
from .messages import RaftMessage


@frozen
class PersistHardState:
    """Durably store (term, voted_for) (Kafka's ``quorum-state`` file), atomically."""

    term: int
    voted_for: int | None


@frozen
class FlushLog:
    """Make every change the core made to its ``RaftLog`` since the last flush durable
    (appends, truncations, snapshot + prefix removal). ``last_index`` is for logging."""

    last_index: int


@frozen
class Send:
    """Deliver ``message`` to ``message.dst`` (best effort: loss is tolerated)."""

    message: RaftMessage


@frozen
class ApplyCommitted:
    """Apply committed entries ``first_index .. first_index + len(entries) - 1`` to the state
    machine, in order. Control entries (``entry.control``, e.g. the leader's no-op) carry no
    state-machine command; skip them but count their index."""

    first_index: int
    entries: tuple[LogEntry, ...]

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.entries) - 1


@frozen
class TakeSnapshot:
    """The state machine has applied exactly up to ``index``: serialize it now and hand the
    bytes back with ``RaftNode.snapshot_taken(index, data)`` so the log prefix can go."""

    index: int


@frozen
class RestoreSnapshot:
    """Replace the state machine's state by ``snapshot.data`` (applied index = snapshot.index).

    Emitted by ``RaftNode.start()`` when the log begins with a snapshot, and when a follower
    installs a snapshot sent by the leader."""

    snapshot: Snapshot


Effect = PersistHardState | FlushLog | Send | ApplyCommitted | TakeSnapshot | RestoreSnapshot
