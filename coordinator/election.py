"""Controller decisions for partition leadership and ISR: pure functions on partition state.

Every function takes the current :class:`PartitionState` (built from the metadata image's
``PartitionInfo`` with :meth:`PartitionState.from_info`) and returns a :class:`Decision`:
a :class:`PartitionChangeRecord` to append to the metadata log (or None: nothing to do) and
an error code for the requester. The record states the partition's whole new state; applying
it (:func:`apply_change`) is how the state moves, so replaying the log rebuilds it.

Rules (Kafka KRaft's ReplicationControlManager / PartitionChangeBuilder, without ELR):

* Leader election picks, in replica order, the first replica in the ISR that is live
  (registered and unfenced). If none and ``unclean.leader.election.enable``: the first live
  replica, with ISR = [it] and ``Decision.unclean`` set (the actor logs it: data may be lost).
  Else the leader is -1 (offline) until an ISR member comes back.
* Every leader change bumps ``leader_epoch``; every change bumps ``partition_epoch`` (the
  version AlterPartition requests are checked against).
* A fenced broker leaves every ISR, except that an ISR is never emptied: the last member
  stays (Kafka keeps it so it can lead again when it returns with the committed data).
* AlterPartition (a leader's ISR proposal) is refused with FENCED_LEADER_EPOCH for another
  leader epoch, INVALID_UPDATE_VERSION for another partition epoch (a stale or duplicated
  request), NOT_LEADER_OR_FOLLOWER if the sender is not the leader, INELIGIBLE_REPLICA if it
  adds a fenced broker, INVALID_REQUEST if the ISR is empty, lacks the leader or names a
  non-replica.
* Preferred-leader election moves leadership to ``replicas[0]`` when it is in the ISR and
  live (PREFERRED_LEADER_NOT_AVAILABLE otherwise, ELECTION_NOT_NEEDED if it leads).
* Reassignment to ``target``: (1) replicas = target + old ones, adding/removing recorded;
  (2) once every adding replica is in the ISR, move leadership into ``target`` if needed;
  (3) drop the old replicas from replicas and ISR. :func:`reassignment_step` gives the next
  record; the controller calls it after every change to the partition.

* Damaged replicas (``damaged``; docs/replication.md, "Corruption and self-healing"): a
  replica that found a corrupt batch in its log reports it (:func:`on_replica_damage`). It
  is marked damaged, leaves the ISR and, if it led, leadership when another live, undamaged
  ISR member exists. The leader epoch is bumped even when the leader stays: fetches the
  replica sent before it found the damage (their offsets count what it has since lost) are
  then fenced, so no ISR expansion built on one can add it back before it has healed. It is never elected while damaged unless
  unclean leader election is enabled (and then only after every undamaged live replica). If
  it is the only ISR member the partition goes offline (leader -1, ISR kept) with a clear
  status (:func:`offline_reason`). The leader's ISR expansion that adds it back (after it has
  truncated the bad batch and caught up again) clears the mark.

Worked example (replicas [1, 2, 3], ISR [1, 2, 3], leader 1, epoch 4): broker 1 is fenced ->
``on_broker_fenced`` gives leader 2, ISR [2, 3], leader_epoch 5, partition_epoch + 1.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, fields, replace

from rillet.frozen import frozen

NONE = "NONE"
FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"
INVALID_UPDATE_VERSION = "INVALID_UPDATE_VERSION"
NOT_LEADER_OR_FOLLOWER = "NOT_LEADER_OR_FOLLOWER"
INELIGIBLE_REPLICA = "INELIGIBLE_REPLICA"
INVALID_REQUEST = "INVALID_REQUEST"
STALE_BROKER_EPOCH = "STALE_BROKER_EPOCH"
UNKNOWN_TOPIC_OR_PARTITION = "UNKNOWN_TOPIC_OR_PARTITION"
PREFERRED_LEADER_NOT_AVAILABLE = "PREFERRED_LEADER_NOT_AVAILABLE"
ELECTION_NOT_NEEDED = "ELECTION_NOT_NEEDED"
REASSIGNMENT_IN_PROGRESS = "REASSIGNMENT_IN_PROGRESS"
INVALID_REPLICA_ASSIGNMENT = "INVALID_REPLICA_ASSIGNMENT"
NO_REASSIGNMENT_IN_PROGRESS = "NO_REASSIGNMENT_IN_PROGRESS"

NO_LEADER = -1


@frozen
class PartitionState:
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int = 0
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()
    damaged: tuple[int, ...] = ()  # replicas that reported a corrupt batch, not healed yet

    @classmethod
    def from_info(cls, info) -> PartitionState:
        """From ``metadata.PartitionInfo`` (fields it lacks take their defaults)."""
        return cls(
            tuple(info.replicas),
            tuple(info.isr),
            info.leader,
            info.leader_epoch,
            getattr(info, "partition_epoch", 0),
            tuple(getattr(info, "adding_replicas", ())),
            tuple(getattr(info, "removing_replicas", ())),
            tuple(getattr(info, "damaged", ())),
        )

    @property
    def target_replicas(self) -> tuple[int, ...]:
        return tuple(r for r in self.replicas if r not in self.removing_replicas)


@frozen(kw_only=True)
class PartitionChangeRecord:
    """The new state of one partition: leader, ISR, replicas, the epochs, reassignment and
    damage state (every partition change the controller commits). JSON-safe via
    ``to_dict``/``from_dict`` in ``coordinator/metadata.py``'s style."""

    topic: str
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()
    damaged: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"type": type(self).__name__, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping) -> PartitionChangeRecord:
        if data.get("type") != cls.__name__:
            raise ValueError(f"not a {cls.__name__}: {data.get('type')!r}")
        kwargs = {}
        for f in fields(cls):
            if f.name not in data and f.name in _OPTIONAL:
                continue  # written before the field existed
            v = data[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kwargs)

    @property
    def state(self) -> PartitionState:
        return PartitionState(
            self.replicas,
            self.isr,
            self.leader,
            self.leader_epoch,
            self.partition_epoch,
            self.adding_replicas,
            self.removing_replicas,
            self.damaged,
        )


