"""Offsets committed inside transactions (TxnOffsetCommit, KIP-447) and the replay that
follows the batches and markers of ``__consumer_offsets``.

``send_offsets_to_transaction`` ends in a TxnOffsetCommit to the group's coordinator:

1. :func:`txn_commit_offsets` checks the group (KIP-447 fencing, below) and returns the usual
   ``offset_commit`` records with ``Result.producer`` set: the actor writes them as one
   *transactional* batch of the producer (its id, epoch and the next sequence), never mixed
   with other records. They are now pending for the producer: OffsetFetch does not see them,
   and with ``require_stable`` answers UNSTABLE_OFFSET_COMMIT for their partitions.
2. The transaction coordinator writes the producer's COMMIT or ABORT marker into the same
   partition; the partition leader tells the group coordinator, which calls
   :func:`txn_completed`: COMMIT makes the pending offsets the committed ones (unless a
   commit written later in the log is visible already, see :mod:`.pending`), ABORT drops
   them. No record: the marker in the log is the record.

Group checks (Kafka's ``validateTransactionalOffsetCommit``; generation_id is the member
epoch in KIP-848 groups):

====================================================  =====================================
request                                               answer
====================================================  =====================================
unknown group, generation_id < 0                      accepted (a simple commit)
unknown group, generation_id >= 0                     ILLEGAL_GENERATION
group without members, generation_id < 0              accepted
generation -1, member "" and no instance id           accepted (the fields are optional)
instance id held by another member id                 FENCED_INSTANCE_ID
member id not in the group                            UNKNOWN_MEMBER_ID
generation_id != the member's epoch                   ILLEGAL_GENERATION
producer epoch older than its last batch here         PRODUCER_FENCED
====================================================  =====================================

Replay: :func:`replay_log` over :class:`LogBatch` / :class:`LogMarker` entries in log order
(the actor decodes them): the records of a transactional batch are pending for its producer
until that producer's marker; a transaction still open at the end stays pending. Deleting a
group or expiring offsets touches committed offsets only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from rillet.frozen import frozen

from . import pending as _pending
from .errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    InvalidRequestError,
    OffsetMetadataTooLargeError,
    ProducerFencedError,
    UnknownMemberIdError,
)
from .messages import Result, TxnOffsetCommitRequest, TxnOffsetCommitResponse
from .model import (
    ConsumerGroup,
    CoordinatorState,
    GroupConfig,
    OffsetAndMetadata,
    TopicPartition,
    TxnProducer,
    is_int,
    valid_partition,
)
from .records import GroupBuilder, GroupRecord, OffsetCommitRecord, apply

NONE = 0
MAX_SEQUENCE = 2**31 - 1
MAX_PRODUCER_EPOCH = 2**15 - 1
MAX_PRODUCER_ID = 2**63 - 1


def increment_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment`` wrapping after MAX_SEQUENCE to 0 (as the partition counts)."""
    if sequence > MAX_SEQUENCE - increment:
        return increment - (MAX_SEQUENCE - sequence) - 1
    return sequence + increment


@frozen
class LogBatch:
    """The decoded records of one batch of the partition; ``producer`` set: a transactional
    batch (``last_sequence`` from its header)."""

    records: tuple[GroupRecord, ...]
    producer: TxnProducer | None = None
    last_sequence: int | None = None


@frozen
class LogMarker:
    """A COMMIT (``committed``) or ABORT marker of ``producer_id``."""

    producer_id: int
    committed: bool


def _check_request(req: TxnOffsetCommitRequest) -> None:
    ok = (
        isinstance(req.transactional_id, str) and bool(req.transactional_id)
        and isinstance(req.group_id, str) and bool(req.group_id)
        and isinstance(req.member_id, str)
        and (req.instance_id is None or isinstance(req.instance_id, str))
        and is_int(req.generation_id)
        and is_int(req.producer_id) and 0 <= req.producer_id <= MAX_PRODUCER_ID
        and is_int(req.producer_epoch) and 0 <= req.producer_epoch <= MAX_PRODUCER_EPOCH
    )
    if not ok:
        raise InvalidRequestError(
            "a TxnOffsetCommit needs a transactional id, a group id, a producer id and epoch",
            group_id=req.group_id if isinstance(req.group_id, str) else "",
        )
    for tp, c in req.offsets.items():
        if not (
            valid_partition(tp)
            and is_int(c.offset) and c.offset >= 0
            and is_int(c.leader_epoch) and isinstance(c.metadata, str)
        ):
            raise InvalidRequestError(f"invalid offset commit {tp}: {c!r}", group_id=req.group_id)


def _check_group(group: ConsumerGroup | None, req: TxnOffsetCommitRequest) -> None:
    ids = {"group_id": req.group_id, "member_id": req.member_id}
    if group is None:
        if req.generation_id >= 0:
            raise IllegalGenerationError(
                f"generation {req.generation_id} of a group that does not exist", **ids)
        return
    if req.generation_id < 0 and not group.members:
        return
    if req.generation_id == -1 and not req.member_id and req.instance_id is None:
        return
    if req.instance_id is not None:
        static = group.static_member(req.instance_id)
        if static is not None and static.member_id != req.member_id:
            raise FencedInstanceIdError(
                f"instance {req.instance_id!r} now belongs to {static.member_id!r}", **ids)
    member = group.members.get(req.member_id)
    if member is None:
        raise UnknownMemberIdError("unknown member", **ids)
    if req.instance_id is not None and member.instance_id != req.instance_id:
        raise FencedInstanceIdError(f"instance {req.instance_id!r} is fenced", **ids)
    if req.generation_id != member.member_epoch:
        raise IllegalGenerationError(
            f"generation {req.generation_id} is not the member's epoch {member.member_epoch}",
            **ids,
        )


