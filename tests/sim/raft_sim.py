"""Seeded deterministic simulation of a Raft quorum (ring 2 of DESIGN.md's testing).

N ``RaftNode`` cores run over an in-memory network and a virtual clock. One seeded
``random.Random`` drives everything (cluster size, fault rates, message delays, which fault
happens when, every node's election timer), so a seed replays exactly. Faults: crashes
(sometimes in the middle of executing a node's effects) and restarts from what the node had
persisted (``PersistHardState`` / ``FlushLog``), message loss, duplication, reordering (random
delays), partitions (a node isolated then healed, random splits, one-way link cuts), and
forged VoteRequests (``_forge``: from a non-voter, or in a voter's name with a term of
TERM_LIMIT or more, or the target's term + 1; the forger cannot fake a voter's log, so in a
voter's name it claims an empty one). A forged message the core refuses
(``InvalidMessageError``) is dropped, as the controller actor drops it.
After every step ``RaftChecker`` checks the safety invariants; after the fault phase every
fault is healed and the cluster must elect a leader and commit a new proposal on every node
within a bound (liveness).

Reproduce one seed (printed by any failure)::

    python -m tests.sim.raft_sim --seed 1234 --steps 1200
    python -m tests.sim.raft_sim --seeds 0:500          # a sweep, with stats
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rillet.coordinator.raft import (
    TERM_LIMIT,
    ApplyCommitted,
    Effect,
    FlushLog,
    HardState,
    InvalidMessageError,
    MemoryRaftLog,
    NotLeaderError,
    PersistHardState,
    RaftConfig,
    RaftError,
    RaftMessage,
    RaftNode,
    RestoreSnapshot,
    Send,
    TakeSnapshot,
    VoteRequest,
)

from .checker import InvariantViolation, RaftChecker
from .machines import HashChainMachine

DEFAULT_STEPS = 1200
ELECTION_TIMEOUT_MS = 150
HEARTBEAT_MS = 30
LIVENESS_BOUND_MS = 15_000
CATCH_UP_MS_PER_ENTRY = 150  # a far-behind follower may catch up one entry per round trip
MAX_IN_FLIGHT = 40  # uncommitted proposals a leader accepts from the simulated client

NodeFactory = Callable[..., RaftNode]


class SimFailure(AssertionError):
    """A seed failed; the message ends with a one-line reproducer."""


@dataclass
class SimStats:
    seed: int
    nodes: int
    steps: int = 0
    delivered: int = 0
    dropped: int = 0
    crashes: int = 0
    restarts: int = 0
    partitions: int = 0
    proposals: int = 0
    committed: int = 0
    max_term: int = 0
    snapshots_installed: int = 0
    liveness_ms: int = 0
    forged: int = 0
    forged_refused: int = 0


@dataclass
class SimNode:
    node_id: int
    disk_log: MemoryRaftLog = field(default_factory=MemoryRaftLog)
    hard: HardState = field(default_factory=HardState)
    raft: RaftNode | None = None
    log: MemoryRaftLog | None = None
    machine: HashChainMachine = field(default_factory=HashChainMachine)
    applied: int = 0
    incarnation: int = 0
    tick_at: int = -1
    tick_gen: int = 0


@dataclass(frozen=True)
class Faults:
    """Per-seed fault profile (drawn from the seed)."""

    loss: float
    duplicate: float
    max_delay_ms: int
    fault_rate: float
    mid_effect_crash: float
    propose_rate: float


class RaftSimulation:
    def __init__(
        self,
        seed: int,
        steps: int = DEFAULT_STEPS,
        *,
        nodes: int | None = None,
        node_factory: NodeFactory = RaftNode,
        variant: str = "",
        mid_effect_crash: float | None = None,
        forge_rate: float = 0.0,
    ) -> None:
        self.seed = seed
        self.forge_rate = forge_rate  # extra forged VoteRequests per step (beyond the nemesis)
        self.steps = steps
        self.variant = variant
        self.rng = rng = random.Random(seed)
        n = nodes if nodes is not None else rng.choice((3, 3, 3, 5, 5, 1))
        self.config = RaftConfig(
            election_timeout_ms=ELECTION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            max_entries_per_request=rng.choice((1, 3, 16)),
            snapshot_threshold=rng.choice((0, 4, 12, 40)),
            # KRaft's fetch timeout in a third of the runs (from its own generator: the
            # other choices of a seed stay what they were)
            fetch_timeout_ms=random.Random(seed ^ 0x5EED).choice((None, None, 2 * ELECTION_TIMEOUT_MS)),
        )
        self.faults = Faults(
            loss=rng.choice((0.0, 0.01, 0.05, 0.2)),
            duplicate=rng.choice((0.0, 0.02, 0.1)),
            max_delay_ms=rng.choice((1, 5, 20, 60)),
            fault_rate=rng.choice((0.0, 0.004, 0.01, 0.03)),
            mid_effect_crash=rng.choice((0.0, 0.002, 0.01)),
            propose_rate=rng.choice((0.02, 0.08, 0.2)),
        )
        self.loss, self.duplicate = self.faults.loss, self.faults.duplicate
        self.mid_effect_crash = self.faults.mid_effect_crash
        self.mid_effect_override = mid_effect_crash
        if mid_effect_crash is not None:  # a targeted sweep (see test_checker_catches_...)
            self.mid_effect_crash = mid_effect_crash
        self.node_factory = node_factory
        self.voters = tuple(range(1, n + 1))
        self.nodes = {i: SimNode(i) for i in self.voters}
        self.blocked: set[tuple[int, int]] = set()
        self.checker = RaftChecker(self._durable_copies)
        self.stats = SimStats(seed, n)
        self.now = 0
        self._events: list[tuple[int, int, int, object, int]] = []
        self._seq = 0
        self._proposal = 0
        for sn in self.nodes.values():
            self._start(sn)

    # -- reproducibility
    def reproducer(self) -> str:
        extra = f" --variant {self.variant}" if self.variant else ""
        if self.mid_effect_override is not None:
            extra += f" --mid-effect-crash {self.mid_effect_override}"
        if self.forge_rate:
            extra += f" --forge-rate {self.forge_rate}"
        return f"python -m tests.sim.raft_sim --seed {self.seed} --steps {self.steps}{extra}"

    def run(self) -> SimStats:
        try:
            self._run()
        except (InvariantViolation, RaftError, AssertionError) as exc:
            if isinstance(exc, SimFailure):
                raise
            raise SimFailure(
                f"seed {self.seed} failed at step {self.stats.steps} (t={self.now} ms, "
                f"{len(self.voters)} nodes, {self.faults}): {type(exc).__name__}: {exc}\n"
                f"reproduce: {self.reproducer()}"
            ) from exc
        return self.stats

    def _run(self) -> None:
        rng = self.rng
        for _ in range(self.steps):
            if rng.random() < self.faults.fault_rate:
                self._nemesis()
            if rng.random() < self.faults.propose_rate:
                self._propose_somewhere()
            if self.forge_rate and rng.random() < self.forge_rate:
                self._forge()
            self._step()
        self._liveness()
        self.stats.committed = self.checker.commit_index
        self.stats.max_term = max(sn.hard.term for sn in self.nodes.values())

    # -- node lifecycle
    def _start(self, sn: SimNode) -> None:
        sn.incarnation += 1
        sn.log = sn.disk_log.durable()
        sn.machine = HashChainMachine()
        sn.applied = 0
        node_rng = random.Random(f"{self.seed}/{sn.node_id}/{sn.incarnation}")
        sn.raft = self.node_factory(
            sn.node_id,
            self.voters,
            sn.log,
            rng=node_rng,
            now_ms=self.now,
            hard_state=sn.hard,
            config=self.config,
        )
        self._execute(sn, sn.raft.start())
        self.checker.restarted(sn.node_id, sn.raft)
        self._observe(sn)

    def _crash(self, sn: SimNode) -> None:
        assert sn.log is not None
        sn.disk_log = sn.log.durable()  # only what was flushed survives
        sn.raft = None
        sn.log = None
        sn.tick_at = -1
        self.stats.crashes += 1

    def _restart(self, sn: SimNode) -> None:
        self._start(sn)
        self.stats.restarts += 1

    def _durable_copies(self, index: int, term: int) -> tuple[int, int]:
        copies = sum(
            (sn.log if sn.log is not None else sn.disk_log).durably_holds(index, term)
            for sn in self.nodes.values()
        )
        return copies, len(self.nodes)

    # -- effects
    def _execute(self, sn: SimNode, effects: list[Effect], crash_after: int = -1) -> None:
        for i, effect in enumerate(effects):
            if i == crash_after:
                self._crash(sn)
                return
            if isinstance(effect, Send):
                self._send(effect.message)
            elif isinstance(effect, PersistHardState):
                old = sn.hard
                if effect.term >= TERM_LIMIT:
                    raise InvariantViolation(
                        f"node {sn.node_id} persisted term {effect.term}: it could never "
                        f"start another election (terms are int64)"
                    )
                if effect.term < old.term or (
                    effect.term == old.term and old.voted_for not in (None, effect.voted_for)
                ):
                    raise InvariantViolation(
                        f"node {sn.node_id} persisted {effect} over {old}: a term went back "
                        f"or a second vote in one term"
                    )
                sn.hard = HardState(effect.term, effect.voted_for)
            elif isinstance(effect, FlushLog):
                sn.log.flush()
            elif isinstance(effect, ApplyCommitted):
                if effect.first_index != sn.applied + 1:
                    raise InvariantViolation(
                        f"node {sn.node_id} asked to apply from {effect.first_index} "
                        f"after {sn.applied}"
                    )
                for entry in effect.entries:
                    if not entry.control:
                        sn.machine.apply(entry.payload)
                sn.applied = effect.last_index
            elif isinstance(effect, TakeSnapshot):
                if effect.index != sn.applied:
                    raise InvariantViolation(f"snapshot asked at {effect.index} != {sn.applied}")
                self._observe(sn)  # check the entries before the log prefix goes
                self._execute(sn, sn.raft.snapshot_taken(effect.index, sn.machine.snapshot()))
            elif isinstance(effect, RestoreSnapshot):
                if sn.raft.is_leader:
                    raise InvariantViolation(f"leader {sn.node_id} asked to load a snapshot")
                sn.machine.restore(effect.snapshot.data)
                sn.applied = effect.snapshot.index
                self.stats.snapshots_installed += 1
            else:
                raise AssertionError(f"unknown effect {effect!r}")

    def _send(self, message: RaftMessage) -> None:
        if not 0 <= message.term < 1 << 63:
            raise InvariantViolation(f"{message} has a term the int64 wire cannot carry")
        rng = self.rng
        if rng.random() < self.loss or (message.src, message.dst) in self.blocked:
            self.stats.dropped += 1
            return
        copies = 2 if rng.random() < self.duplicate else 1
        for _ in range(copies):
            self._push(self.now + rng.randint(1, self.faults.max_delay_ms), 0, message)

    def _push(self, at: int, kind: int, payload: object, gen: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, kind, payload, gen))

    def _schedule_tick(self, sn: SimNode) -> None:
        """Keep one pending timer per node, at or before its next deadline. A deadline that
        moved later (a follower heard from its leader) keeps the earlier timer, which then
        fires as a harmless no-op tick and reschedules."""
        if sn.raft is None:
            return
        at = max(sn.raft.next_tick_ms, self.now)
        if sn.tick_at < 0 or at < sn.tick_at:
            sn.tick_at = at
            sn.tick_gen += 1
            self._push(at, 1, sn.node_id, sn.tick_gen)

    def _observe(self, sn: SimNode) -> None:
        if sn.raft is not None:
            self.checker.observe(sn.node_id, sn.raft, sn.machine.digest, sn.applied)
            self._schedule_tick(sn)

    # -- one step: the next event (a delivery or a timer)
    def _step(self) -> None:
        self.stats.steps += 1
        while self._events:
            at, _, kind, payload, gen = heapq.heappop(self._events)
            self.now = max(self.now, at)
            if kind == 1:
                sn = self.nodes[payload]
                if sn.raft is None or gen != sn.tick_gen:
                    continue  # superseded timer
                sn.tick_at = -1
                self._execute(sn, sn.raft.tick(self.now))
                self._observe(sn)
                return
            message: RaftMessage = payload
            sn = self.nodes[message.dst]
            if kind == 2:  # forged: the core must refuse it or survive it
                if sn.raft is None:
                    continue
                try:
                    effects = sn.raft.handle(message, self.now)
                except InvalidMessageError:
                    self.stats.forged_refused += 1
                    continue
                self._execute(sn, effects)
                self._observe(sn)
                return
            if sn.raft is None or (message.src, message.dst) in self.blocked:
                self.stats.dropped += 1
                continue
            self.stats.delivered += 1
            effects = sn.raft.handle(message, self.now)
            crash_after = -1
            if effects and self.rng.random() < self.mid_effect_crash:
                crash_after = self.rng.randrange(len(effects))
            self._execute(sn, effects, crash_after)
            self._observe(sn)
            return

    # -- client and nemesis
    def _propose(self, sn: SimNode) -> tuple[int, int, bytes] | None:
        if sn.raft is None:
            return None
        self._proposal += 1
        payload = f"k{self._proposal % 7}=v{self._proposal}".encode()
        try:
            index, effects = sn.raft.propose(payload, self.now)
        except NotLeaderError:
            return None
        self.stats.proposals += 1
        term = sn.raft.term
        self._execute(sn, effects)
        self._observe(sn)
        return index, term, payload

    def _propose_somewhere(self) -> None:
        leaders = [sn for sn in self.nodes.values() if sn.raft is not None and sn.raft.is_leader]
        target = self.rng.choice(leaders or list(self.nodes.values()))
        raft = target.raft
        if raft is not None and raft.log.last_index - raft.commit_index >= MAX_IN_FLIGHT:
            return  # a client with bounded in-flight requests waits for commits
        self._propose(target)

    def _nemesis(self) -> None:
        rng = self.rng
        live = [sn for sn in self.nodes.values() if sn.raft is not None]
        dead = [sn for sn in self.nodes.values() if sn.raft is None]
        action = rng.choice(
            ("crash", "restart", "restart", "isolate", "split", "cut", "heal", "resign", "forge")
        )
        if action == "crash" and live:
            self._crash(rng.choice(live))
        elif action == "restart" and dead:
            self._restart(rng.choice(dead))
        elif action == "isolate":
            victim = rng.choice(self.voters)
            for other in self.voters:
                if other != victim:
                    self.blocked |= {(victim, other), (other, victim)}
            self.stats.partitions += 1
        elif action == "split":
            side = {v for v in self.voters if rng.random() < 0.5}
            self.blocked |= {
                (a, b) for a in self.voters for b in self.voters if (a in side) != (b in side)
            }
            self.stats.partitions += 1
        elif action == "cut" and len(self.voters) > 1:
            a, b = rng.sample(self.voters, 2)
            self.blocked.add((a, b))
            self.stats.partitions += 1
        elif action == "heal":
            self.blocked.clear()
        elif action == "resign":
            for sn in live:
                if sn.raft.is_leader:
                    self._execute(sn, sn.raft.resign(self.now))
                    self._observe(sn)
        elif action == "forge":
            for _ in range(rng.randint(1, 5)):
                self._forge()

    def _forge(self) -> None:
        """One forged VoteRequest to a random node, delivered soon (never lost)."""
        rng = self.rng
        target = self.nodes[rng.choice(self.voters)]
        term = target.raft.term if target.raft is not None else target.hard.term
        kind = rng.choice(("non-voter", "huge", "next"))
        huge = rng.choice((TERM_LIMIT, TERM_LIMIT + 1, (1 << 63) - 1))
        if kind == "non-voter":
            src = len(self.voters) + rng.randint(1, 3)
            last_index = last_term = rng.choice((0, 1 << 40))
            term = rng.choice((term + 1, huge))
        else:  # in a voter's name; it cannot fake that voter's log: it claims an empty one
            src = rng.choice([v for v in self.voters if v != target.node_id] or [target.node_id])
            last_index = last_term = 0
            term = huge if kind == "huge" else term + rng.randint(1, 2)
        message = VoteRequest(
            src=src,
            dst=target.node_id,
            term=term,
            last_log_index=last_index,
            last_log_term=last_term,
            pre_vote=rng.random() < 0.3,
        )
        self.stats.forged += 1
        self._push(self.now + rng.randint(1, self.faults.max_delay_ms), 2, message)

    def _liveness(self) -> None:
        """Heal everything. Within LIVENESS_BOUND_MS a leader must emerge and commit a new
        proposal; then every node must reach that commit index, allowing for catch-up at no
        less than one entry per CATCH_UP_MS_PER_ENTRY for the entries it lacked at the heal."""
        self.blocked.clear()
        self.loss = self.duplicate = self.mid_effect_crash = 0.0
        for sn in self.nodes.values():
            if sn.raft is None:
                self._restart(sn)
        healed_at = self.now
        lag = self.checker.commit_index - min(sn.raft.commit_index for sn in self.nodes.values())
        deadline = healed_at + LIVENESS_BOUND_MS
        pending: list[tuple[int, int, bytes]] = []
        next_proposal = healed_at
        committed = 0
        while self.now < deadline:
            if not committed and self.now >= next_proposal:  # one probe per leader term
                next_proposal = self.now + ELECTION_TIMEOUT_MS
                for sn in self.nodes.values():
                    if sn.raft.is_leader and all(t != sn.raft.term for _, t, _ in pending):
                        proposed = self._propose(sn)
                        if proposed:
                            pending.append(proposed)
            ref = self.checker.ref
            for index, term, payload in pending:
                if not committed and len(ref) >= index and ref[index - 1].term == term:
                    if ref[index - 1].payload != payload:
                        raise InvariantViolation(f"proposal at {index} replaced in its own term")
                    committed = index
                    deadline = self.now + LIVENESS_BOUND_MS + CATCH_UP_MS_PER_ENTRY * lag
            if committed and all(sn.raft.commit_index >= committed for sn in self.nodes.values()):
                self.stats.liveness_ms = self.now - healed_at
                return
            if not self._events:
                break
            self._step()
        what = "every node to reach it" if committed else "a leader to commit a new entry"
        raise SimFailure(
            f"seed {self.seed}: liveness: waited in vain for {what} after healing at "
            f"t={healed_at} ms (lag {lag}; nodes: "
            f"{[(sn.node_id, sn.raft.role, sn.raft.term, sn.raft.commit_index) for sn in self.nodes.values()]})\n"
            f"reproduce: {self.reproducer()}"
        )


def run_seed(seed: int, steps: int = DEFAULT_STEPS, **kwargs) -> SimStats:
    return RaftSimulation(seed, steps, **kwargs).run()


def run_seeds(seeds: range, steps: int = DEFAULT_STEPS, **kwargs) -> list[SimStats]:
    return [run_seed(seed, steps, **kwargs) for seed in seeds]


def _variants() -> dict[str, NodeFactory]:
    from . import variants

    return variants.VARIANTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.raft_sim", description=__doc__)
    parser.add_argument("--seed", type=int, help="run one seed")
    parser.add_argument("--seeds", default="0:200", help="a range START:STOP (default 0:200)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--variant", default="", help="a deliberately broken node (see variants)")
    parser.add_argument("--mid-effect-crash", type=float, help="override the crash rate")
    parser.add_argument("--forge-rate", type=float, default=0.0, help="forged votes per step")
    args = parser.parse_args(argv)
    factory = _variants()[args.variant] if args.variant else RaftNode
    if args.seed is not None:
        seeds = range(args.seed, args.seed + 1)
    else:
        start, stop = (int(x) for x in args.seeds.split(":"))
        seeds = range(start, stop)
    started = time.perf_counter()
    totals = SimStats(seed=-1, nodes=0)
    failures = 0
    for seed in seeds:
        try:
            s = run_seed(
                seed,
                args.steps,
                node_factory=factory,
                variant=args.variant,
                mid_effect_crash=args.mid_effect_crash,
                forge_rate=args.forge_rate,
            )
        except SimFailure as exc:
            failures += 1
            print(f"FAIL {exc}", file=sys.stderr)
            continue
        for name in (
            "steps",
            "delivered",
            "dropped",
            "crashes",
            "restarts",
            "partitions",
            "proposals",
            "committed",
            "snapshots_installed",
            "forged",
            "forged_refused",
        ):
            setattr(totals, name, getattr(totals, name) + getattr(s, name))
        totals.max_term = max(totals.max_term, s.max_term)
        totals.liveness_ms = max(totals.liveness_ms, s.liveness_ms)
        if len(seeds) == 1:
            print(s)
    elapsed = time.perf_counter() - started
    print(
        f"{len(seeds)} seeds, {failures} failed, {elapsed:.1f}s; totals: steps={totals.steps} "
        f"delivered={totals.delivered} dropped={totals.dropped} crashes={totals.crashes} "
        f"restarts={totals.restarts} partitions={totals.partitions} "
        f"proposals={totals.proposals} committed={totals.committed} "
        f"snapshots_installed={totals.snapshots_installed} max_term={totals.max_term} "
        f"forged={totals.forged} forged_refused={totals.forged_refused} "
        f"worst_liveness_ms={totals.liveness_ms}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