_OPTIONAL = frozenset({"damaged"})


@frozen
class Decision:
    record: PartitionChangeRecord | None = None
    error: str = NONE
    unclean: bool = False  # the leader was chosen from outside the ISR: log it loudly
    message: str = ""


def apply_change(state: PartitionState | None, record: PartitionChangeRecord) -> PartitionState:
    """The partition state after ``record`` (the record is the whole state)."""
    return record.state


def _record(topic: str, partition: int, old: PartitionState, **changes) -> PartitionChangeRecord:
    new = replace(old, **changes)
    if any(r not in new.replicas for r in new.damaged):  # reassigned away: nothing to heal
        new = replace(new, damaged=tuple(r for r in new.damaged if r in new.replicas))
    if new.leader != old.leader:
        new = replace(new, leader_epoch=old.leader_epoch + 1)
    new = replace(new, partition_epoch=old.partition_epoch + 1)
    return PartitionChangeRecord(
        topic=topic,
        partition=partition,
        replicas=new.replicas,
        isr=new.isr,
        leader=new.leader,
        leader_epoch=new.leader_epoch,
        partition_epoch=new.partition_epoch,
        adding_replicas=new.adding_replicas,
        removing_replicas=new.removing_replicas,
        damaged=new.damaged,
    )


def choose_leader(
    state: PartitionState,
    live: Collection[int],
    *,
    unclean: bool = False,
    candidates: Iterable[int] | None = None,
) -> tuple[int, bool]:
    """(leader, chosen_uncleanly): first live, undamaged ISR replica in replica order; else,
    if allowed, the first live undamaged replica, then the first live damaged one; else
    NO_LEADER. ``candidates`` restricts the replicas."""
    order = [
        r for r in (state.replicas if candidates is None else candidates) if r in state.replicas
    ]
    damaged = state.damaged
    for r in order:
        if r in state.isr and r in live and r not in damaged:
            return r, False
    if unclean:
        for r in sorted(order, key=lambda r: r in damaged):  # stable: replica order within
            if r in live:
                return r, True
    return NO_LEADER, False


