"""Seeded simulation of transactions (issue #14) over the shipped cores, on a virtual clock.

The world (txn_world.py, txn_coordinator.py, txn_clients.py; the checks in txn_checks.py): transactional producers (a few transactional ids,
some shared by two instances that fence each other, some paused into zombies, some killed)
talk over a lossy, reordering, duplicating network to one ``TransactionCoordinator`` (records
in a simulated ``__transaction_state``; it crashes and reloads by replay at a bumped
coordinator epoch) and to partition leaders (real ``PartitionLog`` on ``MemFileSystem``,
``append_validated(verified=)`` asking the coordinator, ``append_marker``; they crash and
reopen with ``load_transaction_state``). A read_committed reader per partition reads below
the LSO and drops aborted transactions with the aborted-transaction index, by the client's
rule (docs/transactions.md).

Invariants, after every step:
- no two producer instances are ever given the same (producer id, epoch);
- replaying the records of ``__transaction_state`` gives the live coordinator state (and the
  state a reload builds from the compacted records);
- fencing: a transactional batch of producer epoch e is never appended to a partition after
  a marker of a later epoch of that producer, nor once the coordinator completed (pid, e),
  nor once it decided to commit (pid, e) (a committed transaction gains no data); one
  partition never holds the open data of two epochs of a producer;
- every marker that closes data agrees with the coordinator's decision for that transaction
  (so never COMMIT on one partition and ABORT on another);
- LSO <= HW, and the LSO never moves back (across crashes too);
- a read_committed reader only ever returns records of transactions decided COMMIT, once.
At the end of the seed, once the clients stop, faults end and the network heals:
- no hanging transaction: the coordinator has nothing Ongoing or Prepare*, every
  partition's LSO reaches its high watermark (= log end) and no transaction is open in it;
- atomicity: every transaction decided COMMIT has its data and a COMMIT marker on every
  partition it wrote to (and never data on a partition outside it); every value a client
  saw acknowledged in a transaction it committed is read, none of an aborted one;
- each reader returned exactly the committed records of its log, in log order.

``python -m tests.sim.txn_harness SEED [VARIANT] [FIELD=VALUE ...]`` replays one seed and
prints its trace (a failing seed prints the command).
"""

from __future__ import annotations

import ast
import heapq
import random
import sys
from collections import Counter
from dataclasses import dataclass, fields

from rillet.coordinator.transactions import TxnMetadata, TxnState

from .txn_checks import InvariantViolation, Reader, TxnChecks
from .txn_clients import TXN_TIMEOUT_MS, SimClient
from .txn_coordinator import SimCoordinator
from .txn_replicas import ReplicatedPartition
from .txn_world import Net, SimPartition

S = TxnState
READ_MS = 40
FAULT_MS = 150
SETTLE_MS = 4 * TXN_TIMEOUT_MS  # after the clients stop: everything must be decided by then


@dataclass
class SimConfig:
    partitions: int = 4
    tids: int = 3
    txns: int = 4  # transactions per client instance
    active_ms: int = 6_000  # clients start within it; faults happen within it
    loss: float = 0.05
    dup: float = 0.03
    slow: float = 0.03
    faults: bool = True
    start_epoch: int = 0  # the ids exist already at this producer epoch (32760: exhaustion)
    expiration_ms: int | None = None  # transactional.id.expiration.ms (None: Kafka's 7 days)
    producer_expiration_ms: int | None = None  # partitions' producer.id.expiration.ms
    replicas: int = 1  # 2: a leader and a follower per partition (txn_replicas.py)
    # a deliberately broken world, to show the checks catch it (test_txn_sim.py):
    # "no-verify" (partitions trust every transactional write: no KIP-890 part 1),
    # "reader-ignores-index" (read_committed without the aborted-transaction index),
    # "no-resend-on-load" (a reloaded coordinator forgets the markers of Prepare*),
    # "ack-before-fsync" (partitions answer before the write is durable),
    # "uncommitted-reads" (the coordinator answers, verifies and writes markers from
    # records not yet committed to __transaction_state), "acks-1" (with replicas=2: the
    # high watermark ignores the follower)
    variant: str | None = None


