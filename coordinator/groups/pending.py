"""Pending transactional offsets (KIP-447): which one becomes visible when a transaction ends.

A TxnOffsetCommit writes ordinary ``offset_commit`` records, but in a transactional batch of
the producer: they are *pending* for that producer until its COMMIT marker (then visible) or
ABORT marker (then dropped) follows in the same ``__consumer_offsets`` partition. Plain
commits and other producers' transactions interleave with them, and Kafka's rule is that of
the records of one group and partition, the one *written last* (highest log offset) wins,
whenever it becomes visible::

    log:  10 txn(P1, t-0 = 5)   20 plain(t-0 = 7)   30 COMMIT(P1)      -> t-0 = 7
    log:  10 plain(t-0 = 7)     20 txn(P1, t-0 = 5) 30 COMMIT(P1)      -> t-0 = 5
    log:  10 txn(P1, t-0 = 5)   20 txn(P2, t-0 = 6) 30 COMMIT(P2)  40 COMMIT(P1)  -> t-0 = 6

The core never sees log offsets (the actor learns them only after an append), so the order is
kept as two facts per pending offset, both decided when a record is applied, in log order, by
live handling and by replay alike (so replay == live holds):

- ``superseded``: a record written after it is (or will be, on its own commit) the visible
  offset. Set by a later plain commit, and by the commit of another producer whose pending
  offset was written after it; cleared by a tombstone of the partition's offset (nothing is
  visible then, so whichever commits next applies, as in Kafka).
- ``followed_by``: the producers whose pending offset of the same partition came later.

Pure functions over the immutable ``CoordinatorState.pending`` mapping: producer id ->
(group id, partition) -> :class:`PendingOffset`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .model import OffsetAndMetadata, PendingOffset, TopicPartition

Key = tuple[str, TopicPartition]
Pending = Mapping[int, Mapping[Key, PendingOffset]]


def after_plain(pending: Pending, key: Key, deleted: bool) -> Pending:
    """A plain (non-transactional) record for ``key`` was applied: a commit (``deleted``
    False) supersedes every pending offset of the partition, a tombstone un-supersedes them."""
    out: dict | None = None
    for pid, entries in pending.items():
        p = entries.get(key)
        if p is None or p.superseded is not deleted:
            continue
        if out is None:
            out = dict(pending)
        changed = dict(out[pid])
        changed[key] = replace(p, superseded=not deleted)
        out[pid] = changed
    return pending if out is None else out


def after_txn_write(
    pending: Pending, producer_id: int, key: Key, offset: OffsetAndMetadata
) -> Pending:
    """``producer_id`` wrote ``offset`` for ``key`` in its open transaction."""
    out = dict(pending)
    for other, entries in pending.items():
        p = entries.get(key)
        if other != producer_id and p is not None and producer_id not in p.followed_by:
            changed = dict(out[other])
            changed[key] = replace(p, followed_by=p.followed_by | {producer_id})
            out[other] = changed
    mine = dict(out.get(producer_id, {}))
    mine[key] = PendingOffset(offset=offset)
    out[producer_id] = mine
    return out


def complete(
    pending: Pending, producer_id: int, committed: bool
) -> tuple[Pending, dict[Key, OffsetAndMetadata]]:
    """``producer_id``'s transaction ended: (the pending offsets left, the offsets that become
    visible now). Nothing pending for it: nothing changes."""
    mine = pending.get(producer_id)
    if mine is None:
        return pending, {}
    visible = {
        key: p.offset for key, p in sorted(mine.items()) if committed and not p.superseded
    }
    out: dict[int, Mapping[Key, PendingOffset]] = {}
    for other, entries in pending.items():
        if other == producer_id:
            continue
        if not any(producer_id in p.followed_by for p in entries.values()):
            out[other] = entries
            continue
        changed = {}
        for key, p in entries.items():
            if producer_id in p.followed_by:
                # committed: a later write of this partition is visible now (this producer's,
                # or one that superseded it and so came later still)
                p = replace(p, followed_by=p.followed_by - {producer_id},
                            superseded=p.superseded or committed)
            changed[key] = p
        out[other] = changed
    return out, visible


def has_pending(pending: Pending, key: Key) -> bool:
    """Does an open transaction hold an offset for ``key`` (OffsetFetch's require_stable)?"""
    return any(key in entries for entries in pending.values())
