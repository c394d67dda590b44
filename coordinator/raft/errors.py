"""Typed errors of the Raft core.

``NotLeaderError`` is the only retriable one: the caller retries against ``leader_id`` (or after
the next election). The others mean a caller bug, bad input, or a broken safety invariant.
"""

from __future__ import annotations

import reprlib


class RaftError(Exception):
    """Base class of every Raft core error."""

    retriable = False


class NotLeaderError(RaftError):
    """A proposal reached a node that is not the leader; ``leader_id`` is a hint (may be None)."""

    retriable = True

    def __init__(self, node_id: int, term: int, leader_id: int | None) -> None:
        super().__init__(f"node {node_id} is not the leader in term {term} (leader: {leader_id})")
        self.node_id = node_id
        self.term = term
        self.leader_id = leader_id


class InvalidMessageError(RaftError):
    """A message that no correct peer could have sent (unknown sender, wrong target, bad index).

    The node's state is unchanged; the caller drops the message and counts it.
    """

    def __init__(self, message: object, reason: str) -> None:
        super().__init__(f"invalid raft message ({reason}): {reprlib.repr(message)}")
        self.message = message
        self.reason = reason


class IllegalTransitionError(RaftError):
    """A role change that the transition table of ``rillet.coordinator.raft.state`` forbids.

    Raised before anything changes, so the node keeps its old state.
    """

    def __init__(self, from_role: str, to_role: str, from_term: int, to_term: int) -> None:
        super().__init__(
            f"illegal raft transition {from_role}(term {from_term}) -> {to_role}(term {to_term})"
        )
        self.from_role = from_role
        self.to_role = to_role
        self.from_term = from_term
        self.to_term = to_term


class RaftSafetyError(RaftError):
    """A Raft safety property would break (e.g. truncating a committed entry).

    Never raised by a correct cluster; it means a bug or lost durable state, and the node must
    stop rather than serve diverged metadata.
    """
