"""The state machine a Raft log drives (for the controller: the metadata image).

Owned by the actor, not by the core: the actor feeds it ``ApplyCommitted`` entries (skipping
control entries), answers ``TakeSnapshot`` with ``snapshot()`` and executes ``RestoreSnapshot``
with ``restore()``. Deterministic: the same payloads in the same order give the same bytes.
"""

from __future__ import annotations

from typing import Protocol


class StateMachine(Protocol):
    def apply(self, payload: bytes) -> None:
        """Apply one committed command."""

    def snapshot(self) -> bytes:
        """Serialize the whole state."""

    def restore(self, data: bytes) -> None:
        """Replace the whole state by a ``snapshot()`` result."""
