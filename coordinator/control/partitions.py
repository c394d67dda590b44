"""Partition decisions of the active controller: ISR changes, damaged replicas, elections,
reassignments. The rules themselves are coordinator/election.py's; these handlers read the
partition's state out of the image, call them, and collect records, outcomes and notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from rillet.coordinator import election as el
from rillet.coordinator import metadata as md

from .result import ControllerResult, Note, Outcome, PartitionOutcome, unclean_notes


class TopicPartitions(Protocol):
    topic: str
    partitions: Sequence[int]


class Reassignment(Protocol):
    topic: str
    partition: int
    replicas: Sequence[int] | None  # None: cancel the reassignment in progress


def _state(image: md.MetadataImage, topic: str, partition: int) -> el.PartitionState | None:
    info = image.partition(topic, partition)
    return el.PartitionState.from_info(info) if info is not None else None


def _unclean(image: md.MetadataImage, topic: str, default: bool) -> bool:
    t = image.topics.get(topic)
    return el.unclean_enabled(t.configs if t else {}, default)


def alter_partition(
    image: md.MetadataImage,
    *,
    topic: str,
    partition: int,
    broker_id: int,
    leader_epoch: int,
    partition_epoch: int,
    new_isr: Sequence[int],
    new_isr_incarnations: Sequence[str] | None = None,
    broker_incarnation: str = "",
) -> ControllerResult[Outcome]:
    """A leader's ISR change (``election.alter_partition``), then the next reassignment
    steps if the change completes one."""
    state = _state(image, topic, partition)
    live = image.live_brokers()
    d = el.alter_partition(
        topic,
        partition,
        state,
        broker_id=broker_id,
        leader_epoch=leader_epoch,
        partition_epoch=partition_epoch,
        new_isr=new_isr,
        live=live,
        new_isr_incarnations=new_isr_incarnations,
        registered={b: info.incarnation for b, info in image.brokers.items()},
        leader_incarnation=broker_incarnation,
    )
    outcome = Outcome(d.error, d.message or None)
    if d.record is None:
        return ControllerResult([], outcome)
    notes = [
        Note(
            "info",
            f"{topic}-{partition}: isr {list(state.isr)} -> {list(d.record.isr)} "
            f"(leader {broker_id})",
        )
    ]
    records: list[object] = [d.record]
    current = d.record.state
    for _ in range(2):  # a completed catch-up may finish a reassignment in two steps
        step = el.reassignment_step(topic, partition, current, live)
        if step.record is None:
            break
        if len(records) == 1:
            notes.append(
                Note(
                    "info",
                    f"{topic}-{partition}: reassignment step -> replicas "
                    f"{list(step.record.replicas)} leader {step.record.leader}",
                )
            )
        records.append(step.record)
        current = step.record.state
    return ControllerResult(records, outcome, tuple(notes))


def replica_damage(
    image: md.MetadataImage,
    *,
    topic: str,
    partition: int,
    broker_id: int,
    offset: int,
    unclean_default: bool,
    leader_epoch: int | None = None,
) -> ControllerResult[Outcome]:
    """A replica found a corrupt batch (``election.on_replica_damage``): it is marked
    damaged, leaves the ISR and leadership; the partition goes offline if it was the only
    in-sync replica (unless unclean election is enabled). ``leader_epoch``: the epoch the
    replica found the damage in (an older one is a re-send and changes nothing)."""
    state = _state(image, topic, partition)
    unclean = _unclean(image, topic, unclean_default)
    d = el.on_replica_damage(
        topic,
        partition,
        state,
        broker_id,
        image.live_brokers(),
        unclean=unclean,
        leader_epoch=leader_epoch,
    )
    outcome = Outcome(d.error, d.message or None)
    if d.record is None:
        return ControllerResult([], outcome)
    r = d.record
    note = Note(
        "warning",
        f"{topic}-{partition}: replica on broker {broker_id} is damaged at offset {offset}: "
        f"isr {list(state.isr)} -> {list(r.isr)}, leader {state.leader} -> {r.leader}"
        + (f" ({d.message})" if d.message else ""),
    )
    return ControllerResult([r], outcome, (note, *unclean_notes([d])))


def elect_offline(image: md.MetadataImage, *, unclean_default: bool) -> ControllerResult[None]:
    """Offline damaged partitions that may now get a leader without a broker event (e.g.
    unclean.leader.election.enable was turned on for the only in-sync replica's topic)."""
    live = image.live_brokers()
    decisions = []
    for name, t in sorted(image.topics.items()):
        unclean = el.unclean_enabled(t.configs, unclean_default)
        for p, info in sorted(t.partitions.items()):
            if info.leader >= 0 or not info.damaged:
                continue
            d = el.elect_offline(name, p, el.PartitionState.from_info(info), live, unclean=unclean)
            if d.record is not None:
                decisions.append(d)
    return ControllerResult([d.record for d in decisions], None, unclean_notes(decisions))


def _selected(
    image: md.MetadataImage, topics: Iterable[TopicPartitions] | None
) -> list[tuple[str, int]]:
    if topics is None:
        return [(name, p) for name, t in sorted(image.topics.items()) for p in sorted(t.partitions)]
    return [(t.topic, p) for t in topics for p in t.partitions]


def elect_leaders(
    image: md.MetadataImage, topics: Iterable[TopicPartitions] | None
) -> ControllerResult[list[PartitionOutcome]]:
    """Preferred leader election for the named partitions (``None``: all of them; then the
    partitions that need no election are left out of the answer, as Kafka does)."""
    results: list[PartitionOutcome] = []
    records: list[object] = []
    notes: list[Note] = []
    live = image.live_brokers()
    for topic, p in _selected(image, topics):
        state = _state(image, topic, p)
        if state is None:
            results.append(PartitionOutcome(topic, p, "UNKNOWN_TOPIC_OR_PARTITION"))
            continue
        d = el.preferred_leader_election(topic, p, state, live)
        if d.record is not None:
            records.append(d.record)
            notes.append(Note("info", f"{topic}-{p}: preferred leader {d.record.leader} elected"))
        if topics is None and d.error == el.ELECTION_NOT_NEEDED:
            continue
        results.append(PartitionOutcome(topic, p, d.error, d.message or None))
    return ControllerResult(records, results, tuple(notes))


def auto_rebalance(image: md.MetadataImage) -> ControllerResult[None]:
    """auto.leader.rebalance.enable: preferred leaders back where they are in sync."""
    live = image.live_brokers()
    records = []
    for name, t in sorted(image.topics.items()):
        for p, info in sorted(t.partitions.items()):
            d = el.preferred_leader_election(name, p, el.PartitionState.from_info(info), live)
            if d.record is not None:
                records.append(d.record)
    notes = ()
    if records:
        notes = (
            Note(
                "info",
                f"auto leader rebalance: {len(records)} partition(s) back to their "
                "preferred leader",
            ),
        )
    return ControllerResult(records, None, notes)


def reassign(
    image: md.MetadataImage, partitions: Iterable[Reassignment]
) -> ControllerResult[list[PartitionOutcome]]:
    """Start (or cancel) reassignments; the first step is taken at once when it can be."""
    results: list[PartitionOutcome] = []
    records: list[object] = []
    notes: list[Note] = []
    live = image.live_brokers()
    for r in partitions:
        state = _state(image, r.topic, r.partition)
        if state is None:
            results.append(PartitionOutcome(r.topic, r.partition, "UNKNOWN_TOPIC_OR_PARTITION"))
            continue
        if r.replicas is None:
            d = el.cancel_reassignment(r.topic, r.partition, state, live)
        else:
            d = el.start_reassignment(r.topic, r.partition, state, r.replicas, image.brokers)
        if d.record is not None:
            notes.append(
                Note(
                    "info",
                    f"{r.topic}-{r.partition}: reassignment {list(state.replicas)} -> "
                    f"{list(d.record.replicas)}",
                )
            )
            records.append(d.record)
            image = md.apply(image, d.record)
            step = el.reassignment_step(r.topic, r.partition, d.record.state, live)
            if step.record is not None:
                records.append(step.record)
                image = md.apply(image, step.record)
        results.append(PartitionOutcome(r.topic, r.partition, d.error, d.message or None))
    return ControllerResult(records, results, tuple(notes))