class TxnSim(TxnChecks):
    def __init__(self, seed: int, cfg: SimConfig | None = None) -> None:
        self.seed = seed
        self.cfg = cfg or SimConfig()
        self.rng = random.Random(seed)
        self.now = 0
        self._events: list = []
        self._seq = 0
        self._ids = 0
        self.log: list[str] = []
        self.stats: Counter[str] = Counter()
        self.faults = self.cfg.faults
        self.stopping = False
        self.net = Net(self)
        self.net.loss, self.net.dup, self.net.slow = self.cfg.loss, self.cfg.dup, self.cfg.slow
        # what the checks know
        self.values: dict[bytes, tuple[int, int]] = {}  # value -> (pid, epoch) that sent it
        self.claims: list[tuple] = []
        self.unexpected: list[str] = []
        self.stale_marker_answers: list = []
        self.replayed: dict = {}  # replay of every record ever appended
        self.pids: dict[str, set[int]] = {}  # the producer ids each transactional id had
        self.granted: dict[tuple[int, int], str] = {}  # (pid, epoch) -> the instance given it
        self.last_record: dict[str, object] = {}
        self.decided: dict[tuple[int, int], tuple[bool, frozenset, str]] = {}
        self.deciding: dict[str, tuple[int, int] | None] = {}
        self.completed: set[tuple[int, int]] = set()
        self.read_values: set[bytes] = set()
        # per partition: producer id -> epoch of its open data / of its latest marker
        self.coord = SimCoordinator(self, 10 * TXN_TIMEOUT_MS, self.cfg.expiration_ms)
        part = ReplicatedPartition if self.cfg.replicas == 2 else SimPartition
        self.parts = [part(self, i) for i in range(self.cfg.partitions)]
        self.tps = [p.tp for p in self.parts]
        self.open_epoch: list[dict[int, int]] = [{} for _ in self.parts]
        self.marker_epoch: list[dict[int, int]] = [{} for _ in self.parts]
        self.lso_seen = [0] * len(self.parts)
        self.readers = [Reader(p) for p in self.parts]
        self.nodes: dict[str, object] = {"coord": self.coord}
        self.nodes.update((p.name, p) for p in self.parts)
        self.clients: list[SimClient] = []
        if self.cfg.start_epoch:
            self.coord.preload(
                TxnMetadata(
                    transactional_id=f"tx-{i}",
                    producer_id=self.coord.allocate(),
                    producer_epoch=self.cfg.start_epoch,
                    timeout_ms=TXN_TIMEOUT_MS,
                    last_update_ms=0,
                )
                for i in range(self.cfg.tids)
            )
        self._plan_clients()
        self.at(READ_MS, self._read_tick)
        if self.faults:
            self.at(FAULT_MS, self._fault_tick)

    # ------------------------------------------------------------------------ machinery

    def at(self, time: int, fn, *args) -> None:
        self._seq += 1
        heapq.heappush(self._events, (time, self._seq, fn, args))

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def trace(self, line: str) -> None:
        self.log.append(f"{self.now:>6} {line}")

    def fail(self, what: str) -> None:
        raise InvariantViolation(what)

    def add_client(self, tid: str, start_ms: int) -> SimClient:
        c = SimClient(self, f"c{len(self.clients)}", tid, self.cfg.txns, start_ms)
        self.clients.append(c)
        self.nodes[c.name] = c
        return c

    def _plan_clients(self) -> None:
        rng = self.rng
        for i in range(self.cfg.tids):
            tid = f"tx-{i}"
            self.add_client(tid, rng.randint(0, 300))
            if rng.random() < 0.5:  # a second instance of the same id fences the first
                self.add_client(tid, rng.randint(300, self.cfg.active_ms // 2))

    # -------------------------------------------------------------------------- running

    def run(self) -> TxnSim:
        end = self.cfg.active_ms
        self._run_until(end)
        self.stopping = True
        self.faults = False
        self.net.loss = self.net.dup = self.net.slow = 0.0
        for c in self.clients:
            c.stop()
        if not self.coord.up:
            self._restart(self.coord)
        for p in self.parts:
            if p.needs_restart:
                self._restart(p)
        deadline = end + SETTLE_MS
        while self.now < deadline and not self._settled():
            self._run_until(self.now + 100)
        self.check_end()
        return self

    def _run_until(self, t: int) -> None:
        events = self._events
        while events and events[0][0] <= t:
            time, _seq, fn, args = heapq.heappop(events)
            self.now = time
            fn(*args)
            self.check_step()
        self.now = t

    def _read_tick(self) -> None:
        self.at(self.now + READ_MS, self._read_tick)
        for r in self.readers:
            if r.part.up:
                r.poll(self)

    def _fault_tick(self) -> None:
        if not self.faults:
            return
        self.at(self.now + FAULT_MS, self._fault_tick)
        rng = self.rng
        roll = rng.random()
        if roll < 0.06:
            p = rng.choice(self.parts)
            if p.can_crash:
                self.trace(f"{p.name} crashes")
                p.crash()
                self.stats["partition crashes"] += 1
                self.at(self.now + rng.randint(30, 400), self._restart, p)
        elif roll < 0.09:
            if self.coord.up:
                self.trace(f"coord epoch {self.coord.epoch} crashes")
                self.coord.crash()
                self.stats["coordinator crashes"] += 1
                self.at(self.now + rng.randint(30, 500), self._restart, self.coord)
        elif roll < 0.14:
            c = rng.choice(self.clients)
            if c.active:
                ms = rng.randint(TXN_TIMEOUT_MS, 2 * TXN_TIMEOUT_MS)
                self.trace(f"{c.name} pauses for {ms} ms (a zombie)")
                c.pause(ms)
                self.stats["zombies"] += 1
        elif roll < 0.155:
            c = rng.choice(self.clients)
            if c.active:
                self.trace(f"{c.name} dies")
                self.stats["killed instances"] += 1
                c.kill()
                if rng.random() < 0.5:  # the application restarts it
                    self.add_client(c.tid, self.now + rng.randint(0, 2 * TXN_TIMEOUT_MS))

    def _restart(self, node) -> None:
        if not (node.needs_restart if isinstance(node, SimPartition) else not node.up):
            return
        node.restart()
        self.trace(f"{node.name} restarted")
        if isinstance(node, SimPartition):
            self.scan(node)

    def _settled(self) -> bool:
        coord = self.coord
        if not coord.up or coord.inflight or coord.uncommitted or coord.queued:
            return False
        busy = (S.ONGOING, S.PREPARE_COMMIT, S.PREPARE_ABORT, S.PREPARE_EPOCH_FENCE)
        if any(m.state in busy for m in self.coord.tc.transactions.values()):
            return False
        for p, r in zip(self.parts, self.readers, strict=True):
            leo = p.log.log_end_offset
            if not p.up or p.hw != leo or p.lso != leo or r.position != leo:
                return False
        return True

    def summary(self) -> Counter[str]:
        out = Counter(self.stats)
        out["commits"] = sum(1 for d in self.decided.values() if d[0])
        out["aborts"] = sum(1 for d in self.decided.values() if not d[0])
        out["records read"] = len(self.read_values)
        out["fenced instances"] = sum(1 for c in self.clients if c.fenced)
        out["messages"] = self.net.sent
        out["producer ids replaced"] = sum(len(p) - 1 for p in self.pids.values())
        return out


def run_seed(seed: int, cfg: SimConfig | None = None) -> TxnSim:
    sim = TxnSim(seed, cfg)
    try:
        return sim.run()
    except Exception as exc:
        tail = "\n".join(sim.log[-80:])
        raise InvariantViolation(
            f"seed {seed} failed at t={sim.now}: {exc}\n"
            f"replay: python -m tests.sim.txn_harness {seed}{_args_of(sim.cfg)}\n"
            f"--- last steps ---\n{tail}"
        ) from exc


def _args_of(cfg: SimConfig) -> str:
    """The command-line arguments that rebuild ``cfg`` (see :func:`main`)."""
    default = SimConfig()
    out = [cfg.variant] if cfg.variant else []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name != "variant" and value != getattr(default, f.name):
            out.append(f"{f.name}={value!r}")
    return "".join(" " + a for a in out)


def main(argv: list[str]) -> int:
    """``python -m tests.sim.txn_harness SEED [VARIANT] [FIELD=VALUE ...]``: run one seed
    (with those SimConfig fields), print its trace."""
    seed = int(argv[1]) if len(argv) > 1 else 0
    config: dict = {}
    for arg in argv[2:]:
        if "=" in arg:
            name, value = arg.split("=", 1)
            config[name] = ast.literal_eval(value)
        else:
            config["variant"] = arg
    sim = TxnSim(seed, SimConfig(**config))
    try:
        sim.run()
    finally:
        print("\n".join(sim.log))
    print(dict(sim.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
