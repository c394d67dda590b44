"""Seeded simulation of one consumer group: the pure coordinator core, many simulated
consumers, and a lossy network with random delays, all on one virtual clock.

Consumers follow the KIP-848 client rules, plus two *leases* that make the safety
invariant hold even for zombies (these are the rules the real client must follow too):

* session lease: a consumer whose last successful heartbeat was *sent* at ``t`` treats its
  partitions as lost at ``t + session_timeout`` (the coordinator cannot evict it earlier,
  because it last heard from it no earlier than ``t``), and ignores later responses to
  requests sent before that;
* revocation lease: let ``t`` be the send time of the first request after the last reply
  whose assignment contained everything that request reported owning (the coordinator
  then had nothing to revoke and no rebalance timer running); a consumer still owning
  partitions at ``t + rebalance_timeout`` drops them (a revocation may have been asked in a
  reply that was lost, and the coordinator started its rebalance timer no earlier than
  ``t``).

After every event the invariants are checked: no partition owned by two members in the
coordinator's view; each live consumer owns a subset of what the coordinator thinks it owns
(so no partition is ever consumed by two live consumers); the records, CBOR-like encoded
and replayed, rebuild exactly the live state. After churn stops, the group must converge:
every subscribed partition owned by exactly one consumer, balanced, and no more records.

``python -m tests.sim.groups_harness SEED`` replays one seed with a trace.
"""

from __future__ import annotations

import heapq
import itertools
import random
import sys
from dataclasses import dataclass, field, replace

from rillet.coordinator.groups import (
    ConsumerGroupHeartbeatRequest,
    CoordinatorState,
    GroupConfig,
    GroupCoordinator,
    GroupState,
    TopicPartition,
    resolve_topics,
)
from rillet.coordinator.groups.assignors import MemberSubscription, is_balanced
from rillet.coordinator.groups.errors import GroupError
from rillet.coordinator.groups.records import apply, from_kv, key_of, replay, to_kv

GROUP = "sim-group"


@dataclass
class SimConfig:
    clients: int = 8
    churn_ms: int = 20_000
    session_timeout_ms: int = 3_000
    heartbeat_interval_ms: int = 500
    rebalance_timeout_ms: int = 4_000
    request_timeout_ms: int = 600
    max_delay_ms: int = 150
    loss: float = 0.03
    poll_ms: int = 50
    assignor: str = "uniform"
    failovers: bool = True


@dataclass
class Client:
    member_id: str
    instance_id: str | None
    topics: tuple[str, ...] | None
    regex: str | None
    stubborn: bool = False
    alive: bool = True
    epoch: int = 0
    owned: frozenset[TopicPartition] = frozenset()
    assignment: frozenset[TopicPartition] = frozenset()
    in_flight: int | None = None
    in_flight_sent: int = 0
    in_flight_owned: frozenset[TopicPartition] = frozenset()
    last_ok_sent: int | None = None
    revoke_clock_start: int | None = None
    """Send time of the first request since the last reply that asked to revoke nothing."""
    revoke_done_at: int | None = None
    next_hb_at: int = 0
    needs_ack: bool = False
    send_subscription: bool = True
    backoff_until: int = 0

    def lose_everything(self) -> None:
        self.owned = frozenset()
        self.assignment = frozenset()
        self.epoch = 0
        self.in_flight = None
        self.revoke_clock_start = self.revoke_done_at = None
        self.last_ok_sent = None
        self.send_subscription = True


@dataclass(order=True)
class Event:
    time: int
    seq: int
    kind: str = field(compare=False)
    data: tuple = field(compare=False, default=())


