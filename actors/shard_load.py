"""Loading a coordinator shard from its internal-topic partition, shared by the transaction
coordinator (actors/txn_shard.py) and the share-state coordinator (actors/share_state_shard.py).

Loading = write a *barrier* (a tombstone under a key no real record has) with acks=all, then
read from the log start up to the high watermark: a new leader's high watermark may still be
below records the old leader had committed, and a record appended by this leadership with
acks=all proves everything before it is committed, so the read misses nothing (txn_shard.py
explains the failure this prevents). The shard is any object with the fields ``partition``,
``generation``, ``barrier_written``, ``load_offset``, ``load_records``, ``loading`` and
``loading_since``; the replica's answers come back as :class:`LoadStep` messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P

from rillet.frozen import frozen

from . import partition as R

E = P.ErrorCode
LOAD_CHUNK = 1 << 20
LOADED, MORE, RETRY = "loaded", "more", "retry"


@frozen
class LoadStep:
    """The replica's answer to a load step of shard ``partition`` at ``generation``: the
    barrier's append, or a read."""

    partition: int
    generation: int
    barrier: P.ProducePartitionResponse | None = None
    read: P.FetchPartitionResponse | None = None


def load(shard: Any, barrier_key: bytes, ref: pykka.ActorRef | None,
         tell: Callable[[object], None], now: int) -> None:
    """Take ``shard``'s next load step (no-op while one is in flight or without a replica)."""
    if ref is None or shard.loading:
        return
    shard.loading, shard.loading_since = True, now
    partition, generation = shard.partition, shard.generation
    if not shard.barrier_written:
        batch = BatchBuilder()
        batch.append(now, barrier_key, None)
        message: Any = R.Append(
            batch.build(),
            lambda r: tell(LoadStep(partition, generation, barrier=r)),
            acks=-1,
            timeout_ms=10_000,
        )
    else:
        message = R.Read(
            shard.load_offset,
            LOAD_CHUNK,
            reply=lambda r: tell(LoadStep(partition, generation, read=r)),
            on_data=None,
        )
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        shard.loading = False


def on_load_step(shard: Any, step: LoadStep, decode: Callable[[bytes, int], tuple]
                 ) -> tuple[str, int, list[int]]:
    """``(LOADED | MORE | RETRY, error code, offsets of unreadable records skipped)``: loaded
    (the records are in ``shard.load_records``), take the next step now, or retry on the next
    tick. ``decode(records, from_offset)`` -> (records, next offset, skipped offsets)."""
    shard.loading = False
    if step.barrier is not None:
        if step.barrier.error_code != E.NONE:
            return RETRY, step.barrier.error_code, []
        shard.barrier_written = True
        return MORE, E.NONE, []
    r = step.read
    if r.error_code == E.OFFSET_OUT_OF_RANGE and r.log_start_offset > shard.load_offset:
        shard.load_offset = r.log_start_offset  # the log starts later: read from there
        return MORE, E.NONE, []
    if r.error_code != E.NONE:
        return RETRY, r.error_code, []
    records, next_offset, skipped = decode(r.records, shard.load_offset)
    progressed = next_offset > shard.load_offset
    shard.load_records.extend(records)
    shard.load_offset = next_offset
    if shard.load_offset >= r.high_watermark:
        return LOADED, E.NONE, skipped
    # below the high watermark: read on (a read that brought nothing is asked again later,
    # never taken for the end: loading must not miss a record)
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
