"""The transaction coordinator's owner in the transaction simulation (see txn_harness.py).

``SimCoordinator`` hosts one shipped ``TransactionCoordinator`` the way the coordinator actor
must: its records go, CBOR-encoded through ``records.to_kv``, to the ``__transaction_state``
partition, where they are *committed* (replicated to the ISR) a little later; only then are
the handler's response sent and its effects (``WriteTxnMarkers``) started. While a
transactional id has records not yet committed, further requests for it (verification
included) wait: the core's state already holds those records, and an answer read from it
could be undone by a failover (Kafka keeps such a transition "pending" the same way).

A crash loses the state, the marker writer and the uncommitted tail of the partition but
for a prefix a follower got (the new leader has it: durable, though nobody was answered).
The restart replays the partition (``from_kv``, compacted half of the time) with
``TransactionCoordinator.load`` at a bumped coordinator epoch and writes the markers of
every Prepare* again. An append may also fail outright: the owner reloads at once (a bumped
epoch) and answers NOT_COORDINATOR.

Markers are sent to each partition and resent every ``MARKER_RETRY_MS`` until answered; NONE
or a stale answer (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED) counts as done for
that partition; when all are done, ``markers_written``.
"""

from __future__ import annotations

from collections import Counter

import cbor2
from rillet.coordinator.transactions import TopicPartition, TransactionCoordinator
from rillet.coordinator.transactions import records as R

from .txn_world import TOPIC, Msg

MARKER_RETRY_MS = 120  # the coordinator resends unanswered markers
REPLICATION_MS = (2, 60)  # until an append is committed (replicated to the ISR)
APPEND_FAILURE = 0.01  # per append with records, while faults are on
STALE_MARKER_ERRORS = ("INVALID_PRODUCER_EPOCH", "TRANSACTION_COORDINATOR_FENCED")


