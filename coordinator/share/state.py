"""The share-state coordinator's pure core (KIP-932): the persisted state of the
share-partitions whose keys hash to one ``__share_group_state`` partition, and the rules of
ReadShareGroupState / WriteShareGroupState. docs/queues.md, "Share-state coordinator".

Handlers never change state directly: they return the records to append (records.py) and
apply them at once with :func:`records.apply`, the same function that replays the topic
when a broker takes the partition over. The actor answers only once the records are
durable; if the append fails it reloads from the log (what is durable is the truth).

Rules of a write (:func:`apply_write`), checked in this order:

| condition | answer |
|---|---|
| malformed (empty group/topic, negative partition, bad batch) | INVALID_REQUEST, nothing stored |
| ``leader_epoch`` >= 0 and below the stored one | FENCED_LEADER_EPOCH |
| ``state_epoch`` other than the stored one (0 when nothing is stored) | FENCED_STATE_EPOCH |
| ``delete`` | a tombstone (nothing stored: no record) |
| ``replace`` | start_offset and batches replaced; a start_offset other than the stored one (a reset) bumps ``state_epoch`` |
| otherwise (a delta) | each batch overwrites the stored offsets it covers (later batches of the request win); ``start_offset`` -1 keeps the stored one, else it only moves forward |

Then batches below ``start_offset`` are dropped (a straddling one is cut) and neighbours in
the same state are joined. A write that changes nothing appends nothing. ``leader_epoch``
-1 (an admin) is not fenced and leaves the stored one. A retried reset (``state_epoch`` one
below the stored one, ``replace``, the result equal to what is stored) is answered NONE, so
a lost answer does not turn into a fencing error.

A read with ``leader_epoch`` below the stored one is FENCED_LEADER_EPOCH; one above stores
the new leader epoch (a record) so the previous leader's writes are fenced from then on.
Errors are Kafka's names (transport's ``ErrorCode`` members).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from rillet.frozen import frozen

from .records import (
    SharePartitionKey,
    ShareState,
    ShareStateRecord,
    StateBatch,
    apply,
    replay,
)

NONE = "NONE"
INVALID_REQUEST = "INVALID_REQUEST"
FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"
FENCED_STATE_EPOCH = "FENCED_STATE_EPOCH"
MAX_BATCHES = 10_000  # per share-partition; the leader keeps ~2000 records in flight


@frozen
class WriteState:
    """WriteShareGroupStateRequest in the core's terms (transport/protocol.py documents it)."""

    key: SharePartitionKey
    state_epoch: int
    leader_epoch: int
    start_offset: int
    batches: tuple[StateBatch, ...] = ()
    replace: bool = False
    delete: bool = False


@frozen
class ReadOutcome:
    """``state`` None: nothing stored (the group starts per ``share.auto.offset.reset``)."""

    error: str
    message: str | None = None
    state: ShareState | None = None


@frozen
class WriteOutcome:
    """``state_epoch``: the stored state epoch after the write."""

    error: str
    message: str | None = None
    state_epoch: int = 0


@frozen
class ShareResult:
    records: tuple[ShareStateRecord, ...]
    response: ReadOutcome | WriteOutcome


# ---------------------------------------------------------------------- offset ranges


def normalize(batches: Iterable[StateBatch]) -> list[StateBatch]:
    """Sorted, disjoint batches; where given batches overlap, the later one wins."""
    out: list[StateBatch] = []
    for b in batches:
        if not out or b.first_offset > out[-1].last_offset:
            out.append(b)  # the usual case: already sorted and disjoint
        else:
            out = overlay(out, [b])
    return out


def overlay(base: list[StateBatch], top: list[StateBatch]) -> list[StateBatch]:
    """``base`` with ``top`` written over it (both sorted and disjoint): one sweep."""
    out: list[StateBatch] = []
    i, n = 0, len(base)
    pending: StateBatch | None = None  # the rest of a base batch cut by the previous top
    for t in top:
        while True:
            s = pending if pending is not None else (base[i] if i < n else None)
            if s is None or s.first_offset > t.last_offset:
                break
            if pending is not None:
                pending = None
            else:
                i += 1
            if s.last_offset < t.first_offset:
                out.append(s)
                continue
            if s.first_offset < t.first_offset:
                out.append(replace(s, last_offset=t.first_offset - 1))
            if s.last_offset > t.last_offset:
                pending = replace(s, first_offset=t.last_offset + 1)
                break
        out.append(t)
    if pending is not None:
        out.append(pending)
    out.extend(base[i:])
    return out


def trim(batches: list[StateBatch], start_offset: int) -> list[StateBatch]:
    """The batches at or above ``start_offset`` (a straddling one cut), neighbours with the
    same state joined."""
    out: list[StateBatch] = []
    for b in batches:
        if b.last_offset < start_offset:
            continue
        if b.first_offset < start_offset:
            b = replace(b, first_offset=start_offset)
        if out and out[-1].last_offset + 1 == b.first_offset and out[-1].same_state(b):
            out[-1] = replace(out[-1], last_offset=b.last_offset)
        else:
            out.append(b)
    return out


