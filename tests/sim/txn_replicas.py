"""A replicated partition for the transaction simulation (``SimConfig(replicas=2)``).

``ReplicatedPartition`` is a ``SimPartition`` whose log lives on a leader and one follower,
each a real ``PartitionLog`` on its own ``MemFileSystem`` with its own producer state. The
leader appends as in txn_world.py; the follower copies the leader's batches
(``append_replicated``) and builds its producer state and aborted-transaction index from
them (``transactions.apply_replicated``, the follower path of the partition actor). The high
watermark is the smallest log end of the ISR (the follower leaves it when it crashes and
rejoins once caught up); a produce or a marker is answered once below it. Crashes are
process crashes (the page cache survives: durability comes from replication, as Kafka's).

A leader crash with the follower in the ISR fails over: the follower leads at a bumped
leader epoch (what it never got is lost: those writes were never answered), its producer
state is what replication built; the old leader restarts as a follower and truncates where
its log diverges (the new leader's ``epochs.end_offset_for``, KIP-279), its producer state
truncated with it (``ProducerStateManager.truncate_to``; rebuilt from a snapshot and the log
when a cut marker reopens a transaction). Without the follower in the ISR the partition is
unavailable until the leader returns (no unclean election).

The checks that matter here: the LSO never moves back across a failover (the clause of
``last_stable_offset`` for markers not yet below the high watermark), and nothing answered is
lost. Variant "acks-1" (the HW ignores the follower) shows the checks see lost writes.
"""

from __future__ import annotations

from pathlib import Path

from rillet.coordinator.transactions import TopicPartition
from rillet.logstore import producer_state as PS
from rillet.logstore import transactions as T
from rillet.logstore.log import PartitionLog
from rillet.logstore.memfs import MemFileSystem
from rillet.logstore.producer_snapshots import ProducerSnapshots

from .txn_world import LOG_CONFIG, READ_BYTES, TOPIC, SimPartition

FETCH_MS = (5, 150)  # between two fetches of the follower
LEADER_STEP_MS = (1, 10)  # after a write, the leader looks at its ISR


class Replica:
    def __init__(self, index: int, broker: int, now: int) -> None:
        self.broker = broker
        self.fs = MemFileSystem()
        self.directory = Path(f"/broker-{broker}/{TOPIC}-{index}")
        self.up = True
        self.open(now)

    def open(self, now: int) -> None:
        self.log = PartitionLog.open(self.directory, LOG_CONFIG, now, fs=self.fs)
        self.snapshots = ProducerSnapshots(self.fs, self.directory)
        self.snapshots.delete_above(self.log.log_end_offset)
        self.producers = T.load_transaction_state(self.log, self.snapshots.read())
        self.up = True

    def crash(self) -> None:
        self.up = False
        self.log.abandon()

    def truncate_to(self, offset: int) -> bool:
        """True if the producer state had to be rebuilt."""
        self.log.truncate_to(offset)
        self.snapshots.delete_above(offset)
        if not self.producers.truncate_to(offset):  # e.g. a cut marker reopened a transaction
            self.producers = PS.rebuild_from_log(self.log, self.snapshots.read())
            return True
        return False