class SimCoordinator:
    name = "coord"

    def __init__(self, sim, timeout_max_ms: int, expiration_ms: int | None = None) -> None:
        self.sim = sim
        self.records: list[tuple[bytes, bytes]] = []  # committed __transaction_state records
        self.uncommitted: list[tuple[bytes, bytes, R.TxnRecord]] = []
        self.held: list[tuple] = []  # (records needed, response to send, effects)
        self.busy: Counter[str] = Counter()  # transactional id -> its uncommitted records
        self.queued: dict[str, list[Msg]] = {}  # requests waiting for their id's commit
        self.epoch = 0
        self.up = True
        self.config = {"max_timeout_ms": timeout_max_ms}
        if expiration_ms is not None:  # transactional.id.expiration.ms (scaled down)
            self.config["expiration_ms"] = expiration_ms
        self.tc = TransactionCoordinator(0, **self.config)
        self.inflight: dict[int, list] = {}  # effect id -> [effect, remaining partitions]
        self.next_pid = 1000  # producer ids: a durable block allocator (the controller's)
        self.timer_due: int | None = None  # when the timer next fires

    def preload(self, metas) -> None:
        """Start with these committed records (as if written by an earlier leader)."""
        for meta in metas:
            key, value = R.to_kv(R.record_of(meta))
            self.records.append((cbor2.dumps(key), cbor2.dumps(value)))
        self.tc, _ = TransactionCoordinator.load(self.decoded(), self.epoch, **self.config)
        for rec in self.decoded():
            self.sim.on_txn_record(rec)
            self.sim.on_txn_decision(rec)
        self._arm()

    def allocate(self) -> int:
        self.next_pid += 1
        return self.next_pid

    @property
    def naive(self) -> bool:
        """The "uncommitted-reads" variant: answer and write markers at once, from state a
        failover may undo (to show the checks catch it)."""
        return self.sim.cfg.variant == "uncommitted-reads"

    # ------------------------------------------------------------------ the partition

    def decoded(self) -> list[R.TxnRecord]:
        return [R.from_kv(cbor2.loads(k), cbor2.loads(v)) for k, v in self.records]

    def pending_records(self) -> list[R.TxnRecord]:
        return [rec for _, _, rec in self.uncommitted]

    def _append(self, result, reply=None) -> bool:
        """Append the result's records; send ``reply`` (a Msg) and start the effects once
        they are committed. False if the append failed (the owner reloaded)."""
        sim = self.sim
        if result.records and sim.faults and sim.rng.random() < APPEND_FAILURE:
            sim.stats["__transaction_state append failed"] += 1
            sim.trace(f"coord append of {len(result.records)} records failed: reload")
            self.crash(keep_replicated=False)
            self.restart()
            return False
        for rec in result.records:
            key, value = R.to_kv(rec)
            self.uncommitted.append((cbor2.dumps(key), cbor2.dumps(value), rec))
            self.busy[rec.transactional_id] += 1
            if self.naive:  # it acts on the record now: so does the checker
                sim.on_txn_decision(rec)
        if result.records:
            upto = len(self.records) + len(self.uncommitted)
            sim.at(sim.now + sim.rng.randint(*REPLICATION_MS), self._commit, self.epoch, upto)
        if not result.records or self.naive:
            self._release(reply, result.effects)
        else:
            self.held.append((upto, reply, result.effects))
        return True

    def _release(self, reply, effects) -> None:
        if reply is not None:
            self.sim.net.send(reply)
        for effect in effects:
            self._start_markers(effect)

    def _commit(self, epoch: int, upto: int, *, answer: bool = True) -> None:
        """The records up to ``upto`` are replicated: durable, their answers go out."""
        if epoch != self.epoch or not self.up:
            return  # appended by a previous incarnation: committed or lost with it
        while len(self.records) < upto and self.uncommitted:
            key, value, rec = self.uncommitted.pop(0)
            self.records.append((key, value))
            decoded = R.from_kv(cbor2.loads(key), cbor2.loads(value))
            self.sim.on_txn_record(decoded)
            if not self.naive:
                self.sim.on_txn_decision(decoded)
            self.busy[rec.transactional_id] -= 1
            if not self.busy[rec.transactional_id]:
                del self.busy[rec.transactional_id]
        if not answer:
            return
        ready = [h for h in self.held if h[0] <= len(self.records)]
        self.held = [h for h in self.held if h[0] > len(self.records)]
        for _, reply, effects in ready:
            self._release(reply, effects)
        for tid in list(self.queued):
            waiting = self.queued.get(tid)
            while waiting and tid not in self.busy and epoch == self.epoch:
                self._handle(waiting.pop(0))
            if epoch != self.epoch:
                return  # an append failed meanwhile: reloaded, nothing is queued any more
            if not waiting:
                self.queued.pop(tid, None)
        self._arm()

    def crash(self, *, keep_replicated: bool = True) -> None:
        """The process dies; a prefix of the uncommitted records had reached a follower
        (kept: the new leader has them), the rest is gone."""
        if keep_replicated and self.uncommitted:
            kept = self.sim.rng.randint(0, len(self.uncommitted))
            if kept:
                self.sim.trace(f"coord: {kept} unanswered records survive the crash")
                self.sim.stats["unanswered records kept by a crash"] += kept
            self._commit(self.epoch, len(self.records) + kept, answer=False)
        self.sim.stats["uncommitted records lost by a crash"] += len(self.uncommitted)
        self.uncommitted, self.held, self.queued = [], [], {}
        self.busy = Counter()
        self.up = False
        self.tc = None
        self.inflight = {}

    def restart(self) -> None:
        if self.sim.rng.random() < 0.5:  # the compacted topic: the latest record per id
            latest = {}
            for k, v in self.records:
                latest.pop(k, None)
                latest[k] = v
            self.records = list(latest.items())
        self.epoch += 1
        self.tc, effects = TransactionCoordinator.load(self.decoded(), self.epoch, **self.config)
        self.sim.on_coordinator_loaded(self)
        self.sim.stats["coordinator reloads"] += 1
        if self.sim.cfg.variant == "no-resend-on-load":
            effects = ()
        self.up = True
        self.timer_due = None
        for effect in effects:
            self._start_markers(effect)
        self._arm()

    # -------------------------------------------------------------------------- requests

    def receive(self, msg: Msg) -> None:
        if msg.kind == "marker_reply":
            self._marker_answered(msg)
        elif (msg.body["tid"] in self.busy or msg.body["tid"] in self.queued) and not self.naive:
            self.queued.setdefault(msg.body["tid"], []).append(msg)
            self.sim.stats["requests held for an id with uncommitted records"] += 1
        else:
            self._handle(msg)
        self._arm()

    def _handle(self, msg: Msg) -> None:
        b, now, tc = msg.body, self.sim.now, self.tc
        if msg.kind == "verify":
            errors = tc.verify_partitions(b["tid"], b["pid"], b["epoch"], [b["tp"]])
            self.sim.net.send(self._reply(msg, errors=errors))
            return
        if msg.kind == "init":
            result = tc.init_producer_id(
                b["tid"],
                b["timeout_ms"],
                now,
                self.allocate,
                producer_id=b.get("pid", -1),
                producer_epoch=b.get("epoch", -1),
            )
        elif msg.kind == "add":
            result = tc.add_partitions(b["tid"], b["pid"], b["epoch"], b["tps"], now)
        elif msg.kind == "end":
            result = tc.end_txn(b["tid"], b["pid"], b["epoch"], b["commit"], now, self.allocate)
        else:
            raise AssertionError(f"unknown message {msg}")
        r = result.response
        if not self._append(result, self._reply(msg, response=r, error=r.error)):
            self.sim.net.send(self._reply(msg, response=None, error="NOT_COORDINATOR"))

    def _reply(self, msg: Msg, **body) -> Msg:
        return Msg(msg.kind + "_reply", self.name, msg.src, msg.rid, body)

    # -------------------------------------------------------------------- marker writer

    def _start_markers(self, effect) -> None:
        eid = self.sim.next_id()
        self.inflight[eid] = [effect, set(effect.partitions)]
        self.sim.trace(f"coord epoch {self.epoch} writes markers #{eid} {effect}")
        self._send_markers(eid)

    def _send_markers(self, eid: int) -> None:
        entry = self.inflight.get(eid)
        if entry is None or not self.up:
            return
        effect, remaining = entry
        for tp in sorted(remaining):
            body = {
                "pid": effect.producer_id,
                "epoch": effect.producer_epoch,
                "commit": effect.commit,
                "coordinator_epoch": effect.coordinator_epoch,
            }
            self.sim.net.send(Msg("marker", self.name, f"p{tp.partition}", eid, body))
        self.sim.at(self.sim.now + MARKER_RETRY_MS, self._send_markers, eid)

    def _marker_answered(self, msg: Msg) -> None:
        entry = self.inflight.get(msg.rid)
        if entry is None:
            return  # a reply to a finished (or pre-crash) write
        effect, remaining = entry
        error = msg.body["error"]
        if error != "NONE" and error not in STALE_MARKER_ERRORS:
            return  # resent
        remaining.discard(TopicPartition(TOPIC, int(msg.src[1:])))
        if not remaining:
            del self.inflight[msg.rid]
            self._append(self.tc.markers_written(effect, self.sim.now))

    # --------------------------------------------------------------------------- timer

    def _arm(self) -> None:
        """The owner's timer follows ``next_deadline_ms()`` alone (no periodic sweep): a
        deadline it misses leaves a transaction hanging, which the end of the seed sees."""
        if not self.up:
            return
        due = self.tc.next_deadline_ms()
        if due is None:
            return
        due = max(due, self.sim.now)
        if self.timer_due is not None and self.timer_due <= due:
            return
        self.timer_due = due
        self.sim.at(due, self._timer, self.epoch, due)

    def _timer(self, epoch: int, due: int) -> None:
        if epoch != self.epoch or not self.up or due != self.timer_due:
            return  # re-armed earlier, or set by a previous incarnation
        self.timer_due = None
        result = self.tc.abort_timed_out(self.sim.now, self.allocate)
        self.sim.stats["timed out transactions aborted"] += len(result.response)
        if self._append(result) and "expiration_ms" in self.config:
            expired = self.tc.expire_transactional_ids(self.sim.now)
            self.sim.stats["transactional ids expired"] += len(expired.response)
            self._append(expired)
        self._arm()