def txn_commit_offsets(
    config: GroupConfig, state: CoordinatorState, req: TxnOffsetCommitRequest, now_ms: int
) -> Result[TxnOffsetCommitResponse]:
    """TxnOffsetCommit: the offsets become pending for ``req.producer_id``; see the module."""
    _check_request(req)
    _check_group(state.groups.get(req.group_id), req)
    pid, epoch = req.producer_id, req.producer_epoch
    last = state.producer_sequences.get(pid)
    if last is not None and epoch < last[0]:
        raise ProducerFencedError(
            f"producer {pid} epoch {epoch} is older than its epoch {last[0]} here",
            group_id=req.group_id,
        )
    errors: dict[TopicPartition, int] = {}
    records: list[OffsetCommitRecord] = []
    for tp in sorted(req.offsets):
        c = req.offsets[tp]
        tp = TopicPartition(*tp)
        if len(c.metadata.encode()) > config.offset_metadata_max_bytes:
            errors[tp] = OffsetMetadataTooLargeError.code
            continue
        records.append(OffsetCommitRecord(
            group_id=req.group_id, topic=tp.topic, partition=tp.partition, offset=c.offset,
            leader_epoch=c.leader_epoch, metadata=c.metadata, commit_timestamp_ms=now_ms,
        ))
        errors[tp] = NONE
    response = TxnOffsetCommitResponse(errors=errors)
    if not records:
        return Result(state, (), response)
    base = increment_sequence(last[1], 1) if last is not None and last[0] == epoch else 0
    producer = TxnProducer(producer_id=pid, producer_epoch=epoch, base_sequence=base)
    return Result(apply_txn(state, producer, records), tuple(records), response, producer)


def apply_txn(
    state: CoordinatorState,
    producer: TxnProducer,
    records: Iterable[GroupRecord],
    last_sequence: int | None = None,
) -> CoordinatorState:
    """The state after a transactional batch of ``producer`` holding ``records``: their
    offsets are pending for it. Records other than offset commits are ignored (the
    coordinator writes no others in a transaction)."""
    pending = state.pending
    count = 0
    for r in records:
        count += 1
        if isinstance(r, OffsetCommitRecord):
            pending = _pending.after_txn_write(
                pending, producer.producer_id,
                (r.group_id, TopicPartition(r.topic, r.partition)),
                OffsetAndMetadata(offset=r.offset, leader_epoch=r.leader_epoch,
                                  metadata=r.metadata, commit_timestamp_ms=r.commit_timestamp_ms),
            )
    if last_sequence is None:
        last_sequence = increment_sequence(producer.base_sequence, max(count - 1, 0))
    sequences = dict(state.producer_sequences)
    sequences[producer.producer_id] = (producer.producer_epoch, last_sequence)
    return replace(state, pending=pending, producer_sequences=sequences)


def txn_completed(
    state: CoordinatorState, producer_id: int, committed: bool
) -> Result[frozenset[str]]:
    """``producer_id``'s marker is in the log: COMMIT makes its pending offsets visible,
    ABORT drops them. No records (the marker is the record). The response names the groups
    whose committed offsets changed."""
    pending, visible = _pending.complete(state.pending, producer_id, committed)
    # The producer's sequence is kept across its marker: a KIP-890 part 2 marker moves it to
    # a new epoch (its next batch starts at 0, as txn_commit_offsets decides from the epoch),
    # a Kafka client's (transaction version 1) keeps the epoch, and the partition expects the
    # sequence to go on.
    sequences = state.producer_sequences
    if pending is state.pending:
        return Result(replace(state, producer_sequences=sequences), (), frozenset())
    builders: dict[str, GroupBuilder] = {}
    for (gid, tp), o in visible.items():
        if gid not in builders:
            builders[gid] = GroupBuilder(state.groups.get(gid) or ConsumerGroup(group_id=gid))
        builders[gid].apply(OffsetCommitRecord(
            group_id=gid, topic=tp.topic, partition=tp.partition, offset=o.offset,
            leader_epoch=o.leader_epoch, metadata=o.metadata,
            commit_timestamp_ms=o.commit_timestamp_ms,
        ))
    groups = dict(state.groups)
    for gid, b in builders.items():
        groups[gid] = b.build()
    return Result(replace(state, groups=groups, pending=pending, producer_sequences=sequences),
                  (), frozenset(builders))


def pending_for(state: CoordinatorState, group_id: str, tp: TopicPartition) -> bool:
    """Does an open transaction hold an offset of ``group_id`` for ``tp``?"""
    return _pending.has_pending(state.pending, (group_id, tp))


def replay_log(
    entries: Iterable[LogBatch | LogMarker], state: CoordinatorState | None = None
) -> CoordinatorState:
    """Rebuild a shard from its partition's batches and markers, in log order (then call
    ``GroupCoordinator.on_loaded``). Runs of plain batches are applied together."""
    state = state or CoordinatorState()
    plain: list[GroupRecord] = []
    for e in entries:
        if isinstance(e, LogBatch) and e.producer is None:
            plain.extend(e.records)
            continue
        if plain:
            state = apply(state, plain)
            plain = []
        if isinstance(e, LogBatch):
            state = apply_txn(state, e.producer, e.records, e.last_sequence)
        else:
            state = txn_completed(state, e.producer_id, e.committed).state
    return apply(state, plain) if plain else state
