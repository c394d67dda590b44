"""Seeded deterministic simulation of one partition replicated on 3 brokers (ring 2).

The pure cores run as Kafka runs them: ``LeaderReplica`` on the leader (ISR, high watermark,
acks=all purgatory), ``follower_truncation`` on followers (KIP-101/279, plus the KIP-320
divergence check on fetch), ``ProducerStateManager`` for idempotence (maintained on every
replica, snapshotted, rebuilt from snapshot + log on promotion and restart), and a controller
model deciding with ``election`` (fencing on missed heartbeats, AlterPartition, preferred
leader election, ``on_replica_damage``). Everything talks over an in-memory network with a virtual clock; one
seeded ``random.Random`` drives message delays, loss (reordering between brokers), fault
timing and the workload, so a seed replays exactly.

Faults: broker crashes and restarts (leader, follower, fast double failover: a follower
restart followed at once by a leader crash), message loss / delay / reordering between
brokers and controller, partitions (a broker cut off from everyone, or one broker-broker link
cut), client connection breaks (a client link is TCP-like: FIFO, and a drop fails every
request in flight on it), producer restarts (epoch bumps), and in half the seeds a spare
broker 4 and reassignments of the partition to random 3-broker targets (add, wait for the
ISR, move the leader, remove), and damage (replication_damage.py): crashes whose recovery
cuts the log short at a damaged batch, and bit flips in committed batches at rest, found on
read or by a scrubber; the damaged replica reports, heals or takes the partition offline.
Workload: two idempotent producers with acks=all,
min.insync.replicas=2, up to 5 batches in flight, retries forever with the same sequence
(sometimes abandoning the last batch after a definite rejection, a ``fail`` in the history);
a consumer in assign mode polling whichever broker believes it leads, up to its high
watermark.

Checked after every step: ``ReplicationChecker`` (one leader per epoch, HW monotonic per
leader epoch, committed data never changes on any replica, every undamaged ISR member holds
all committed data, so does every new leader). After the fault phase every fault heals; the
partition must converge (all 3 replicas in the ISR with identical logs, no damage left,
every produce answered) within a bound; then the log is drained and ``tests.history.check``
must find nothing lost, duplicated, reordered, unexpected or read after a definite failure.
Or it ends offline because its last in-sync replica is damaged (``Stats.offline_damaged``):
then the committed log as the leaders' high watermarks showed it is drained instead.

Reproduce one seed (printed by any failure)::

    python -m tests.sim.replication_sim --seed 1234
    python -m tests.sim.replication_sim --seeds 0:500            # a sweep with stats
    python -m tests.sim.replication_sim --seeds 0:200 --variant unclean
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import sys
import time
from dataclasses import dataclass

from rillet.coordinator import election as E
from rillet.coordinator import replication as R

from ..history import History, check
from .replication_clients import ClientsMixin
from .replication_controller import ControllerMixin
from .replication_damage import DamageMixin
from .replication_nodes import NodesMixin
from .replication_world import (
    _MSG,
    _RESTART,
    _TICK,
    BROKERS,
    CONTROLLER,
    DEFAULT_STEPS,
    LAG_MS,
    LIVENESS_BOUND_MS,
    MIN_INSYNC,
    PARTITION,
    SPARE,
    VARIANTS,
    InvariantViolation,
    ReplicationChecker,
    SimBroker,
    SimProducer,
)


class SimFailure(AssertionError):
    """A seed failed; the message ends with a one-line reproducer."""


@dataclass
class Stats:
    seed: int
    steps: int = 0
    delivered: int = 0
    dropped: int = 0
    crashes: int = 0
    damaged: int = 0  # crashes that came back with a log cut short (and reported damage)
    flips: int = 0  # batches whose bits flipped at rest
    damage_reports: int = 0  # damaged batches found (recovery, read or scrubber)
    found_by_log: int = 0  # ... of them, by the log store itself (recovery, verify, scrub)
    corrupt_fetched: int = 0  # fetched batches a follower's append refused (bad digest)
    healed: int = 0  # damaged replicas that truncated and re-fetched
    offline_damaged: int = 0  # 1 if the seed ended offline: its last in-sync replica damaged
    damage_lost: int = 0  # committed records no replica holds any more (offline seeds)
    leader_changes: int = 0
    reassignments: int = 0
    acked: int = 0
    failed: int = 0
    read: int = 0
    sim_ms: int = 0


DAMAGE_SHARE = float(os.environ.get("RILLET_REPL_DAMAGE_SHARE", "0.12"))  # of all faults


class ReplicationSimulation(ControllerMixin, NodesMixin, ClientsMixin, DamageMixin):
    def __init__(self, seed: int, steps: int = DEFAULT_STEPS, *, variant: str = "") -> None:
        if variant and variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")
        self.seed, self.steps, self.variant = seed, steps, variant
        self.rng = rng = random.Random(seed)
        self.loss = rng.choice((0.0, 0.01, 0.05, 0.15))
        self.max_delay = rng.choice((1, 3, 10, 30))
        self.fault_rate = rng.choice((0.003, 0.01, 0.03))
        self.produce_rate = rng.choice((0.2, 0.5, 0.9))
        self.max_fetch_batches = rng.choice((1, 2, 8))
        self.snapshot_every = rng.choice((1, 4, 16))
        self.config = R.ReplicationConfig(LAG_MS, MIN_INSYNC, 120)
        self.now = 0
        self.queue: list = []
        self._seq = 0
        self._req = 0
        self.blocked: set[tuple[object, object]] = set()
        self.fifo_at: dict[tuple[object, object], int] = {}
        self.conn: dict[tuple[str, object], int] = {}  # client connection generations
        # half the seeds have a spare broker 4 and move the partition around (reassignment)
        self.reassign = rng.random() < 0.5
        self.ids = BROKERS + ((SPARE,) if self.reassign else ())
        self.brokers = {b: SimBroker(b) for b in self.ids}
        self._controller_init()
        self.producers = {name: SimProducer(name, 1000 + i) for i, name in enumerate(("p1", "p2"))}
        self.history = History()
        self.position = 0
        self.checker = ReplicationChecker()
        self.stats = Stats(seed)
        self.producing = True

    # ------------------------------------------------------------------------ running

    def reproducer(self) -> str:
        v = f" --variant {self.variant}" if self.variant else ""
        return f"python -m tests.sim.replication_sim --seed {self.seed} --steps {self.steps}{v}"

    def run(self) -> Stats:
        try:
            self._run()
        except (InvariantViolation, AssertionError) as exc:
            if isinstance(exc, SimFailure):
                raise
            raise SimFailure(
                f"seed {self.seed}: {exc} (at t={self.now} ms, step {self.stats.steps})\n"
                f"reproduce: {self.reproducer()}"
            ) from exc
        return self.stats

    def _run(self) -> None:
        for b in self.brokers.values():
            self._deliver_meta(b)
            self._push(self.now + b.id, _TICK, b.id)
        self._push(self.now, _TICK, CONTROLLER)
        for name in self.producers:
            self._push(self.now, _TICK, name)
        for _ in range(self.steps):
            if self.rng.random() < self.fault_rate:
                self._fault()
            self._step()
        self._heal()
        deadline = self.now + LIVENESS_BOUND_MS
        while not self._converged():
            if self._offline_damaged():
                self.stats.offline_damaged = 1
                break
            if self.now > deadline:
                raise SimFailure(
                    f"seed {self.seed}: no convergence within {LIVENESS_BOUND_MS} ms after "
                    f"healing: state {self.state}, LEOs "
                    f"{[(b.id, b.log.log_end_offset, b.hw) for b in self.brokers.values()]}, "
                    f"unanswered {[len(p.batches) for p in self.producers.values()]}\n"
                    f"reproduce: {self.reproducer()}"
                )
            self._step()
        self._final_check()

    def _step(self) -> None:
        if not self.queue:
            return
        at, _, kind, payload = heapq.heappop(self.queue)
        self.now = max(self.now, at)
        self.stats.steps += 1
        if kind == _MSG:
            self._deliver(*payload)
        elif kind == _TICK:
            self._tick(payload)
        else:
            self._restart(payload)
        # An ISR member that crashed, or restarted and is not registered yet, is about to be
        # fenced (a new incarnation is fenced at once): it can no longer be elected, so its
        # log, which a damaged crash may have cut short, need not hold the committed data.
        # Nor need a damaged one: it refuses leadership until it has healed, and is never
        # elected once the controller knows (the last one standing takes the partition
        # offline); becoming leader, a replica must hold everything (checker.became_leader).
        registered = tuple(
            r
            for r in self.state.isr
            if (b := self.brokers[r]).alive
            and self.image.brokers[r].incarnation == str(b.incarnation)
            and b.damage is None
            and r not in self.state.damaged
        )
        self.checker.check(self.brokers, registered)

    def _push(self, at: int, kind: int, payload) -> None:
        self._seq += 1
        heapq.heappush(self.queue, (at, self._seq, kind, payload))

    # ------------------------------------------------------------------------ network

    def _send(self, src, dst, msg: tuple) -> None:
        if isinstance(src, str) or isinstance(dst, str):  # a client connection: TCP-like
            link = (src, dst) if isinstance(src, str) else (dst, src)
            if (src, dst) in self.blocked:
                self.stats.dropped += 1
                self._break(*link)
                return
            at = max(
                self.now + self.rng.randint(1, self.max_delay), self.fifo_at.get((src, dst), 0)
            )
            self.fifo_at[(src, dst)] = at  # FIFO per direction
            self._push(at, _MSG, (src, dst, msg, self.conn.get(link, 0)))
            return
        if (src, dst) in self.blocked or self.rng.random() < self.loss:
            self.stats.dropped += 1
            return
        self._push(self.now + self.rng.randint(1, self.max_delay), _MSG, (src, dst, msg, 0))

    def _break(self, client: str, broker) -> None:
        """A client connection fails: everything in flight on it is lost, and the client
        learns it at once (its requests on it fail with an unknown outcome)."""
        self.conn[(client, broker)] = self.conn.get((client, broker), 0) + 1
        self._disconnect(client, broker)

    def _deliver(self, src, dst, msg: tuple, conn: int) -> None:
        if isinstance(src, str) or isinstance(dst, str):
            link = (src, dst) if isinstance(src, str) else (dst, src)
            if conn != self.conn.get(link, 0):
                self.stats.dropped += 1  # sent on a connection that has since broken
                return
            if (src, dst) in self.blocked or (
                isinstance(dst, int) and dst != CONTROLLER and not self.brokers[dst].alive
            ):
                self.stats.dropped += 1
                self._break(*link)
                return
        elif (src, dst) in self.blocked:
            self.stats.dropped += 1
            return
        self.stats.delivered += 1
        if dst == CONTROLLER:
            self._controller_receive(src, msg)
        elif isinstance(dst, str):
            self._producer_receive(self.producers[dst], src, msg)
        else:
            b = self.brokers[dst]
            if b.alive:
                self._broker_receive(b, src, msg)

    # --------------------------------------------------------------------------- faults

    def _crash(self, b: SimBroker, damaged: bool = False) -> None:
        """Crash ``b``; with ``damaged`` its log comes back cut short, as recovery leaves it
        after a torn write, a zero-filled tail or flipped bytes in the last batches (records
        the ISR acknowledged may be gone from it: the controller must never let it lead or
        count them until it has caught up again)."""
        if not b.alive:
            return
        self.stats.crashes += 1
        b.damaged_on_restart = damaged
        for client in self.producers:
            self._break(client, b.id)
        b.alive = False
        b.incarnation += 1
        b.leader = None
        self._push(self.now + self.rng.randint(30, 600), _RESTART, b.id)

    def _restart(self, broker: int) -> None:
        b = self.brokers[broker]
        if b.alive:
            return
        self._reopen(b)
        b.alive = True
        b.reset_volatile()
        b.next_hb_ms = self.now
        self._push(self.now, _TICK, (b.id, b.incarnation))

    def _fault(self) -> None:
        rng = self.rng
        # damage is rarer than the other faults: a damaged last in-sync replica ends the seed
        # offline, and the seeds that converge check more
        if rng.random() < DAMAGE_SHARE:
            kind = rng.choice(("damaged", "damaged-double", "flip"))
        else:
            kind = rng.choice(
                ("crash", "crash-leader", "double", "isolate", "cut", "heal", "client", "bump")
            )
        alive = [b for b in self.brokers.values() if b.alive]
        leader = self.brokers.get(self.state.leader)
        if kind == "crash" and len(alive) > 1:
            self._crash(rng.choice(alive))
        elif kind == "crash-leader" and leader is not None and len(alive) > 1:
            self._crash(leader)
        elif kind in ("double", "damaged-double") and leader is not None:
            # KIP-101's fast double failover: a follower bounces, then the leader dies; with
            # damage the follower comes back at once with a log recovery cut short
            follower = rng.choice([b for b in self.brokers.values() if b.id != leader.id])
            self._crash(follower, damaged=kind == "damaged-double")
            self._restart(follower.id)
            self._crash(leader)
        elif kind == "damaged" and len(alive) > 1:
            # any replica (often the leader) dies and restarts fast with a shortened log
            victim = leader if leader is not None and rng.random() < 0.5 else rng.choice(alive)
            self._crash(victim, damaged=True)
            self._push(self.now + rng.randint(1, 50), _RESTART, victim.id)
        elif kind == "flip":
            self._flip(rng.choice(list(self.brokers.values())))
        elif kind == "isolate":
            victim = rng.choice(self.ids)
            others = [CONTROLLER, *self.ids, *self.producers]
            self.blocked |= {(victim, o) for o in others} | {(o, victim) for o in others}
        elif kind == "cut":
            a, c = rng.sample(self.ids, 2)
            self.blocked |= {(a, c), (c, a)}
        elif kind == "heal":
            self.blocked.clear()
        elif kind == "bump":
            self._bump_epoch(self.producers[rng.choice(list(self.producers))])
        elif kind == "client":
            name = rng.choice(list(self.producers))
            self._break(name, rng.choice(self.ids))

    def _heal(self) -> None:
        self.blocked.clear()
        self.loss = 0.0
        self.producing = False
        for b in self.brokers.values():
            if not b.alive:
                self._restart(b.id)

    # ----------------------------------------------------------------------- the end

    def _converged(self) -> bool:
        st = self.state
        if st.leader == E.NO_LEADER or st.adding_replicas or st.removing_replicas or st.damaged:
            return False
        if any(
            (b := self.brokers[r]).damage is not None
            or b.log.flipped
            or b.log.log.unverified_bytes  # (bytes opened unchecked: the scrubber is not done)
            for r in st.replicas
        ):
            return False
        if set(st.isr) != set(st.replicas):
            return False
        if any(p.batches for p in self.producers.values()):
            return False
        leader = self.brokers[st.leader]
        L = leader.leader
        if L is None or L.leader_epoch != st.leader_epoch or set(L.isr) != set(st.replicas):
            return False
        end = leader.log.log_end_offset
        return L.high_watermark == end and all(
            self.brokers[r].log.log_end_offset == end and self.brokers[r].hw == end
            for r in st.replicas
        )

    def _final_check(self) -> None:
        if self.stats.offline_damaged:
            # The last in-sync replica is damaged: records acknowledged past its damage may
            # exist nowhere else now; the partition says so (offline_reason) instead of
            # serving a log without them. Drain the committed log as every leader's high
            # watermark showed it (the checker's reference): it must hold every acknowledged
            # record once and in order, and agree with what consumers read.
            ref = self.checker.ref
            held = {v for b in self.brokers.values() for v in b.log.values}
            self.stats.damage_lost = sum(1 for v in ref if v not in held)
            self._drain(ref)
            return
        leader = self.brokers[self.state.leader]
        values = leader.log.values
        for b in (self.brokers[r] for r in self.state.replicas):
            if b.log.values != values:
                raise InvariantViolation(
                    f"replica {b.id} differs from leader {leader.id} after convergence"
                )
        self._drain(values)

    def _drain(self, values: list[bytes]) -> None:
        for offset, value in enumerate(values):
            self.history.read("drain", PARTITION, offset, value)
        self.history.drain(PARTITION)
        report = check(self.history)
        self.stats.read = report.read_values
        self.stats.sim_ms = self.now
        if not report.ok:
            raise InvariantViolation(f"history check failed: {report.summary()}")


def run_seed(seed: int, steps: int = DEFAULT_STEPS, **kwargs) -> Stats:
    return ReplicationSimulation(seed, steps, **kwargs).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.sim.replication_sim", description=__doc__
    )
    parser.add_argument("--seed", type=int, help="run one seed")
    parser.add_argument("--seeds", default="0:200", help="a range START:STOP (default 0:200)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--variant", default="", help=f"a deliberately broken system: {VARIANTS}")
    args = parser.parse_args(argv)
    if args.seed is not None:
        seeds = range(args.seed, args.seed + 1)
    else:
        start, stop = (int(x) for x in args.seeds.split(":"))
        seeds = range(start, stop)
    started = time.perf_counter()
    failures = 0
    totals = Stats(-1)
    for seed in seeds:
        try:
            s = run_seed(seed, args.steps, variant=args.variant)
        except SimFailure as exc:
            failures += 1
            print(f"FAIL {exc}", file=sys.stderr)
            continue
        for name in (
            "steps",
            "delivered",
            "dropped",
            "crashes",
            "leader_changes",
            "reassignments",
            "acked",
            "failed",
            "read",
            "damaged",
            "flips",
            "damage_reports",
            "found_by_log",
            "corrupt_fetched",
            "healed",
            "offline_damaged",
            "damage_lost",
        ):
            setattr(totals, name, getattr(totals, name) + getattr(s, name))
    elapsed = time.perf_counter() - started
    print(f"{len(seeds)} seeds, {failures} failed, {elapsed:.1f} s; totals {totals}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