def on_broker_fenced(
    topic: str,
    partition: int,
    state: PartitionState,
    broker: int,
    live: Collection[int],
    *,
    unclean: bool = False,
) -> Decision:
    """``broker`` was fenced (missed its session, or shut down): leave the ISR (never
    emptying it) and, if it led, elect another leader. ``live`` excludes ``broker``."""
    if broker not in state.replicas:
        return Decision()
    live = set(live) - {broker}
    isr = tuple(r for r in state.isr if r != broker) or state.isr
    leader = state.leader
    was_unclean = False
    if leader == broker or leader == NO_LEADER:
        leader, was_unclean = choose_leader(replace(state, isr=isr), live, unclean=unclean)
        if was_unclean:
            isr = (leader,)
    if isr == state.isr and leader == state.leader:
        return Decision()
    return Decision(_record(topic, partition, state, isr=isr, leader=leader), unclean=was_unclean)


def on_broker_unfenced(
    topic: str,
    partition: int,
    state: PartitionState,
    broker: int,
    live: Collection[int],
    *,
    unclean: bool = False,
) -> Decision:
    """``broker`` is live again: an offline partition may get a leader."""
    if state.leader != NO_LEADER or broker not in state.replicas:
        return Decision()
    live = set(live) | {broker}
    leader, was_unclean = choose_leader(state, live, unclean=unclean)
    if leader == NO_LEADER:
        return Decision()
    isr = (leader,) if was_unclean else state.isr
    return Decision(_record(topic, partition, state, isr=isr, leader=leader), unclean=was_unclean)


def alter_partition(
    topic: str,
    partition: int,
    state: PartitionState | None,
    *,
    broker_id: int,
    leader_epoch: int,
    partition_epoch: int,
    new_isr: Iterable[int],
    live: Collection[int],
    new_isr_incarnations: Iterable[str] = (),
    registered: Mapping[int, str] | None = None,
    leader_incarnation: str | None = None,
) -> Decision:
    """Validate a leader's AlterPartition (ISR change) against the current state.

    ``new_isr_incarnations`` (parallel to ``new_isr``) name the process the leader saw
    fetching; ``registered`` maps each broker to its registered incarnation. A replica is
    added only if they match (KIP-903): a proposal computed from a follower's previous
    process, which may have restarted with a log recovery cut short, is INELIGIBLE_REPLICA.
    ``leader_incarnation``: the process that sent the request; one that is not the
    registered one (a request of a process that has died since) is STALE_BROKER_EPOCH."""
    if state is None:
        return Decision(error=UNKNOWN_TOPIC_OR_PARTITION)
    if (
        registered is not None
        and leader_incarnation is not None
        and registered.get(broker_id, "") != leader_incarnation
    ):
        return Decision(error=STALE_BROKER_EPOCH, message="sent by a previous broker process")
    new_isr = tuple(new_isr)
    if leader_epoch != state.leader_epoch:
        return Decision(error=FENCED_LEADER_EPOCH, message=f"leader epoch is {state.leader_epoch}")
    if broker_id != state.leader:
        return Decision(error=NOT_LEADER_OR_FOLLOWER, message=f"the leader is {state.leader}")
    if partition_epoch != state.partition_epoch:
        return Decision(
            error=INVALID_UPDATE_VERSION, message=f"partition epoch is {state.partition_epoch}"
        )
    if not new_isr or len(set(new_isr)) != len(new_isr) or broker_id not in new_isr:
        return Decision(error=INVALID_REQUEST, message="the ISR must hold the leader, once each")
    if any(r not in state.replicas for r in new_isr):
        return Decision(error=INVALID_REQUEST, message="the ISR may hold only replicas")
    added = [r for r in new_isr if r not in state.isr]
    if any(r not in live for r in added):
        return Decision(error=INELIGIBLE_REPLICA, message=f"fenced replicas in {added}")
    seen = dict(zip(new_isr, new_isr_incarnations, strict=False))
    if registered is not None:
        stale = [r for r in added if r in seen and seen[r] != registered.get(r, "")]
        if stale:
            return Decision(
                error=INELIGIBLE_REPLICA,
                message=f"replicas {stale} restarted since the leader saw them fetch",
            )
    ordered = tuple(r for r in state.replicas if r in new_isr)
    if ordered == state.isr:
        return Decision()
    # a damaged replica that the leader adds back has re-fetched what it lost: healed
    damaged = tuple(r for r in state.damaged if r not in added)
    return Decision(_record(topic, partition, state, isr=ordered, damaged=damaged))


