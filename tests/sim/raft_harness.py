"""A hand-driven Raft cluster for unit tests: the test decides every tick and delivery.

Two (or more) pure cores joined by a fake link, in the style of h11's tests/helpers.py. The
simulator (raft_sim.py) does the same thing with a seeded scheduler and faults.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from rillet.coordinator.raft import (
    ApplyCommitted,
    Effect,
    FlushLog,
    HardState,
    MemoryRaftLog,
    PersistHardState,
    RaftConfig,
    RaftMessage,
    RaftNode,
    RestoreSnapshot,
    Send,
    TakeSnapshot,
)

from .machines import HashChainMachine

CONFIG = RaftConfig(election_timeout_ms=100, heartbeat_interval_ms=20, snapshot_threshold=0)


class Harness:
    def __init__(
        self, n: int = 3, config: RaftConfig = CONFIG, seed: int = 0, node_factory=RaftNode
    ) -> None:
        self.node_factory = node_factory
        self.config = config
        self.seed = seed
        self.voters = tuple(range(1, n + 1))
        self.now = 0
        self.inflight: list[RaftMessage] = []
        self.blocked: set[int] = set()  # isolated nodes: their messages are dropped
        self.hard: dict[int, HardState] = {}
        self.disk: dict[int, MemoryRaftLog] = {}
        self.nodes: dict[int, RaftNode] = {}
        self.machines: dict[int, HashChainMachine] = {}
        self.applied: dict[int, list[bytes]] = {}
        self.effects: dict[int, list[Effect]] = {i: [] for i in self.voters}
        for i in self.voters:
            self.hard[i] = HardState()
            self.start(i, MemoryRaftLog())

    def start(self, i: int, log: MemoryRaftLog) -> RaftNode:
        node = self.node_factory(
            i,
            self.voters,
            log,
            rng=random.Random(self.seed * 100 + i),
            now_ms=self.now,
            hard_state=self.hard[i],
            config=self.config,
        )
        self.nodes[i] = node
        self.machines[i] = HashChainMachine()
        self.applied[i] = []
        self.run(i, node.start())
        return node

    def crash_and_restart(self, i: int) -> RaftNode:
        """Lose everything that was not persisted, then start again."""
        return self.start(i, self.nodes[i].log.durable())

    def run(self, i: int, effects: Iterable[Effect]) -> None:
        node = self.nodes[i]
        for effect in effects:
            self.effects[i].append(effect)
            if isinstance(effect, Send):
                if i not in self.blocked:
                    self.inflight.append(effect.message)
            elif isinstance(effect, PersistHardState):
                self.hard[i] = HardState(effect.term, effect.voted_for)
            elif isinstance(effect, FlushLog):
                node.log.flush()
            elif isinstance(effect, ApplyCommitted):
                for entry in effect.entries:
                    if not entry.control:
                        self.machines[i].apply(entry.payload)
                        self.applied[i].append(entry.payload)
            elif isinstance(effect, TakeSnapshot):
                self.run(i, node.snapshot_taken(effect.index, self.machines[i].snapshot()))
            elif isinstance(effect, RestoreSnapshot):
                self.machines[i].restore(effect.snapshot.data)
                self.applied[i] = [b"<snapshot>"]

    def advance(self, ms: int) -> None:
        self.now += ms

    def tick(self, i: int) -> None:
        self.run(i, self.nodes[i].tick(self.now))

    def timeout(self, i: int) -> None:
        """Jump the clock to node i's next timer and tick it."""
        self.now = max(self.now, self.nodes[i].next_tick_ms)
        self.tick(i)

    def deliver(self, message: RaftMessage) -> list[Effect]:
        effects = self.nodes[message.dst].handle(message, self.now)
        self.run(message.dst, effects)
        return effects

    def deliver_all(self, limit: int = 10_000) -> int:
        """Deliver messages in FIFO order until none are left (dropping isolated nodes')."""
        count = 0
        while self.inflight and count < limit:
            message = self.inflight.pop(0)
            if message.dst in self.blocked or message.src in self.blocked:
                continue
            self.deliver(message)
            count += 1
        return count

    def elect(self, i: int) -> RaftNode:
        self.timeout(i)
        self.deliver_all()
        assert self.nodes[i].is_leader, self.nodes[i]
        return self.nodes[i]

    def heartbeat(self) -> None:
        """One heartbeat round from every leader, fully delivered."""
        self.advance(self.config.heartbeat_interval_ms)
        for i, node in self.nodes.items():
            if node.is_leader and i not in self.blocked:
                self.tick(i)
        self.deliver_all()

    def leader(self) -> RaftNode | None:
        leaders = [n for n in self.nodes.values() if n.is_leader]
        return leaders[0] if leaders else None

    def propose(self, i: int, payload: bytes) -> int:
        index, effects = self.nodes[i].propose(payload, self.now)
        self.run(i, effects)
        return index
