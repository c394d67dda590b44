"""Seeded deterministic simulation of one partition replicated on 3 brokers (ring 2).

The pure cores run as Kafka runs them: ``LeaderReplica`` on the leader (ISR, high watermark,
acks=all purgatory), ``follower_truncation`` on followers (KIP-101/279, plus the KIP-320
divergence check on fetch), ``ProducerStateManager`` for idempotence (maintained on every
replica, snapshotted, rebuilt from snapshot + log on promotion and restart), and a controller
model deciding with ``election`` (fencing on missed heartbeats, AlterPartition, preferred
leader election). Everything talks over an in-memory network with a virtual clock; one
seeded ``random.Random`` drives message delays, loss (reordering between brokers), fault
timing and the workload, so a seed replays exactly.

Faults: broker crashes and restarts (leader, follower, fast double failover: a follower
restart followed at once by a leader crash), message loss / delay / reordering between
brokers and controller, partitions (a broker cut off from everyone, or one broker-broker link
cut), client connection breaks (a client link is TCP-like: FIFO, and a drop fails every
request in flight on it). Workload: two idempotent producers with acks=all,
min.insync.replicas=2, up to 5 batches in flight, retries forever with the same sequence
(sometimes abandoning the last batch after a definite rejection, a ``fail`` in the history);
a consumer in assign mode polling whichever broker believes it leads, up to its high
watermark.

Checked after every step: ``ReplicationChecker`` (one leader per epoch, HW monotonic per
leader epoch, committed data never changes on any replica, every ISR member holds all
committed data). After the fault phase every fault heals; the partition must converge (all
3 replicas in the ISR with identical logs, every produce answered) within a bound; then the
log is drained and ``tests.history.check`` must find nothing lost, duplicated, reordered,
unexpected or read after a definite failure.

Reproduce one seed (printed by any failure)::

    python -m tests.sim.replication_sim --seed 1234
    python -m tests.sim.replication_sim --seeds 0:500            # a sweep with stats
    python -m tests.sim.replication_sim --seeds 0:200 --variant unclean
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from dataclasses import dataclass

from rillet.coordinator import election as E
from rillet.coordinator import replication as R
from rillet.logstore.producer_state import rebuild_from_log

from ..history import History, check
from .replication_world import (
    ClientBatch,
    FollowState,
    InvariantViolation,
    ReplicationChecker,
    SimBatch,
    SimBroker,
    SimProducer,
)

CONTROLLER = 0
BROKERS = (1, 2, 3)
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
VARIANTS = ("unclean", "hw-truncate", "no-dedup")

_TICK, _MSG, _RESTART = 0, 1, 2


class SimFailure(AssertionError):
    """A seed failed; the message ends with a one-line reproducer."""


@dataclass
class Stats:
    seed: int
    steps: int = 0
    delivered: int = 0
    dropped: int = 0
    crashes: int = 0
    leader_changes: int = 0
    acked: int = 0
    failed: int = 0
    read: int = 0
    sim_ms: int = 0


class ReplicationSimulation:
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
        self.brokers = {b: SimBroker(b) for b in BROKERS}
        self.state = E.PartitionState(BROKERS, BROKERS, BROKERS[0], 0, 0)
        self.live = set(BROKERS)
        self.last_hb = dict.fromkeys(BROKERS, 0)
        self.incarnation_seen = dict.fromkeys(BROKERS, 0)
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
        self.checker.check(self.brokers, self.state.isr)

    def _push(self, at: int, kind: int, payload) -> None:
        self._seq += 1
        heapq.heappush(self.queue, (at, self._seq, kind, payload))

    # ------------------------------------------------------------------------ network

    def _send(self, src, dst, msg: tuple) -> None:
        client_link = isinstance(src, str) or isinstance(dst, str)
        if (src, dst) in self.blocked or (not client_link and self.rng.random() < self.loss):
            self.stats.dropped += 1
            if client_link:
                self._disconnect(
                    src if isinstance(src, str) else dst, dst if isinstance(src, str) else src
                )
            return
        at = self.now + self.rng.randint(1, self.max_delay)
        if client_link:  # TCP: FIFO per connection
            at = max(at, self.fifo_at.get((src, dst), 0))
            self.fifo_at[(src, dst)] = at
        self._push(at, _MSG, (src, dst, msg))

    def _deliver(self, src, dst, msg: tuple) -> None:
        if (src, dst) in self.blocked:
            self.stats.dropped += 1
            if isinstance(src, str) or isinstance(dst, str):
                self._disconnect(
                    src if isinstance(src, str) else dst, dst if isinstance(src, str) else src
                )
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
            elif isinstance(src, str):
                self._disconnect(src, dst)

    # ---------------------------------------------------------------------- controller

    def _apply(self, decision: E.Decision) -> None:
        rec = decision.record
        if rec is None:
            return
        if rec.leader != self.state.leader:
            self.stats.leader_changes += 1
        self.state = E.apply_change(self.state, rec)
        for b in BROKERS:
            self._send(CONTROLLER, b, ("meta", self.state, self.incarnation_seen[b]))

    def _fence(self, broker: int) -> None:
        self.live.discard(broker)
        d = E.on_broker_fenced(TOPIC, PARTITION, self.state, broker, self.live)
        if (
            self.variant == "unclean"
            and d.record is not None
            and d.record.leader != self.state.leader
        ):
            # broken on purpose: elect any live replica, ISR or not
            choices = [r for r in BROKERS if r in self.live]
            if choices:
                leader = self.rng.choice(choices)
                d = E.Decision(
                    E._record(TOPIC, PARTITION, self.state, leader=leader, isr=(leader,))
                )
        self._apply(d)

    def _controller_receive(self, src, msg: tuple) -> None:
        kind = msg[0]
        if kind == "hb":
            incarnation = msg[1]
            self.last_hb[src] = self.now
            if incarnation != self.incarnation_seen[src]:
                self.incarnation_seen[src] = incarnation
                if src in self.live:  # a restarted broker re-registers: fence, then unfence
                    self._fence(src)
            if src not in self.live:
                self.live.add(src)
                self._apply(E.on_broker_unfenced(TOPIC, PARTITION, self.state, src, self.live))
            self._send(CONTROLLER, src, ("meta", self.state, incarnation))
        elif kind == "alter":
            p: R.AlterIsr = msg[1]
            d = E.alter_partition(
                TOPIC,
                PARTITION,
                self.state,
                broker_id=p.leader,
                leader_epoch=p.leader_epoch,
                partition_epoch=p.partition_epoch,
                new_isr=p.new_isr,
                live=self.live,
            )
            self._apply(d)
            self._send(CONTROLLER, src, ("alter_resp", p, d.error))
        elif kind == "md":
            self._send(CONTROLLER, src, ("md_resp", self.state.leader))

    def _controller_tick(self) -> None:
        for b in sorted(self.live):
            if self.now - self.last_hb[b] > SESSION_MS:
                self._fence(b)
        if self.rng.random() < 0.01:  # auto leader rebalance
            d = E.preferred_leader_election(TOPIC, PARTITION, self.state, self.live)
            self._apply(d)

    # -------------------------------------------------------------------------- brokers

    def _deliver_meta(self, b: SimBroker) -> None:
        self._on_meta(b, self.state)

    def _on_meta(self, b: SimBroker, st: E.PartitionState) -> None:
        if b.meta is not None and st.partition_epoch <= b.meta.partition_epoch:
            return
        b.meta = st
        if b.leader is not None:
            self._carry(
                b,
                b.leader.on_partition_change(
                    leader=st.leader,
                    isr=st.isr,
                    leader_epoch=st.leader_epoch,
                    partition_epoch=st.partition_epoch,
                    replicas=st.replicas,
                    now_ms=self.now,
                ),
            )
            if b.leader.resigned:
                b.leader = None
        if st.leader == b.id:
            if b.leader is None:
                self._become_leader(b, st)
            return
        if st.leader == E.NO_LEADER:
            b.follow = None
            return
        f = b.follow
        if f is None or f.leader != st.leader or f.leader_epoch != st.leader_epoch:
            b.follow = FollowState(st.leader, st.leader_epoch, "truncating")
            if self.variant == "hw-truncate":  # broken on purpose: pre-KIP-101 truncation
                b.truncate(b.hw)
                b.follow.phase = "fetching"
                self._send_fetch(b)
            else:
                self._send_ofle(b)

    def _become_leader(self, b: SimBroker, st: E.PartitionState) -> None:
        self.checker.became_leader(b.id, st.leader_epoch)
        b.follow = None
        log = b.log
        log.epochs.assign(st.leader_epoch, log.log_end_offset)
        rebuilt = rebuild_from_log(log, b.snapshots)
        for pid, entry in b.pstate.producers.items():
            other = rebuilt.entry(pid)
            if other is None or (other.producer_epoch, other.last_seq, other.last_offset) != (
                entry.producer_epoch,
                entry.last_seq,
                entry.last_offset,
            ):
                raise InvariantViolation(f"broker {b.id}: rebuilt producer state differs for {pid}")
        b.pstate = rebuilt
        b.leader = R.LeaderReplica(
            b.id,
            replicas=st.replicas,
            isr=st.isr,
            leader_epoch=st.leader_epoch,
            partition_epoch=st.partition_epoch,
            log_end_offset=log.log_end_offset,
            high_watermark=b.hw,
            now_ms=self.now,
            config=self.config,
        )

    def _carry(self, b: SimBroker, p: R.Progress) -> None:
        for c in p.completions:
            self._answer(b, c)
        if p.propose is not None:
            self._send(b.id, CONTROLLER, ("alter", p.propose))
        if p.high_watermark > b.hw:
            b.hw = p.high_watermark

    def _answer(self, b: SimBroker, c: R.Completion) -> None:
        client, attempt, base = b.parked.pop(c.key)
        self._send(b.id, client, ("produce_resp", attempt, c.error, base))

    def _broker_receive(self, b: SimBroker, src, msg: tuple) -> None:
        kind = msg[0]
        if kind == "meta":
            if msg[2] == b.incarnation:  # else sent before this broker (re)registered
                self._on_meta(b, msg[1])
        elif kind == "produce":
            self._on_produce(b, src, *msg[1:])
        elif kind == "fetch":
            self._on_fetch(b, src, *msg[1:])
        elif kind == "ofle":
            _, req, current, requested = msg
            L = b.leader
            if L is None:
                self._send(b.id, src, ("ofle_resp", req, R.NOT_LEADER_OR_FOLLOWER, -1, -1))
                return
            err, epoch, end = R.leader_epoch_end_offset(
                b.log.epochs,
                b.log.log_end_offset,
                leader_epoch=L.leader_epoch,
                current_leader_epoch=current,
                requested_epoch=requested,
            )
            self._send(b.id, src, ("ofle_resp", req, err, epoch, end))
        elif kind == "ofle_resp":
            self._on_ofle_resp(b, *msg[1:])
        elif kind == "fetch_resp":
            self._on_fetch_resp(b, *msg[1:])
        elif kind == "alter_resp" and b.leader is not None:
            self._carry(b, b.leader.on_alter_partition_response(msg[1], msg[2], self.now))

    def _on_produce(
        self, b: SimBroker, client: str, attempt: int, pid: int, pepoch: int, seq: int, values
    ) -> None:
        L = b.leader
        if L is None or L.resigned:
            self._send(b.id, client, ("produce_resp", attempt, R.NOT_LEADER_OR_FOLLOWER, -1))
            return
        err = L.check_append(-1)
        if err != R.NONE:
            self._send(b.id, client, ("produce_resp", attempt, err, -1))
            return
        verdict = b.pstate.check(pid, pepoch, seq, len(values) - 1)
        if verdict.duplicate is not None and self.variant != "no-dedup":
            base, last = verdict.duplicate.first_offset, verdict.duplicate.last_offset
        elif verdict.error != R.NONE:
            self._send(b.id, client, ("produce_resp", attempt, verdict.error, -1))
            return
        else:
            batch = SimBatch(b.log.log_end_offset, L.leader_epoch, pid, pepoch, seq, tuple(values))
            b.log.append(batch)
            b.appended(batch, self.snapshot_every)
            self._carry(b, L.on_append(b.log.log_end_offset, self.now))
            base, last = batch.base_offset, batch.last_offset
        self._req += 1
        b.parked[self._req] = (client, attempt, base)
        done = L.wait_for_ack(self._req, last, self.now + PURGATORY_MS)
        if done is not None:
            self._answer(b, done)

    def _on_fetch(
        self, b: SimBroker, follower: int, req: int, epoch: int, offset: int, last_epoch
    ) -> None:
        L = b.leader
        if L is None:
            self._send(b.id, follower, ("fetch_resp", req, R.NOT_LEADER_OR_FOLLOWER, (), 0, None))
            return
        d = L.on_follower_fetch(
            follower,
            offset,
            self.now,
            current_leader_epoch=epoch,
            last_fetched_epoch=last_epoch,
            epochs=b.log.epochs,
        )
        self._carry(b, d.progress)
        batches = ()
        if d.error == R.NONE and d.diverging_epoch is None:
            batches = b.log.read(offset, self.max_fetch_batches)
        self._send(
            b.id,
            follower,
            ("fetch_resp", req, d.error, batches, L.high_watermark, d.diverging_epoch),
        )

    def _new_req(self, f: FollowState) -> int:
        self._req += 1
        f.req, f.sent_ms = self._req, self.now
        return self._req

    def _send_ofle(self, b: SimBroker) -> None:
        f = b.follow
        f.phase = "truncating"
        latest = b.log.epochs.latest_epoch
        if latest == R.UNDEFINED_EPOCH:  # nothing to compare: keep what is below the HW
            b.truncate(b.hw)
            f.phase = "fetching"
            self._send_fetch(b)
            return
        self._send(b.id, f.leader, ("ofle", self._new_req(f), f.leader_epoch, latest))

    def _send_fetch(self, b: SimBroker) -> None:
        f = b.follow
        last_epoch = None if self.variant == "hw-truncate" else b.log.epochs.latest_epoch
        req = self._new_req(f)
        self._send(b.id, f.leader, ("fetch", req, f.leader_epoch, b.log.log_end_offset, last_epoch))

    def _on_ofle_resp(self, b: SimBroker, req: int, err: str, epoch: int, end: int) -> None:
        f = b.follow
        if f is None or f.req != req or f.phase != "truncating":
            return
        f.req = 0
        if err != R.NONE:
            f.next_ms = self.now + FETCH_TIMEOUT_MS
            return
        t = R.follower_truncation(b.log.epochs, b.log.log_end_offset, b.hw, epoch, end)
        b.truncate(t.truncate_to)
        if t.done:
            f.phase = "fetching"
            self._send_fetch(b)
        else:
            self._send_ofle(b)

    def _on_fetch_resp(self, b: SimBroker, req: int, err: str, batches, hw: int, diverging) -> None:
        f = b.follow
        if f is None or f.req != req or f.phase != "fetching":
            return
        f.req = 0
        if err != R.NONE:
            f.next_ms = self.now + FETCH_TIMEOUT_MS
            return
        if diverging is not None:
            t = R.follower_truncation(b.log.epochs, b.log.log_end_offset, b.hw, *diverging)
            b.truncate(t.truncate_to)
            if t.done:
                self._send_fetch(b)
            else:
                self._send_ofle(b)
            return
        log = b.log
        if batches and batches[0].base_offset == log.log_end_offset:
            for batch in batches:
                log.append(batch)
                b.appended(batch, self.snapshot_every)
        b.hw = max(b.hw, R.follower_high_watermark(hw, log.log_end_offset))
        if batches:
            self._send_fetch(b)
        else:
            f.next_ms = self.now + FETCH_BACKOFF_MS

    def _broker_tick(self, b: SimBroker) -> None:
        if b.leader is not None:
            self._carry(b, b.leader.tick(self.now))
        f = b.follow
        if f is not None:
            idle = f.req == 0 and self.now >= f.next_ms
            stuck = f.req != 0 and self.now - f.sent_ms > FETCH_TIMEOUT_MS
            if idle or stuck:
                if f.phase == "truncating":
                    self._send_ofle(b)
                else:
                    self._send_fetch(b)
        if self.now >= b.next_hb_ms:
            b.next_hb_ms = self.now + HEARTBEAT_MS
            self._send(b.id, CONTROLLER, ("hb", b.incarnation))
        if self.now >= b.next_checkpoint_ms:
            b.next_checkpoint_ms = self.now + CHECKPOINT_MS
            b.hw_checkpoint = min(b.hw, b.log.log_end_offset)

    def _tick(self, node) -> None:
        if node == CONTROLLER:
            self._controller_tick()
        elif isinstance(node, str):
            self._producer_tick(self.producers[node])
            if node == "p1":
                self._poll()
        else:
            node, incarnation = node if isinstance(node, tuple) else (node, 0)
            b = self.brokers[node]
            if not b.alive or b.incarnation != incarnation:
                return
            self._broker_tick(b)
            self._push(self.now + TICK_MS, _TICK, (b.id, b.incarnation))
            return
        self._push(self.now + TICK_MS, _TICK, node)

    # ------------------------------------------------------------------------- clients

    def _producer_tick(self, p: SimProducer) -> None:
        for cb in p.batches:
            if cb.attempt and self.now - cb.sent_ms > CLIENT_TIMEOUT_MS:
                self._attempt_failed(p, cb, definite=False)
        if self.producing and len(p.batches) < 8 and self.rng.random() < self.produce_rate:
            n = self.rng.randint(1, 3)
            values = tuple(f"{p.name}-{p.next_value + i}".encode() for i in range(n))
            p.next_value += n
            for v in values:
                self.history.send(p.name, v, PARTITION)
            p.batches.append(ClientBatch(p.next_seq, values))
            p.next_seq += n
        if p.leader == -1:
            if not p.metadata_pending:
                p.metadata_pending = True
                self._send(p.name, CONTROLLER, ("md",))
            return
        if p.retry_mode and not any(cb.sent_once for cb in p.batches):
            p.retry_mode = False
        if p.retry_mode:
            first = p.batches[0] if p.batches else None
            if first is not None and p.in_flight() == 0 and self.now >= first.retry_after_ms:
                self._send_batch(p, first)
            return
        in_flight = p.in_flight()
        for cb in p.batches:
            if in_flight >= 5 or p.leader == -1 or p.retry_mode:
                break  # (a send can fail at once: a broken connection)
            if not cb.sent_once:
                self._send_batch(p, cb)
                in_flight += 1

    def _send_batch(self, p: SimProducer, cb: ClientBatch) -> None:
        self._req += 1
        cb.attempt, cb.broker, cb.sent_ms, cb.sent_once = self._req, p.leader, self.now, True
        msg = ("produce", self._req, p.producer_id, p.producer_epoch, cb.seq, cb.values)
        self._send(p.name, p.leader, msg)

    def _attempt_failed(
        self, p: SimProducer, cb: ClientBatch, *, definite: bool, refresh: bool = True
    ) -> None:
        cb.attempt = 0
        cb.maybe_written = cb.maybe_written or not definite
        p.retry_mode = True
        if refresh:
            p.leader = -1

    def _disconnect(self, client: str, broker) -> None:
        p = self.producers[client]
        for cb in p.batches:
            if cb.attempt and cb.broker == broker:
                self._attempt_failed(p, cb, definite=False)

    def _producer_receive(self, p: SimProducer, src, msg: tuple) -> None:
        if msg[0] == "md_resp":
            p.metadata_pending = False
            p.leader = msg[1]
            return
        _, attempt, err, base = msg
        cb = p.find(attempt)
        if cb is None:
            return
        if err == R.NONE:
            for i, v in enumerate(cb.values):
                self.history.ack(v, PARTITION, base + i)
            self.stats.acked += len(cb.values)
            p.batches.remove(cb)
            return
        definite = err in (R.NOT_ENOUGH_REPLICAS, "OUT_OF_ORDER_SEQUENCE_NUMBER")
        self._attempt_failed(p, cb, definite=definite, refresh=not definite)
        cb.retry_after_ms = self.now + (30 if definite else 0)
        if (
            definite
            and not cb.maybe_written
            and cb is p.batches[-1]
            and p.in_flight() == 0
            and self.rng.random() < 0.6
        ):  # give up on it: definitely never written, its sequence is reused
            for v in cb.values:
                self.history.fail(v)
            self.stats.failed += len(cb.values)
            p.batches.remove(cb)
            p.next_seq = cb.seq

    def _poll(self) -> None:
        leaders = [b for b in self.brokers.values() if b.alive and b.leader is not None]
        if not leaders:
            return
        b = self.rng.choice(leaders)
        hw = min(b.leader.high_watermark, self.position + 50)
        for offset in range(self.position, hw):
            self.history.read("c1", PARTITION, offset, b.log.values[offset])
        self.position = max(self.position, hw)

    # --------------------------------------------------------------------------- faults

    def _crash(self, b: SimBroker) -> None:
        if not b.alive:
            return
        self.stats.crashes += 1
        b.alive = False
        b.incarnation += 1
        b.leader = None
        self._push(self.now + self.rng.randint(30, 600), _RESTART, b.id)

    def _restart(self, broker: int) -> None:
        b = self.brokers[broker]
        if b.alive:
            return
        b.alive = True
        b.reset_volatile()
        b.next_hb_ms = self.now
        self._push(self.now, _TICK, (b.id, b.incarnation))

    def _fault(self) -> None:
        rng = self.rng
        kind = rng.choice(("crash", "crash-leader", "double", "isolate", "cut", "heal", "client"))
        alive = [b for b in self.brokers.values() if b.alive]
        leader = self.brokers.get(self.state.leader)
        if kind == "crash" and len(alive) > 1:
            self._crash(rng.choice(alive))
        elif kind == "crash-leader" and leader is not None and len(alive) > 1:
            self._crash(leader)
        elif kind == "double" and leader is not None:
            # KIP-101's fast double failover: a follower bounces, then the leader dies
            follower = rng.choice([b for b in self.brokers.values() if b.id != leader.id])
            self._crash(follower)
            self._restart(follower.id)
            self._crash(leader)
        elif kind == "isolate":
            victim = rng.choice(BROKERS)
            others = [CONTROLLER, *BROKERS, *self.producers]
            self.blocked |= {(victim, o) for o in others} | {(o, victim) for o in others}
        elif kind == "cut":
            a, c = rng.sample(BROKERS, 2)
            self.blocked |= {(a, c), (c, a)}
        elif kind == "heal":
            self.blocked.clear()
        elif kind == "client":
            name = rng.choice(list(self.producers))
            self._disconnect(name, rng.choice(BROKERS))

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
        if st.leader == E.NO_LEADER or set(st.isr) != set(BROKERS):
            return False
        if any(p.batches for p in self.producers.values()):
            return False
        leader = self.brokers[st.leader]
        L = leader.leader
        if L is None or L.leader_epoch != st.leader_epoch or set(L.isr) != set(BROKERS):
            return False
        end = leader.log.log_end_offset
        return L.high_watermark == end and all(
            b.log.log_end_offset == end and b.hw == end for b in self.brokers.values()
        )

    def _final_check(self) -> None:
        leader = self.brokers[self.state.leader]
        values = leader.log.values
        for b in self.brokers.values():
            if b.log.values != values:
                raise InvariantViolation(
                    f"replica {b.id} differs from leader {leader.id} after convergence"
                )
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
            "acked",
            "failed",
            "read",
        ):
            setattr(totals, name, getattr(totals, name) + getattr(s, name))
    elapsed = time.perf_counter() - started
    print(f"{len(seeds)} seeds, {failures} failed, {elapsed:.1f} s; totals {totals}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
