"""One shard of the share-state actor (actors/share_state.py): a led ``__share_group_state``
partition, its core (coordinator/share/state.py) once loaded, its queue of operations, and
the steps of loading it.

Loading = write a *barrier*, then read from offset 0 up to the high watermark, as the
transaction coordinator does (actors/shard_load.py, shared with it; txn_shard.py explains why): a new leader's high
watermark may still be below records the old leader had committed; a record appended by this
leadership with acks=all proves everything before it is committed, so the read misses
nothing. The barrier is a tombstone under a key no share-partition has: replay skips it and
compaction drops it.

Owned by the actor, used on its thread only. Answers of the replica come back as
:class:`LoadStep` messages (``tell``) and go to :meth:`ShareShard.on_load_step`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pykka
from rillet.coordinator.share.state import ShareStateCoordinator
from rillet.transport import protocol as P

from .shard_load import LOADED, MORE, RETRY, LoadStep, finish, load, on_load_step  # noqa: F401 - re-exported
from .share_state_wire import BARRIER_KEY, decode_state

E = P.ErrorCode


@dataclass(slots=True)
class ShareShard:
    partition: int
    leader_epoch: int
    generation: int
    core: ShareStateCoordinator | None = None  # None until loaded
    barrier_written: bool = False
    load_offset: int = 0
    load_records: list = field(default_factory=list)
    loading: bool = False  # a load step is in flight
    loading_since: int = 0
    busy: bool = False  # an append is in flight
    busy_since: int = 0
    queue: deque = field(default_factory=deque)
    """(fn(core) -> ShareResult, done(result or None, (code, message) or None)), in arrival
    order."""

    def reset(self, generation: int) -> None:
        """Forget the in-memory state (it may be ahead of the log): load again."""
        self.generation = generation
        self.core, self.busy, self.barrier_written = None, False, False
        self.load_offset, self.load_records, self.loading = 0, [], False

    def load(self, ref: pykka.ActorRef | None, tell: Callable[[object], None], now: int) -> None:
        """Take the next load step (actors/shard_load.py)."""
        load(self, BARRIER_KEY, ref, tell, now)

    def on_load_step(self, step: LoadStep) -> tuple[str, int, list[int]]:
        """``(LOADED | MORE | RETRY, error code, offsets of unreadable records skipped)``;
        once loaded, the core is built from the records read."""
        outcome = on_load_step(self, step, decode_state)
        if outcome[0] == LOADED:
            self.core = ShareStateCoordinator.load(self.load_records)
            self.load_records = []
        return outcome
