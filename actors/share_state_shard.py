"""One shard of the share-state actor (actors/share_state.py): a led ``__share_group_state``
partition, its core (coordinator/share/state.py) once loaded, its queue of operations, and
the steps of loading it.

Loading = write a *barrier*, then read from offset 0 up to the high watermark, as the
transaction coordinator does (actors/txn_shard.py explains why): a new leader's high
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
from typing import Any

import pykka
from rillet.coordinator.share.state import ShareStateCoordinator
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P

from . import partition as R
from .share_state_wire import BARRIER_KEY, decode_state

E = P.ErrorCode
LOAD_CHUNK = 1 << 20
LOADED, MORE, RETRY = "loaded", "more", "retry"


@dataclass(frozen=True, slots=True)
class LoadStep:
    """The replica's answer to a load step of shard ``partition`` at ``generation``: the
    barrier's append, or a read."""

    partition: int
    generation: int
    barrier: P.ProducePartitionResponse | None = None
    read: P.FetchPartitionResponse | None = None


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
        """Take the next load step (no-op while one is in flight or without a replica)."""
        if ref is None or self.loading:
            return
        self.loading, self.loading_since = True, now
        partition, generation = self.partition, self.generation
        if not self.barrier_written:
            batch = BatchBuilder()
            batch.append(now, BARRIER_KEY, None)
            message: Any = R.Append(
                batch.build(),
                lambda r: tell(LoadStep(partition, generation, barrier=r)),
                acks=-1,
                timeout_ms=10_000,
            )
        else:
            message = R.Read(
                self.load_offset,
                LOAD_CHUNK,
                reply=lambda r: tell(LoadStep(partition, generation, read=r)),
                on_data=None,
            )
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            self.loading = False

    def on_load_step(self, step: LoadStep) -> tuple[str, int, list[int]]:
        """``(LOADED | MORE | RETRY, error code, offsets of unreadable records skipped)``."""
        self.loading = False
        if step.barrier is not None:
            if step.barrier.error_code != E.NONE:
                return RETRY, step.barrier.error_code, []
            self.barrier_written = True
            return MORE, E.NONE, []
        r = step.read
        if r.error_code == E.OFFSET_OUT_OF_RANGE and r.log_start_offset > self.load_offset:
            self.load_offset = r.log_start_offset  # the log starts later: read from there
            return MORE, E.NONE, []
        if r.error_code != E.NONE:
            return RETRY, r.error_code, []
        records, next_offset, skipped = decode_state(r.records, self.load_offset)
        progressed = next_offset > self.load_offset
        self.load_records.extend(records)
        self.load_offset = next_offset
        if self.load_offset >= r.high_watermark:
            self.core = ShareStateCoordinator.load(self.load_records)
            self.load_records = []
            return LOADED, E.NONE, skipped
        # a read that brought nothing is asked again later, never taken for the end
        return (MORE if progressed else RETRY), E.NONE, skipped


def finish(ops: Any, error: tuple[int, str] | None = None) -> None:
    """Answer operations: each with its own error, else ``error``, else its result."""
    for done, result, own in ops:
        if own is not None:
            done(None, own)
        elif error is not None:
            done(None, error)
        else:
            done(result, None)
