"""The pieces the replication simulator wires together (see replication_sim.py).

* ``SimLog`` (replication_log.py): the shipped ``PartitionLog`` on a ``MemFileSystem``.
  A crash keeps the files (a process crash keeps the OS page cache; Kafka's durability comes
  from replication, not fsync) and the restart runs the real recovery; the HW checkpoint is
  kept, producer-state snapshots are real snapshot files. A bit flip really changes a byte
  of a batch (its digest no longer matches), so a replica that served it would spread
  corrupt values the checks see.
* ``SimBroker``: one broker's durable and volatile state for the one partition, including
  ``damage``: the offset of the first damaged batch it knows of (replication_damage.py).
* ``SimProducer``: an idempotent producer client (acks=all, up to 5 batches in flight, Kafka's
  retry discipline: after any failure, resend strictly one batch at a time in sequence order
  until every previously sent batch is resolved).
* ``ReplicationChecker``: the invariants checked after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rillet.coordinator.election import PartitionState
from rillet.coordinator.replication import LeaderReplica
from rillet.logstore import batch as B
from rillet.logstore.producer_state import ProducerStateManager, rebuild_from_log

from .replication_log import SimLog

CONTROLLER = 0
BROKERS = (1, 2, 3)  # the partition's replicas at the start
SPARE = 4  # a fourth broker, in the seeds that reassign the partition
TOPIC, PARTITION = "t", 0
MIN_INSYNC = 2
DEFAULT_STEPS = 700
TICK_MS = 20
HEARTBEAT_MS = 50
SESSION_MS = 300  # broker.session.timeout.ms (scaled down)
LAG_MS = 200  # replica.lag.time.max.ms (scaled down)
FETCH_TIMEOUT_MS = 150
FETCH_BACKOFF_MS = 10
PURGATORY_MS = 400  # the produce request's timeout on the broker
CLIENT_TIMEOUT_MS = 500  # request.timeout.ms on the client
CHECKPOINT_MS = 60
LIVENESS_BOUND_MS = 20_000
DAMAGE_RESEND_MS = 100  # a damaged replica re-sends ReplicaDamage until it is answered
SCRUB_CHANCE = 0.05  # per broker tick: the scrubber reaches a flipped batch
VARIANTS = (
    "unclean",
    "unclean-enabled",
    "hw-truncate",
    "no-dedup",
    "damaged-leads",
    "no-digest-check",
)
_TICK, _MSG, _RESTART = 0, 1, 2  # event kinds


class InvariantViolation(AssertionError):
    """A replication safety property broke."""


@dataclass(slots=True)
class FollowState:
    leader: int
    leader_epoch: int
    phase: str  # "truncating" (OffsetForLeaderEpoch) | "fetching"
    req: int = 0  # id of the request in flight, 0 if none
    sent_ms: int = 0
    next_ms: int = 0


class SimBroker:
    def __init__(self, broker_id: int) -> None:
        self.id = broker_id
        self.alive = True
        self.incarnation = 0
        self.damaged_on_restart = False  # recovery will cut the log short (a damaged crash)
        # the first damaged batch this replica knows of: it serves nothing from there on,
        # neither leads nor fetches, and reports it until the controller has recorded it
        # and another replica leads; then it truncates there and re-fetches (durable: a
        # restarted process finds it again, by recovery or by its scrubber)
        self.damage: int | None = None
        self.damage_epoch = -1  # the leader epoch it knew when it found it (-1: not yet known)
        self.pre_damage: list[bytes] = []  # its log's values before damage last cut it
        # durable
        self.log = SimLog(broker_id)
        self.hw_checkpoint = 0
        self.reset_volatile()

    def reset_volatile(self) -> None:
        self.meta: PartitionState | None = None
        self.leader: LeaderReplica | None = None
        self.follow: FollowState | None = None
        self.hw = min(self.hw_checkpoint, self.log.log_end_offset)
        self.pstate: ProducerStateManager = self.rebuild_pstate()
        self.last_snapshot = self.pstate.map_end_offset
        self.parked: dict[
            int, tuple[str, int, int]
        ] = {}  # purgatory key -> (client, attempt, base)
        self.next_hb_ms = 0
        self.meta_offset = 0  # the metadata offset of the newest state it applied
        self.next_checkpoint_ms = 0
        self.damage_acked = False  # the controller answered our ReplicaDamage with NONE
        self.next_damage_ms = 0

    def rebuild_pstate(self, upto: int | None = None) -> ProducerStateManager:
        """Producer state as the broker rebuilds it: latest snapshot file + log replay."""
        end = self.log.log_end_offset if upto is None else upto
        return rebuild_from_log(self.log, self.log.snapshots.read(max_offset=end))

    def truncate(self, offset: int) -> None:
        log = self.log
        # epochs starting at the truncation point hold no batches (e.g. the entry a former
        # leader assigned at its log end): drop them too, or the follower would keep
        # announcing an epoch the leader never had (an endless KIP-320 divergence loop)
        log.epochs.truncate_from_end(offset)
        before = log.log_end_offset
        log.truncate_to(offset)  # (also forgets damage at or past its end)
        if offset >= before:
            return
        end = log.log_end_offset
        self.hw = min(self.hw, end)
        log.snapshots.delete_above(end)
        if not self.pstate.truncate_to(end):
            self.pstate = self.rebuild_pstate()
        self.last_snapshot = min(self.last_snapshot, end)

    def appended(self, data: bytes, snapshot_every: int, *, leader: bool = False) -> None:
        """After ``data`` (stamped batches) reached the log: a follower's producer state
        follows the headers (the leader's was updated by ``append_validated``); snapshots."""
        if not leader:
            for header, _view in B.iter_batches(data, validate=False):
                self.pstate.update_from_header(header)
        if self.pstate.map_end_offset - self.last_snapshot >= snapshot_every:
            self.log.snapshots.write(self.pstate, self.log.log_end_offset)
            self.last_snapshot = self.pstate.map_end_offset


@dataclass(slots=True)
class ClientBatch:
    seq: int
    values: tuple[bytes, ...]
    attempt: int = 0  # id of the attempt in flight, 0 if none
    broker: int = -1
    sent_ms: int = 0
    sent_once: bool = False
    maybe_written: bool = False  # some attempt had an unknown outcome
    retry_after_ms: int = 0


@dataclass(slots=True)
class SimProducer:
    name: str
    producer_id: int
    producer_epoch: int = 0
    next_seq: int = 0
    leader: int = -1
    batches: list[ClientBatch] = field(default_factory=list)
    retry_mode: bool = False
    metadata_pending: bool = False
    next_value: int = 0

    def in_flight(self) -> int:
        return sum(1 for b in self.batches if b.attempt)

    def find(self, attempt: int) -> ClientBatch | None:
        for b in self.batches:
            if b.attempt == attempt:
                return b
        return None


class ReplicationChecker:
    """Invariants after every step:

    * at most one leader per leader epoch (ever);
    * a leader's high watermark never decreases within its epoch;
    * committed data never changes: ``ref`` is the log below the highest high watermark any
      leader reached; every leader's log below its HW, and every replica's log below its own
      (follower) HW, equals ``ref`` there;
    * every replica in the controller's ISR holds all of ``ref`` (so whoever is elected
      from the ISR has every committed record) - the property unclean election breaks; the
      caller leaves out replicas that may not lead (a restarted process not registered yet, a
      damaged replica);
    * a replica becoming leader holds all of ``ref`` (``became_leader`` with its log).
    """

    def __init__(self) -> None:
        self.leader_of_epoch: dict[int, int] = {}
        self.hw_of: dict[tuple[int, int], int] = {}
        self.ref: list[bytes] = []
        self.verified: dict[int, int] = {}

    def became_leader(self, broker: int, epoch: int, replica: SimBroker | None = None) -> None:
        other = self.leader_of_epoch.setdefault(epoch, broker)
        if other != broker:
            raise InvariantViolation(f"two leaders in epoch {epoch}: {other} and {broker}")
        if replica is None:
            return
        log = replica.log
        if log.log_end_offset < len(self.ref):
            raise InvariantViolation(
                f"broker {broker} becomes leader of epoch {epoch} with its log ending at "
                f"{log.log_end_offset}, below the committed offset {len(self.ref)}"
            )
        self.verified[broker] = min(self.verified.get(broker, 0), log.low_water)
        self._verify(replica, len(self.ref))

    def check(self, brokers: dict[int, SimBroker], isr: tuple[int, ...]) -> None:
        ref = self.ref
        for b in brokers.values():
            log = b.log
            self.verified[b.id] = min(self.verified.get(b.id, 0), log.low_water)
            log.low_water = log.log_end_offset
        for b in brokers.values():
            L = b.leader
            if b.alive and L is not None and not L.resigned:
                key = (b.id, L.leader_epoch)
                hw = L.high_watermark
                if hw < self.hw_of.get(key, 0):
                    raise InvariantViolation(
                        f"leader {b.id} epoch {L.leader_epoch}: high watermark went back "
                        f"{self.hw_of[key]} -> {hw}"
                    )
                self.hw_of[key] = hw
                if hw > len(ref):
                    self._verify(b, len(ref))
                    ref.extend(b.log.values[len(ref) : hw])
                    self.verified[b.id] = hw
        n = len(ref)
        for b in brokers.values():
            log = b.log
            if b.id in isr:
                if log.log_end_offset < n:
                    raise InvariantViolation(
                        f"broker {b.id} is in the ISR {isr} but its log ends at "
                        f"{log.log_end_offset}, below the committed offset {n}"
                    )
                self._verify(b, n)
            else:
                self._verify(b, min(n, b.hw, log.log_end_offset))

    def _verify(self, b: SimBroker, upto: int) -> None:
        start = self.verified.get(b.id, 0)
        if upto <= start:
            return
        values, ref = b.log.values, self.ref
        for i in range(start, upto):
            if values[i] != ref[i]:
                raise InvariantViolation(
                    f"broker {b.id} holds {values[i]!r} at committed offset {i}, "
                    f"but {ref[i]!r} was committed there"
                )
        self.verified[b.id] = upto