# ------------------------------------------------------------------------------ rules


def _malformed(key: SharePartitionKey, batches: Iterable[StateBatch] = ()) -> str | None:
    if not key.group_id or not key.topic or key.partition < 0:
        return f"bad share-partition {key}"
    for b in batches:
        if (problem := b.problem()) is not None:
            return problem
    return None


def apply_write(current: ShareState | None,
                req: WriteState) -> tuple[str, str | None, ShareState | None]:
    """``(error, message, the state after the write)``; the state is ``current`` when the
    write is refused, None when there is none (deleted). The table in the module doc."""
    problem = _malformed(req.key, req.batches)
    if problem is None and (req.start_offset < -1 or req.state_epoch < 0):
        problem = "negative start_offset or state_epoch"
    if problem is not None:
        return INVALID_REQUEST, problem, current
    stored_epoch = current.state_epoch if current is not None else 0
    if current is not None and 0 <= req.leader_epoch < current.leader_epoch:
        return (FENCED_LEADER_EPOCH, f"leader epoch {req.leader_epoch} is older than "
                f"{current.leader_epoch}", current)
    leader_epoch = req.leader_epoch if current is None else max(current.leader_epoch,
                                                                req.leader_epoch)
    if req.delete:
        if req.state_epoch != stored_epoch and current is not None:
            return FENCED_STATE_EPOCH, f"state epoch is {stored_epoch}", current
        return NONE, None, None
    if req.replace:
        start = req.start_offset
        batches = trim(normalize(req.batches), start)
        epoch = stored_epoch
        if current is not None and start != current.start_offset:
            epoch += 1  # a reset (AlterShareGroupOffsets): fences writes of the old state
        new = ShareState(epoch, leader_epoch, start, tuple(batches))
        if (current is not None and req.state_epoch == stored_epoch - 1
                and (new.start_offset, new.batches) == (current.start_offset, current.batches)):
            return NONE, None, current  # the retry of a reset that was applied already
        if req.state_epoch != stored_epoch:
            return FENCED_STATE_EPOCH, f"state epoch is {stored_epoch}", current
    else:
        if req.state_epoch != stored_epoch:
            return FENCED_STATE_EPOCH, f"state epoch is {stored_epoch}", current
        old_start = current.start_offset if current is not None else -1
        start = old_start if req.start_offset < 0 else max(old_start, req.start_offset)
        base = list(current.batches) if current is not None else []
        batches = trim(overlay(base, normalize(req.batches)), start)
        new = ShareState(stored_epoch, leader_epoch, start, tuple(batches))
    if len(new.batches) > MAX_BATCHES:
        return INVALID_REQUEST, f"more than {MAX_BATCHES} state batches", current
    return NONE, None, new


@dataclass(slots=True)
class ShareStateCoordinator:
    """The states of the share-partitions of ONE ``__share_group_state`` partition. Not
    thread-safe: owned by the share-state actor's shard."""

    states: dict[SharePartitionKey, ShareState] = field(default_factory=dict)

    @classmethod
    def load(cls, records: Iterable[ShareStateRecord]) -> ShareStateCoordinator:
        return cls(replay(records))

    def _emit(self, record: ShareStateRecord) -> tuple[ShareStateRecord, ...]:
        apply(self.states, record)
        return (record,)

    def read(self, key: SharePartitionKey, leader_epoch: int) -> ShareResult:
        problem = _malformed(key)
        if problem is not None:
            return ShareResult((), ReadOutcome(INVALID_REQUEST, problem))
        current = self.states.get(key)
        if current is None:
            return ShareResult((), ReadOutcome(NONE))
        if 0 <= leader_epoch < current.leader_epoch:
            return ShareResult((), ReadOutcome(
                FENCED_LEADER_EPOCH,
                f"leader epoch {leader_epoch} is older than {current.leader_epoch}"))
        if leader_epoch > current.leader_epoch:  # a new leader: fence the old one's writes
            new = replace(current, leader_epoch=leader_epoch)
            return ShareResult(self._emit(ShareStateRecord(key, new)), ReadOutcome(NONE, state=new))
        return ShareResult((), ReadOutcome(NONE, state=current))

    def delete_topics(self, topics: frozenset[str]) -> ShareResult:
        """Tombstones for every share-partition of ``topics`` (deleted: a topic created again
        under a name must not inherit the old one's state, which starts past its records)."""
        records: list[ShareStateRecord] = []
        for key in sorted(k for k in self.states if k.topic in topics):
            records.extend(self._emit(ShareStateRecord(key, None)))
        return ShareResult(tuple(records), WriteOutcome(NONE, None, 0))

    def write(self, req: WriteState) -> ShareResult:
        current = self.states.get(req.key)
        error, message, new = apply_write(current, req)
        epoch = new.state_epoch if new is not None else 0
        if error != NONE:
            stored = current.state_epoch if current is not None else 0
            return ShareResult((), WriteOutcome(error, message, stored))
        records = () if new == current else self._emit(ShareStateRecord(req.key, new))
        return ShareResult(records, WriteOutcome(NONE, None, epoch))
