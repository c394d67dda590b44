"""One shard of the transaction coordinator actor (actors/txn_coordinator.py): a led
``__transaction_state`` partition, its core once loaded, its queue of operations, the
requests held while their transaction's markers are written (:meth:`Shard.park`), its
pending markers, and the steps of loading it.

Loading = write a *barrier*, then read from offset 0 up to the high watermark. A new
leader's high watermark may still be below records the old leader had committed (followers
learn the high watermark one fetch late); a record appended by this leadership and
acknowledged with acks=all proves everything before it is committed, so the read misses
nothing. The barrier is a tombstone under a key no transactional id has (``BARRIER_KEY``):
replay skips it and compaction drops it.

Owned by the actor, used on its thread only. Answers of the replica come back as
:class:`LoadStep` messages (``tell``) and go to :meth:`Shard.on_load_step`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka
from rillet.coordinator import transactions as T
from rillet.transport import protocol as P

from .shard_load import LOADED, MORE, RETRY, LoadStep, finish, load, on_load_step  # noqa: F401 - re-exported
from .txn_markers import MarkerSender
from .txn_wire import BARRIER_KEY, decode_state

E = P.ErrorCode
_MARKING = frozenset({T.TxnState.PREPARE_COMMIT, T.TxnState.PREPARE_ABORT})


@dataclass(slots=True)
class Shard:
    partition: int
    leader_epoch: int
    generation: int
    markers: MarkerSender
    core: T.TransactionCoordinator | None = None  # None until loaded
    barrier_written: bool = False
    load_offset: int = 0
    load_records: list = field(default_factory=list)
    loading: bool = False  # a load step is in flight
    loading_since: int = 0
    busy: bool = False  # an append is in flight
    busy_since: int = 0
    queue: deque = field(default_factory=deque)
    """(fn(core) -> TxnResult, done(result, error), transactional id or None), in arrival
    order."""
    parked: dict = field(default_factory=dict)
    """transactional id -> [(fn, done, result, deadline ms)]: requests waiting for that
    transaction's markers (txn_coordinator.py ``_park``)."""

    def park(self, fn: Callable, done: Callable, tid: str | None, result: Any,
             deadline: int) -> bool:
        """Hold the request at the head of the queue if the core answered it
        CONCURRENT_TRANSACTIONS only because its transaction's markers are being written
        (Prepare*): it then waits for them (until ``deadline``) and runs again as soon as the
        Complete* record is durable, instead of the client retrying after its backoff. It
        changed nothing (no records), so running it again is safe. True: held."""
        if tid is None or result.records or result.effects or getattr(
                result.response, "error", None) != "CONCURRENT_TRANSACTIONS":
            return False
        m = self.core.transactions.get(tid)
        if m is None or m.state not in _MARKING:
            return False
        self.queue.popleft()
        self.parked.setdefault(tid, []).append((fn, done, result, deadline))
        return True

    def unpark(self, now: int | None = None, everything: bool = False) -> None:
        """Put back, ahead of the queue and in their order, the held requests whose
        transaction left Prepare*; answer those past their deadline (``now``), or all
        (``everything``: the shard reloads or is gone), with the CONCURRENT_TRANSACTIONS they
        met (retriable)."""
        for tid, held in list(self.parked.items()):
            m = None if everything or self.core is None else self.core.transactions.get(tid)
            if not everything and (m is None or m.state not in _MARKING):
                del self.parked[tid]
                self.queue.extendleft((fn, done, tid) for fn, done, _r, _d in reversed(held))
                continue
            keep = [h for h in held if not everything and (now is None or h[3] > now)]
            for _fn, done, result, deadline in held:
                if everything or (now is not None and deadline <= now):
                    done(result, None)
            if keep:
                self.parked[tid] = keep
            else:
                del self.parked[tid]

    def reset(self, generation: int) -> None:
        """Forget the in-memory state (it may be ahead of the log): load again."""
        self.generation = generation
        self.markers.drop_all()
        self.core, self.busy, self.barrier_written = None, False, False
        self.load_offset, self.load_records, self.loading = 0, [], False

    def load(self, ref: pykka.ActorRef | None, tell: Callable[[object], None], now: int) -> None:
        """Take the next load step (actors/shard_load.py)."""
        load(self, BARRIER_KEY, ref, tell, now)

    def on_load_step(self, step: LoadStep) -> tuple[str, int, list[int]]:
        """``(LOADED | MORE | RETRY, error code, offsets of unreadable records skipped)``:
        loaded (the records are in ``load_records``), take the next step now, or retry on
        the next tick."""
        return on_load_step(self, step, decode_state)