class GroupSim:
    def __init__(self, seed: int, cfg: SimConfig | None = None) -> None:
        self.seed = seed
        self.given_cfg = cfg or SimConfig()
        self.cfg = replace(self.given_cfg)
        self.rng = random.Random(seed)
        self.gc = GroupCoordinator(
            GroupConfig(
                session_timeout_ms=self.cfg.session_timeout_ms,
                heartbeat_interval_ms=self.cfg.heartbeat_interval_ms,
                remote_assignor=self.cfg.assignor,
            )
        )
        self.state = CoordinatorState()
        self.replayed = CoordinatorState()
        self.log: list = []
        self.topics = {"a0": 6, "a1": 3, "b0": 4}
        self.clients: list[Client] = []
        self.events: list[Event] = []
        self.seq = itertools.count()
        self.ids = itertools.count()
        self.now = 0
        self.trace: list[str] = []
        self.last_record_at = 0

    # ------------------------------------------------------------------ plumbing

    def at(self, time: int, kind: str, *data) -> None:
        heapq.heappush(self.events, Event(time, next(self.seq), kind, data))

    def note(self, msg: str) -> None:
        self.trace.append(f"t={self.now} {msg}")
        if len(self.trace) > 60:
            del self.trace[:20]

    def delay(self) -> int:
        return self.rng.randint(0, self.cfg.max_delay_ms)

    def lost(self) -> bool:
        return self.rng.random() < self.cfg.loss

    def new_client(self, instance_id: str | None = None, quiet: bool = False) -> Client:
        n = next(self.ids)
        r = self.rng.random()
        if r < 0.2:
            topics, regex = None, r"a.*"
        elif r < 0.4:
            topics, regex = ("b0",), None
        else:
            topics, regex = ("a0", "a1", "b0"), None
        if instance_id is None and self.rng.random() < 0.3:
            instance_id = f"inst-{n}"
        c = Client(
            member_id=f"m{n}-{self.rng.getrandbits(24):06x}",
            instance_id=instance_id,
            topics=topics,
            regex=regex,
            stubborn=not quiet and self.rng.random() < 0.1,
        )
        self.clients.append(c)
        self.note(
            f"start {c.member_id} inst={instance_id} topics={topics} regex={regex}"
            f"{' stubborn' if c.stubborn else ''}"
        )
        return c

    def adopt(self, result) -> None:
        if result.records:
            self.last_record_at = self.now
        for r in result.records:
            self.replayed = apply(self.replayed, [from_kv(*to_kv(r))])
        self.log.extend(result.records)
        self.state = result.state

    # ------------------------------------------------------------------ consumers

    def send(self, c: Client, epoch: int | None = None) -> None:
        epoch = c.epoch if epoch is None else epoch
        joining = epoch == 0
        sub = joining or c.send_subscription
        req = ConsumerGroupHeartbeatRequest(
            group_id=GROUP,
            member_id=c.member_id,
            member_epoch=epoch,
            instance_id=c.instance_id,
            rebalance_timeout_ms=self.cfg.rebalance_timeout_ms if joining else -1,
            subscribed_topic_names=(c.topics or ()) if sub else None,
            subscribed_topic_regex=(c.regex or "") if sub else None,
            owned_partitions=None if joining else c.owned,
        )
        seq = next(self.seq)
        if epoch >= 0:
            c.in_flight, c.in_flight_sent = seq, self.now
            c.in_flight_owned = frozenset() if joining else c.owned
            if c.revoke_clock_start is None:
                c.revoke_clock_start = self.now
        c.needs_ack = False
        if not self.lost():
            self.at(self.now + self.delay(), "request", c, req, seq, self.now)

    def poll_client(self, c: Client) -> None:
        if not c.alive:
            return
        if c.revoke_done_at is not None and self.now >= c.revoke_done_at:
            c.owned = c.owned & c.assignment
            c.revoke_done_at = None
            c.needs_ack = True
        if c.in_flight is not None and self.now >= c.in_flight_sent + self.cfg.request_timeout_ms:
            c.in_flight = None  # a late response will be ignored
        if (
            c.in_flight is None
            and self.now >= c.backoff_until
            and (self.now >= c.next_hb_at or c.needs_ack)
        ):
            self.send(c)

    def enforce_leases(self) -> None:
        for c in self.clients:
            if not c.alive:
                continue
            session_lost = (
                c.last_ok_sent is not None
                and self.now >= c.last_ok_sent + self.cfg.session_timeout_ms
            )
            revoke_lost = (
                c.revoke_clock_start is not None
                and self.now >= c.revoke_clock_start + self.cfg.rebalance_timeout_ms
            )
            if session_lost or (revoke_lost and c.owned):
                if c.owned:
                    self.note(
                        f"{c.member_id} lease expired "
                        f"({'session' if session_lost else 'revocation'}): drops "
                        f"{len(c.owned)} partitions"
                    )
                c.lose_everything()
                c.next_hb_at = self.now
            elif revoke_lost:
                # Owning nothing, a response can only leave it revoking nothing: safe.
                c.revoke_clock_start = None

    def on_response(self, c: Client, seq: int, sent_at: int, resp, err: GroupError | None):
        if not c.alive or seq != c.in_flight:
            return
        c.in_flight = None
        if self.now >= sent_at + self.cfg.session_timeout_ms:
            c.lose_everything()
            return
        if err is not None:
            self.note(f"{c.member_id} <- {err.name}")
            if err.name in ("UNKNOWN_MEMBER_ID", "FENCED_MEMBER_EPOCH"):
                c.lose_everything()
                c.next_hb_at = self.now
            elif err.name == "FENCED_INSTANCE_ID":
                c.lose_everything()
                c.alive = False
            elif err.name == "UNRELEASED_INSTANCE_ID":
                c.backoff_until = self.now + 300
            else:
                raise AssertionError(f"unexpected error {err} for {c.member_id}")
            return
        c.last_ok_sent = sent_at
        c.epoch = resp.member_epoch
        c.assignment = resp.assignment
        c.send_subscription = False
        c.next_hb_at = self.now + resp.heartbeat_interval_ms
        to_revoke = c.owned - resp.assignment
        c.owned = c.owned | resp.assignment
        if to_revoke:
            if c.revoke_done_at is None:
                slow = 10**12 if c.stubborn else self.rng.randint(0, 400)
                c.revoke_done_at = self.now + slow
        else:
            c.revoke_done_at = None
        if c.in_flight_owned <= resp.assignment:
            # The coordinator saw nothing to revoke: no rebalance timer runs for us now.
            # (A reply that is calm only because we revoked meanwhile does not count: the
            # coordinator still waits for our acknowledgement.)
            c.revoke_clock_start = None

    # ------------------------------------------------------------------ coordinator

    def on_request(self, c: Client, req, seq: int, sent_at: int) -> None:
        try:
            result = self.gc.heartbeat(self.state, req, self.topics, self.now)
        except GroupError as err:
            if err.code == -1:
                raise
            resp, error = None, err
        else:
            self.adopt(result)
            resp, error = result.response, None
        if req.member_epoch >= 0 and not self.lost():
            self.at(self.now + self.delay(), "response", c, seq, sent_at, resp, error)

    def failover(self) -> None:
        live = [r for r in self.log]
        if self.rng.random() < 0.5:  # sometimes after log compaction
            last = {}
            for i, r in enumerate(live):
                last[repr(sorted(key_of(r).items()))] = i
            live = [live[i] for i in sorted(last.values())]
        rebuilt = replay(from_kv(*to_kv(r)) for r in live)
        assert rebuilt == self.state, "replay after failover differs from the live state"
        self.state = self.gc.on_loaded(rebuilt, self.now)
        self.note("coordinator failover (state replayed from the log)")

    # ------------------------------------------------------------------ churn

    def churn(self) -> None:
        alive = [c for c in self.clients if c.alive]
        r = self.rng.random()
        if r < 0.25 or len(alive) < 2:
            self.new_client()
        elif r < 0.45:
            c = self.rng.choice(alive)
            self.note(f"crash {c.member_id}")
            c.alive, c.owned = False, frozenset()
            if c.instance_id:
                self.at(
                    self.now + self.rng.randint(0, 2 * self.cfg.session_timeout_ms),
                    "restart",
                    c.instance_id,
                )
        elif r < 0.65:
            c = self.rng.choice(alive)
            static = c.instance_id is not None and self.rng.random() < 0.7
            self.note(f"leave {c.member_id} ({'static -2' if static else '-1'})")
            c.owned = frozenset()  # a leaving consumer revokes everything first
            self.send(c, -2 if static else -1)
            c.alive = False
            if static:
                self.at(self.now + self.rng.randint(0, 1000), "restart", c.instance_id)
        elif r < 0.8:
            c = self.rng.choice(alive)
            c.topics, c.regex = self.rng.choice(
                [(("a0",), None), (("b0", "a1"), None), (None, r"b.*"), (("a0", "a1", "b0"), None)]
            )
            c.send_subscription = True
            self.note(f"{c.member_id} subscribes to {c.topics or c.regex}")
        else:
            if self.rng.random() < 0.5:
                t = self.rng.choice(sorted(self.topics))
                self.topics[t] += self.rng.randint(1, 2)
            else:
                self.topics[f"a{len(self.topics)}"] = self.rng.randint(1, 3)
            self.note(f"metadata: {self.topics}")
            if self.rng.random() < 0.5:
                self.adopt(self.gc.on_metadata(self.state, self.topics, self.now))

    # ------------------------------------------------------------------ invariants

    def check(self) -> None:
        group = self.state.groups.get(GROUP)
        members = group.members if group else {}
        owner: dict[TopicPartition, str] = {}
        for m in members.values():
            for tp in m.owned:
                assert tp not in owner, f"{tp} owned by {owner[tp]} and {m.member_id}"
                owner[tp] = m.member_id
        consumed: dict[TopicPartition, str] = {}
        for c in self.clients:
            if not c.alive or not c.owned:
                continue
            m = members.get(c.member_id)
            view = m.owned if m else frozenset()
            extra = c.owned - view
            assert not extra, f"{c.member_id} consumes {sorted(extra)} the coordinator gave away"
            for tp in c.owned:
                assert tp not in consumed, f"{tp} consumed by {consumed[tp]} and {c.member_id}"
                consumed[tp] = c.member_id
        assert self.replayed == self.state, "replayed records differ from the live state"

    def check_converged(self) -> None:
        group = self.state.groups[GROUP]
        live = {c.member_id: c for c in self.clients if c.alive}
        assert set(group.members) == set(live), (
            f"members {sorted(group.members)} != live consumers {sorted(live)}"
        )
        assert group.state is GroupState.STABLE, f"group is {group.state}"
        subs = {}
        for mid, m in group.members.items():
            subs[mid] = MemberSubscription(resolve_topics(m, self.topics))
            assert live[mid].owned == m.assigned, f"{mid} owns {live[mid].owned} != {m.assigned}"
        wanted = {
            TopicPartition(t, p)
            for s in subs.values()
            for t in s.topics
            for p in range(self.topics[t])
        }
        owned = [tp for m in group.members.values() for tp in m.assigned]
        assert sorted(owned) == sorted(wanted), "some subscribed partition is not owned once"
        if self.cfg.assignor == "uniform":
            assert is_balanced({m: group.members[m].assigned for m in subs}, subs)
        assert self.now - self.last_record_at >= 2 * self.cfg.session_timeout_ms, (
            "records still being written: the group is not stable"
        )

    # ------------------------------------------------------------------ main loop

    def run(self) -> None:
        cfg = self.cfg
        for _ in range(cfg.clients):
            self.new_client()
        churn_end = cfg.churn_ms
        end = churn_end + 8 * cfg.session_timeout_ms
        t = 0
        while t < churn_end:
            t += self.rng.randint(200, 1500)
            self.at(t, "churn")
        for t in range(0, end + 1, cfg.poll_ms):
            self.at(t, "poll")
        if cfg.failovers:
            for _ in range(self.rng.randint(0, 3)):
                self.at(self.rng.randint(0, churn_end), "failover")
        while self.events:
            ev = heapq.heappop(self.events)
            self.now = ev.time
            self.enforce_leases()
            if self.now >= churn_end:
                self.cfg.loss = 0.0  # churn and network faults stop together
            if ev.kind == "poll":
                for c in list(self.clients):
                    if self.now >= churn_end:
                        c.stubborn = False
                        if c.revoke_done_at is not None and c.revoke_done_at > self.now + 400:
                            c.revoke_done_at = self.now + 400
                    self.poll_client(c)
                self.adopt(self.gc.tick(self.state, self.now))
            elif ev.kind == "request":
                self.on_request(*ev.data)
            elif ev.kind == "response":
                self.on_response(*ev.data)
            elif ev.kind == "churn":
                self.churn()
            elif ev.kind == "restart":
                self.new_client(instance_id=ev.data[0])
            elif ev.kind == "failover":
                self.failover()
            self.check()
        if not any(c.alive for c in self.clients):
            raise AssertionError("no consumer left at the end (the scenario is degenerate)")
        self.check_converged()


def run_seed(seed: int, cfg: SimConfig | None = None) -> GroupSim:
    sim = GroupSim(seed, cfg)
    try:
        sim.run()
    except AssertionError as exc:
        trace = "\n  ".join(sim.trace[-25:])
        raise AssertionError(
            f"group simulation failed for seed={seed} at t={sim.now}: {exc}\n"
            f"reproduce: .venv/bin/python -c 'from tests.sim.groups_harness import *; "
            f"run_seed({seed}, {sim.given_cfg!r})'\n"
            f"last events:\n  {trace}"
        ) from exc
    return sim


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["0"]:
        s = run_seed(int(arg))
        print(
            f"seed {arg}: ok, {len(s.log)} records, "
            f"{len([c for c in s.clients if c.alive])} consumers at the end"
        )