def preferred_leader_election(
    topic: str, partition: int, state: PartitionState, live: Collection[int]
) -> Decision:
    """Move leadership to the preferred replica (the first of ``replicas``)."""
    preferred = state.replicas[0]
    if state.leader == preferred:
        return Decision(error=ELECTION_NOT_NEEDED)
    if preferred not in state.isr or preferred not in live or preferred in state.damaged:
        return Decision(error=PREFERRED_LEADER_NOT_AVAILABLE)
    return Decision(_record(topic, partition, state, leader=preferred))


def start_reassignment(
    topic: str,
    partition: int,
    state: PartitionState,
    target: Iterable[int],
    known_brokers: Collection[int],
) -> Decision:
    """Step 1 of moving the partition to ``target``: add the new replicas."""
    target = tuple(target)
    if not target or len(set(target)) != len(target) or any(b not in known_brokers for b in target):
        return Decision(error=INVALID_REPLICA_ASSIGNMENT, message=f"bad target {list(target)}")
    if state.adding_replicas or state.removing_replicas:
        return Decision(error=REASSIGNMENT_IN_PROGRESS)
    if target == state.replicas:
        return Decision()
    adding = tuple(r for r in target if r not in state.replicas)
    removing = tuple(r for r in state.replicas if r not in target)
    replicas = target + removing
    return Decision(
        _record(
            topic,
            partition,
            state,
            replicas=replicas,
            adding_replicas=adding,
            removing_replicas=removing,
        )
    )


def reassignment_step(
    topic: str, partition: int, state: PartitionState, live: Collection[int]
) -> Decision:
    """The next record of a reassignment, or no record while waiting for the new replicas
    to join the ISR (or for a live in-sync target replica to lead)."""
    if not state.adding_replicas and not state.removing_replicas:
        return Decision()
    if any(r not in state.isr for r in state.adding_replicas):
        return Decision(message="waiting for the new replicas to join the ISR")
    target = state.target_replicas
    if state.leader not in target:
        leader, _ = choose_leader(state, live, candidates=target)
        if leader == NO_LEADER:
            return Decision(message="waiting for a live in-sync target replica")
        return Decision(_record(topic, partition, state, leader=leader))
    isr = tuple(r for r in state.isr if r in target)
    return Decision(
        _record(
            topic,
            partition,
            state,
            replicas=target,
            isr=isr,
            adding_replicas=(),
            removing_replicas=(),
        )
    )


def cancel_reassignment(
    topic: str, partition: int, state: PartitionState, live: Collection[int]
) -> Decision:
    """Revert to the original replicas (only while the old replicas are still present)."""
    if not state.adding_replicas and not state.removing_replicas:
        return Decision(error=NO_REASSIGNMENT_IN_PROGRESS)
    original = tuple(r for r in state.replicas if r not in state.adding_replicas)
    isr = tuple(r for r in state.isr if r in original) or state.isr
    leader = state.leader
    if leader not in original:
        leader, _ = choose_leader(replace(state, isr=isr), live, candidates=original)
    return Decision(
        _record(
            topic,
            partition,
            state,
            replicas=original,
            isr=isr,
            leader=leader,
            adding_replicas=(),
            removing_replicas=(),
        )
    )


def unclean_enabled(topic_configs: Mapping[str, str], default: bool = False) -> bool:
    """``unclean.leader.election.enable`` of a topic (topic override, else ``default``)."""
    value = topic_configs.get("unclean.leader.election.enable")
    return default if value is None else value.strip().lower() == "true"


def fence_broker(image, broker: int, *, unclean_default: bool = False) -> list[Decision]:
    """Decisions for every partition of ``image`` (a ``metadata.MetadataImage``) when
    ``broker`` is fenced; only those with a record."""
    live = set(image.live_brokers()) - {broker}
    return _for_every_partition(image, broker, live, on_broker_fenced, unclean_default)


def unfence_broker(image, broker: int, *, unclean_default: bool = False) -> list[Decision]:
    """Decisions for every offline partition of ``image`` that ``broker`` can now lead."""
    live = set(image.live_brokers()) | {broker}
    return _for_every_partition(image, broker, live, on_broker_unfenced, unclean_default)


def _for_every_partition(image, broker: int, live: set[int], decide, unclean_default: bool):
    out = []
    for topic in image.topics.values():
        unclean = unclean_enabled(topic.configs, unclean_default)
        for p, info in sorted(topic.partitions.items()):
            d = decide(topic.name, p, PartitionState.from_info(info), broker, live, unclean=unclean)
            if d.record is not None:
                out.append(d)
    return out


