"""The pieces the replication simulator wires together (see replication_sim.py).

* ``SimBatch`` / ``MemLog``: an in-memory partition log with the real ``LeaderEpochCache``.
  A crash keeps the log (a process crash keeps the OS page cache; Kafka's durability comes
  from replication, not fsync), the HW checkpoint, and producer-state snapshots. A bit flip
  really changes a batch's values and marks it ``flipped`` (its digest no longer matches), so
  a replica that served it would spread corrupt values the checks see.
* ``SimBroker``: one broker's durable and volatile state for the one partition, including
  ``damage``: the offset of the first damaged batch it knows of (replication_damage.py).
* ``SimProducer``: an idempotent producer client (acks=all, up to 5 batches in flight, Kafka's
  retry discipline: after any failure, resend strictly one batch at a time in sequence order
  until every previously sent batch is resolved).
* ``ReplicationChecker``: the invariants checked after every step.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

from rillet.coordinator.election import PartitionState
from rillet.coordinator.replication import LeaderReplica
from rillet.logstore.epochs import LeaderEpochCache
from rillet.logstore.producer_state import ProducerStateManager, rebuild_from_log

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


@dataclass(frozen=True, slots=True)
class SimBatch:
    """A stamped batch; the attribute names match ``BatchHeader`` so producer state can be
    rebuilt from it."""

    base_offset: int
    leader_epoch: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    values: tuple[bytes, ...]
    max_timestamp: int = 0
    is_transactional: bool = False  # the simulated producers are idempotent, not transactional
    is_control: bool = False

    @property
    def last_offset_delta(self) -> int:
        return len(self.values) - 1

    @property
    def last_offset(self) -> int:
        return self.base_offset + len(self.values) - 1


class MemLog:
    log_start_offset = 0

    def __init__(self) -> None:
        self.batches: list[SimBatch] = []
        self.bases: list[int] = []
        self.values: list[bytes] = []  # values[offset]
        self.epochs = LeaderEpochCache(log_end_offset=lambda: len(self.values))
        self.low_water = 0  # lowest log end offset since the checker last looked
        self.flipped: set[int] = set()  # base offsets of batches whose digest fails (bit rot)

    @property
    def log_end_offset(self) -> int:
        return len(self.values)

    def append(self, batch: SimBatch) -> None:
        if batch.base_offset != len(self.values):
            raise AssertionError(f"append at {batch.base_offset}, log end {len(self.values)}")
        self.epochs.assign(batch.leader_epoch, batch.base_offset)
        self.batches.append(batch)
        self.bases.append(batch.base_offset)
        self.values.extend(batch.values)

    def truncate_to(self, offset: int) -> None:
        if offset >= len(self.values):
            return
        i = max(bisect.bisect_right(self.bases, offset) - 1, 0)
        end = self.bases[i] if self.batches else 0
        del self.batches[i:], self.bases[i:], self.values[end:]
        self.epochs.truncate_from_end(end)
        self.low_water = min(self.low_water, end)
        self.flipped = {o for o in self.flipped if o < end}

    def flip(self, index: int) -> int:
        """Bit rot in batch ``index``: its values change in place and its digest fails from
        now on. Returns the batch's base offset."""
        batch = self.batches[index]
        bad = tuple(b"\xff" + v for v in batch.values)
        self.batches[index] = replace(batch, values=bad)
        self.values[batch.base_offset : batch.last_offset + 1] = bad
        self.flipped.add(batch.base_offset)
        return batch.base_offset

    def first_flipped(self, start: int, end: int) -> int | None:
        """Base offset of the first flipped batch holding an offset in [start, end), or None."""
        found = None
        for base in self.flipped:
            i = bisect.bisect_left(self.bases, base)
            if base < end and self.batches[i].last_offset >= start:
                found = base if found is None else min(found, base)
        return found

    def read(self, offset: int, max_batches: int) -> tuple[SimBatch, ...]:
        i = bisect.bisect_left(self.bases, offset)
        return tuple(self.batches[i : i + max_batches])

    def batch_headers(self, from_offset: int | None = None):
        offset = 0 if from_offset is None else from_offset
        i = max(bisect.bisect_right(self.bases, offset) - 1, 0)
        return iter(self.batches[i:])


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
        self.log = MemLog()
        self.hw_checkpoint = 0
        self.snapshots: dict[int, bytes] = {}
        self.reset_volatile()

    def reset_volatile(self) -> None:
        self.meta: PartitionState | None = None
        self.leader: LeaderReplica | None = None
        self.follow: FollowState | None = None
        self.hw = min(self.hw_checkpoint, self.log.log_end_offset)
        self.pstate: ProducerStateManager = rebuild_from_log(self.log, self.snapshots)
        self.last_snapshot = self.pstate.map_end_offset
        self.parked: dict[
            int, tuple[str, int, int]
        ] = {}  # purgatory key -> (client, attempt, base)
        self.next_hb_ms = 0
        self.next_checkpoint_ms = 0
        self.damage_acked = False  # the controller answered our ReplicaDamage with NONE
        self.next_damage_ms = 0

    def truncate(self, offset: int) -> None:
        log = self.log
        # epochs starting at the truncation point hold no batches (e.g. the entry a former
        # leader assigned at its log end): drop them too, or the follower would keep
        # announcing an epoch the leader never had (an endless KIP-320 divergence loop)
        log.epochs.truncate_from_end(offset)
        if offset >= log.log_end_offset:
            return
        log.truncate_to(offset)
        end = log.log_end_offset
        self.hw = min(self.hw, end)
        for o in [o for o in self.snapshots if o > end]:
            del self.snapshots[o]
        if not self.pstate.truncate_to(end):
            self.pstate = rebuild_from_log(log, self.snapshots)
        self.last_snapshot = min(self.last_snapshot, end)

    def appended(self, batch: SimBatch, snapshot_every: int) -> None:
        self.pstate.update_from_header(batch)
        if self.pstate.map_end_offset - self.last_snapshot >= snapshot_every:
            self.snapshots[self.pstate.map_end_offset] = self.pstate.snapshot()
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
