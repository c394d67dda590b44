"""The controller of the replication simulator (a mixin of ``ReplicationSimulation``): the
shipped handlers of coordinator/control over a real ``MetadataImage``, as actors/controller.py
and actors/controller_wire.py call them. Every record a handler returns is applied to the
image at once (the simulated controller is one node: no Raft round trip); the brokers get
the partition's new state and the image offset.

What is still modelled: the wire (tuples, not requests), the quorum (one active controller
that never fails over), the timers (session expiry is checked on every controller tick;
auto rebalance, reassignments and the offline check fire at random), and the check that a
ReplicaDamage comes from the broker's current process (controller_wire does not check it).

Broken variant ``unclean``: the records fencing a leader elect any live replica, ISR or not.
"""

from __future__ import annotations

from typing import NamedTuple

from rillet.coordinator import election as E
from rillet.coordinator import metadata as md
from rillet.coordinator.control import brokers as CB
from rillet.coordinator.control import partitions as CP
from rillet.coordinator.control.result import ControllerResult

from .replication_world import BROKERS, CONTROLLER, PARTITION, SESSION_MS, TOPIC


class SimBeat(NamedTuple):
    """The fields of a BrokerHeartbeat request (``control.brokers.BrokerBeat``)."""

    broker_id: int
    incarnation: str
    metadata_offset: int
    host: str = "sim"
    port: int = 9092
    rack: str | None = None
    clean_shutdown: bool = False
    internal_host: str = ""
    internal_port: int = 0
    want_shut_down: bool = False
    kafka_host: str = ""
    kafka_port: int = 0


class SimReassignment(NamedTuple):
    topic: str
    partition: int
    replicas: tuple[int, ...]


def initial_image(ids: tuple[int, ...]) -> md.MetadataImage:
    """Every broker registered and unfenced, the topic with its partition on BROKERS."""
    records: list[object] = []
    for b in ids:
        records += [
            md.RegisterBroker(broker_id=b, host="sim", port=9092, incarnation="0"),
            md.UnfenceBroker(broker_id=b),
        ]
    records += [
        md.CreateTopic(name=TOPIC, topic_id="sim-topic"),
        md.PartitionRecord(
            topic=TOPIC, partition=PARTITION, replicas=BROKERS, isr=BROKERS, leader=BROKERS[0]
        ),
    ]
    return md.replay(records)


class ControllerMixin:
    def _controller_init(self) -> None:
        self.image = initial_image(self.ids)
        self.sessions = CB.BrokerHeartbeats(SESSION_MS)
        self.sessions.became_active(self.image, 0)
        self._state = E.PartitionState.from_info(self.image.partition(TOPIC, PARTITION))

    # the partition and the cluster as the image has them

    @property
    def state(self) -> E.PartitionState:
        return self._state

    @property
    def live(self) -> set[int]:
        return set(self.image.live_brokers())

    @property
    def incarnation_seen(self) -> dict[int, int]:
        return {b: int(info.incarnation) for b, info in self.image.brokers.items()}

    @property
    def _unclean_default(self) -> bool:
        return self.variant == "unclean-enabled"

    def _commit(self, result: ControllerResult) -> None:
        """Apply a handler's records to the image; tell the brokers what changed."""
        if not result.records:
            return
        before = self._state
        for record in result.records:
            self.image = md.apply(self.image, record)
        st = self._state = E.PartitionState.from_info(self.image.partition(TOPIC, PARTITION))
        if st == before:
            return
        moving = bool(before.adding_replicas or before.removing_replicas)
        if st.leader != before.leader:
            self.stats.leader_changes += 1
        self.stats.reassignments += moving and not (st.adding_replicas or st.removing_replicas)
        for b in self.ids:
            self._send_meta(b)

    def _send_meta(self, b: int) -> None:
        info = self.image.brokers[b]
        self._send(CONTROLLER, b, ("meta", self._state, int(info.incarnation), self.image.offset))

    # -------------------------------------------------------------------------- requests

    def _controller_receive(self, src, msg: tuple) -> None:
        kind = msg[0]
        if kind == "hb":
            _, incarnation, metadata_offset = msg
            beat = SimBeat(src, str(incarnation), metadata_offset)
            verdict = self.sessions.heartbeat(
                self.image, beat, now_ms=self.now, applied_index=self.image.offset
            )
            if verdict.error != E.NONE:
                return  # a late beat of a process that has been replaced
            unclean = self._unclean_default
            if verdict.action == CB.REGISTER:
                self._commit(
                    self._broken(self.sessions.register(self.image, beat, unclean_default=unclean))
                )
            elif verdict.action == CB.UNFENCE:
                self._commit(self.sessions.unfence(self.image, src, unclean_default=unclean))
            self._send_meta(src)
        elif kind == "alter":
            p = msg[1]
            result = CP.alter_partition(
                self.image,
                topic=TOPIC,
                partition=PARTITION,
                broker_id=p.leader,
                leader_epoch=p.leader_epoch,
                partition_epoch=p.partition_epoch,
                new_isr=p.new_isr,
                new_isr_incarnations=p.incarnations,
                broker_incarnation=msg[2],
            )
            self._commit(result)
            self._send(CONTROLLER, src, ("alter_resp", p, result.response.error))
        elif kind == "md":
            self._send(CONTROLLER, src, ("md_resp", self._state.leader))
        elif kind == "damage":
            self._controller_damage(src, *msg[1:])

    def _controller_damage(self, src: int, offset: int, epoch: int, incarnation: int) -> None:
        if incarnation != self.incarnation_seen.get(src):
            error = E.STALE_BROKER_EPOCH  # sent by a process that has died since
        else:
            result = CP.replica_damage(
                self.image,
                topic=TOPIC,
                partition=PARTITION,
                broker_id=src,
                offset=offset,
                unclean_default=self._unclean_default,
                leader_epoch=epoch,
            )
            self._commit(result)
            error = result.response.error
        self._send(CONTROLLER, src, ("damage_resp", offset, error))

    # ----------------------------------------------------------------------------- timers

    def _controller_tick(self) -> None:
        unclean = self._unclean_default
        for b in self.sessions.expired(self.image, self.now):
            fence = self.sessions.fence(self.image, b, now_ms=self.now, unclean_default=unclean)
            self._commit(self._broken(fence))
        if self.rng.random() < 0.01:  # auto.leader.rebalance
            self._commit(CP.auto_rebalance(self.image))
        if self.reassign and self.producing and self.rng.random() < 0.01:
            target = tuple(self.rng.sample(self.ids, len(BROKERS)))
            self._commit(CP.reassign(self.image, [SimReassignment(TOPIC, PARTITION, target)]))
        self._commit(CP.elect_offline(self.image, unclean_default=unclean))

    def _broken(self, result: ControllerResult) -> ControllerResult:
        """The ``unclean`` variant: a leader change on fencing picks any live replica."""
        if self.variant != "unclean":
            return result
        records = []
        for r in result.records:
            if isinstance(r, E.PartitionChangeRecord) and r.leader != self._state.leader:
                live = set(self.image.live_brokers()) - {
                    x.broker_id for x in result.records if isinstance(x, md.FenceBroker)
                }
                choices = [x for x in self._state.replicas if x in live]
                if choices:
                    leader = self.rng.choice(choices)
                    r = E._record(TOPIC, PARTITION, self._state, leader=leader, isr=(leader,))
            records.append(r)
        return ControllerResult(records, result.response, result.notes)