class ReplicatedPartition(SimPartition):
    def __init__(self, sim, index: int) -> None:  # (SimPartition.__init__ not called)
        self.sim = sim
        self.index = index
        self.name = f"p{index}"
        self.tp = TopicPartition(TOPIC, index)
        self.replicas = [Replica(index, b, sim.now) for b in (0, 1)]
        self.leader = 0
        self.in_isr = True  # is the follower in the ISR?
        self.leader_epoch = 0
        self.up = True
        self.crashes = 0
        self._lead()
        sim.at(sim.rng.randint(*FETCH_MS), self._fetch)

    @property
    def log(self) -> PartitionLog:
        return self.replicas[self.leader].log

    @property
    def producers(self) -> PS.ProducerStateManager:
        return self.replicas[self.leader].producers

    @property
    def follower(self) -> Replica:
        return self.replicas[1 - self.leader]

    @property
    def can_crash(self) -> bool:
        return any(r.up for r in self.replicas)

    @property
    def needs_restart(self) -> bool:
        return not all(r.up for r in self.replicas)

    def _lead(self) -> None:
        """This replica leads (at ``leader_epoch``): fresh volatile state."""
        self.log.epochs.assign(self.leader_epoch, self.log.log_end_offset)
        self.hw = self.log.log_end_offset if not self.in_isr else self._isr_end()
        self.producers.on_high_watermark_updated(self.hw)
        self.acks, self.verifying, self.verified = [], {}, {}
        self.flush_due = False

    def _isr_end(self) -> int:
        ends = [self.log.log_end_offset]
        if self.in_isr and self.sim.cfg.variant != "acks-1":
            ends.append(self.follower.log.log_end_offset)
        return min(ends)

    # ----------------------------------------------------------------------- faults

    def crash(self) -> None:
        rng = self.sim.rng
        victim = rng.choice([r for r in self.replicas if r.up])
        self.crashes += 1
        self.flush_due = False
        victim.crash()
        if victim is not self.replicas[self.leader]:
            self.in_isr = False
            self.sim.trace(f"{self.name}: follower {victim.broker} crashes")
        elif self.follower.up and self.in_isr:
            self.leader = 1 - self.leader
            self.leader_epoch += 1
            self.in_isr = False  # the old leader is down
            self.sim.trace(f"{self.name}: leader crashes, broker {self.leader} leads")
            self.sim.stats["partition failovers"] += 1
            self._lead()
            self.sim.scan(self)  # the checker's view follows the new leader's log
        else:
            self.up = False
            self.sim.trace(f"{self.name}: leader crashes, no replica in the ISR: unavailable")
            return
        self._advance()

    def restart(self) -> None:
        now = self.sim.now
        for r in self.replicas:
            if not r.up:
                r.open(now)
        if not self.up:  # the old leader leads again, in a new epoch
            self.up = True
            self.leader_epoch += 1
            self.in_isr = False
            self._lead()
        self._truncate_follower()
        self._kick()

    def _truncate_follower(self) -> None:
        f = self.follower
        if self.in_isr or not f.up:
            return
        asked = f.log.epochs.latest_epoch
        epoch, end = self.log.epochs.end_offset_for(asked)
        if epoch < 0:
            end = 0  # nothing in common
        elif epoch != asked:
            end = min(end, f.log.epochs.end_offset_for(epoch)[1])
        if end < f.log.log_end_offset:
            self.sim.trace(f"{self.name}: follower {f.broker} truncates to {end}")
            self.sim.stats["follower truncations"] += 1
            if f.truncate_to(end):
                self.sim.stats["follower producer states rebuilt"] += 1

    # ----------------------------------------------------------------- replication

    def _kick(self) -> None:
        """The leader looks at its ISR soon after a write (acks-1: answers it then)."""
        if self.up and not self.flush_due:
            self.flush_due = True
            delay = self.sim.rng.randint(*LEADER_STEP_MS)
            self.sim.at(self.sim.now + delay, self._flush, self.crashes)

    def _flush(self, incarnation: int) -> None:
        if incarnation != self.crashes or not self.up:
            return
        self.flush_due = False
        self.log.flush()  # (not what makes a write durable here: replication is)
        self._advance()

    def _fetch(self) -> None:
        """The follower's fetch loop: copy what the leader has, then the HW may move."""
        self.sim.at(self.sim.now + self.sim.rng.randint(*FETCH_MS), self._fetch)
        f = self.follower
        if not self.up or not f.up:
            return
        while f.log.log_end_offset < self.log.log_end_offset:
            data = self.log.read(f.log.log_end_offset, READ_BYTES)
            if not data:
                raise AssertionError(f"{self.name}: nothing to fetch at {f.log.log_end_offset}")
            f.log.append_replicated(data, self.sim.now)
            T.apply_replicated(f.log, f.producers, data)
        self.in_isr = True
        self._advance()

    def _advance(self) -> None:
        """The HW is the smallest log end of the ISR; the answers below it go out."""
        hw = self._isr_end()
        if hw > self.hw:
            self.hw = hw
            self.producers.on_high_watermark_updated(hw)
        f = self.follower
        if f.up:
            f.producers.on_high_watermark_updated(min(self.hw, f.log.log_end_offset))
        for r in self.replicas:
            if r.up and self.sim.rng.random() < 0.1:
                r.snapshots.write(r.producers, r.log.log_end_offset)
        self._answer_below_hw()