def on_replica_damage(
    topic: str,
    partition: int,
    state: PartitionState | None,
    broker: int,
    live: Collection[int],
    *,
    unclean: bool = False,
    leader_epoch: int | None = None,
) -> Decision:
    """Replica ``broker`` found a corrupt batch in its log: mark it damaged, take it out of
    the ISR and leadership if another live undamaged ISR member can take over, else take the
    partition offline (leader -1, the ISR kept) unless ``unclean`` allows another replica.
    ``leader_epoch``: the epoch the replica knew when it found the damage. From a replica
    already marked damaged (found again while it was healing), a report of the current
    epoch is new damage and bumps the epoch again; an older one is a re-send: nothing to do.

    Worked example (replicas [1, 2, 3], ISR [1, 2, 3], leader 1, epoch 4): broker 1 reports
    damage -> leader 2, ISR [2, 3], damaged [1], leader_epoch 5. Broker 1 then truncates,
    re-fetches from 2 and is added back by 2's ISR expansion, which clears the mark.
    With ISR [1] only: leader -1, ISR [1], damaged [1] (offline; ``offline_reason``).
    Broker 3 reports instead: leader 1 stays, ISR [1, 2], damaged [3], leader_epoch 5 - the
    bump fences a fetch broker 3 sent before it found the damage and that reaches broker 1
    late: counted, its offset (what broker 3 has since truncated) would have broker 1 add it
    back, clearing the mark while its log lacks committed records (found by the replication
    simulator, tests/sim/replication_damage.py).
    """
    if state is None:
        return Decision(error=UNKNOWN_TOPIC_OR_PARTITION)
    if broker not in state.replicas:
        return Decision(error=INVALID_REQUEST, message=f"broker {broker} is not a replica")
    damaged = state.damaged if broker in state.damaged else (*state.damaged, broker)
    marked = replace(state, damaged=damaged)
    others = tuple(r for r in state.isr if r != broker)
    leader, isr, was_unclean = state.leader, state.isr, False
    if broker in state.isr:
        if leader == broker or leader == NO_LEADER:
            leader, was_unclean = choose_leader(replace(marked, isr=others), live, unclean=unclean)
            if leader == NO_LEADER:
                isr = others or state.isr  # never empty: the last member keeps the history
            elif was_unclean:
                isr = (leader,)
            else:
                isr = others
        else:
            isr = others
    if damaged == state.damaged and isr == state.isr and leader == state.leader:
        if leader == NO_LEADER or leader_epoch is None or leader_epoch < state.leader_epoch:
            return Decision()  # a repeated report
    record = _record(topic, partition, state, isr=isr, leader=leader, damaged=damaged)
    if record.leader == state.leader and record.leader != NO_LEADER:
        record = replace(record, leader_epoch=state.leader_epoch + 1)
    message = "" if leader != NO_LEADER else offline_reason(record.state, live)
    return Decision(record, unclean=was_unclean, message=message)


def offline_reason(state: PartitionState, live: Collection[int]) -> str:
    """Why a partition has no leader ("" if it has one), for ``rillet topic describe``."""
    if state.leader != NO_LEADER:
        return ""
    damaged = [r for r in state.isr if r in state.damaged]
    if damaged:
        who = ", ".join(str(r) for r in damaged)
        return (
            f"offline: replica on broker {who} is damaged; enable "
            "unclean.leader.election.enable or restore it"
        )
    if not any(r in live for r in state.isr):
        return "offline: no in-sync replica is live"
    return "offline"


def elect_offline(
    topic: str, partition: int, state: PartitionState, live: Collection[int], *, unclean: bool
) -> Decision:
    """An offline partition gets a leader if one is now allowed (e.g. unclean election was
    enabled for a partition whose only in-sync replica is damaged)."""
    if state.leader != NO_LEADER:
        return Decision()
    leader, was_unclean = choose_leader(state, live, unclean=unclean)
    if leader == NO_LEADER:
        return Decision()
    isr = (leader,) if was_unclean else state.isr
    return Decision(_record(topic, partition, state, isr=isr, leader=leader), unclean=was_unclean)
