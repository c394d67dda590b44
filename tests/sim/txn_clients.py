"""Transactional producers for the transaction simulation (see txn_harness.py).

A ``SimClient`` is one instance of a transactional producer, as the real client behaves:
``InitProducerId`` -> (``AddPartitionsToTxn`` -> transactional batches -> ``EndTxn``)*. One
request at a time; a request unanswered after ``REQUEST_TIMEOUT_MS`` is sent again (a
produce with the same batch: same sequence, so the partition deduplicates it), a retriable
error (CONCURRENT_TRANSACTIONS, NOT_COORDINATOR) after a back-off. The client commits only if
every one of its batches was acknowledged (Kafka's rule: a failed send makes the transaction
abortable), else aborts; PRODUCER_FENCED or INVALID_PRODUCER_EPOCH fence the instance for
good. The harness pauses instances (a long GC pause: on waking they resend what they were
doing with their old epoch: a zombie), kills some (their transaction must time out), and
starts a second instance of a transactional id (fencing the first).

What the client believed is kept for the checks: ``sim.claims`` gets (name, transactional
id, producer id, the transaction's epoch, committed?, acknowledged values, sent values) at
every successful EndTxn.
"""

from __future__ import annotations

from rillet.coordinator.transactions import TopicPartition
from rillet.logstore import batch as B

from .txn_world import TOPIC, Msg

REQUEST_TIMEOUT_MS = 250
TXN_TIMEOUT_MS = 2_500
BACKOFF_MS = 40
MAX_PRODUCE_ATTEMPTS = 6
FATAL = ("PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH", "INVALID_PRODUCER_ID_MAPPING")
RETRIABLE = ("CONCURRENT_TRANSACTIONS", "NOT_COORDINATOR")
ABORTABLE = ("INVALID_TXN_STATE", "CONCURRENT_TRANSACTIONS")


class SimClient:
    def __init__(self, sim, name: str, tid: str, txns: int, start_ms: int) -> None:
        self.sim = sim
        self.name = name
        self.tid = tid
        self.txns_left = txns
        self.state = "new"
        self.pid = self.epoch = -1
        self.txn_no = 0
        self.pending: Msg | None = None
        self.attempts = 0
        self.paused_until = 0
        self.fenced = False
        self.plan: list[tuple[TopicPartition, int, list[bytes], bytes]] = []
        self.next_batch = 0
        self.data_epoch = -1
        self.commit = False
        self.acked: dict[TopicPartition, list[bytes]] = {}
        self.sent: dict[TopicPartition, list[bytes]] = {}
        sim.at(start_ms, self._start)

    @property
    def up(self) -> bool:
        return self.state not in ("dead", "stopped") and self.sim.now >= self.paused_until

    @property
    def active(self) -> bool:
        return self.state in ("init", "add", "produce", "end")

    # ------------------------------------------------------------------------ requests

    def _request(self, kind: str, dst: str, **body) -> None:
        self.pending = Msg(kind, self.name, dst, self.sim.next_id(), body)
        self._send()

    def _send(self) -> None:
        msg = self.pending
        msg.rid = self.sim.next_id()  # a timed-out request's late answer is discarded
        self.sim.net.send(Msg(msg.kind, msg.src, msg.dst, msg.rid, msg.body))
        self.sim.at(self.sim.now + REQUEST_TIMEOUT_MS, self._timed_out, msg.rid)

    def _timed_out(self, rid: int) -> None:
        if self.pending is None or self.pending.rid != rid or not self.up:
            return  # answered, or paused (resent on waking), or gone
        if self.pending.kind == "produce":
            self.attempts += 1
            if self.attempts >= MAX_PRODUCE_ATTEMPTS:
                self.sim.trace(f"{self.name} gives up {self.pending.body['what']}")
                self.pending = None
                self._end(False)
                return
        self._send()

    def _retry_later(self) -> None:
        msg = self.pending
        self.sim.at(self.sim.now + BACKOFF_MS, self._retry, msg)

    def _retry(self, msg: Msg) -> None:
        if self.pending is msg and self.up:
            self._send()

    def receive(self, msg: Msg) -> None:
        if self.pending is None or msg.rid != self.pending.rid or not self.active:
            return
        error = msg.body["error"]
        if error in RETRIABLE and msg.kind != "produce_reply":
            self._retry_later()
            return
        self.pending = None
        if error in FATAL or (
            error == "TRANSACTIONAL_ID_NOT_FOUND" and self.sim.cfg.expiration_ms is not None
        ):  # (an id expires only when its instances were idle that long: gone, or zombies)
            self.sim.trace(f"{self.name} fenced ({msg.kind}: {error})")
            self.state = "fenced"
            self.fenced = True
            return
        handler = getattr(self, "_on_" + msg.kind)
        handler(msg, error)

    # --------------------------------------------------------------------- the lifecycle

    def _start(self) -> None:
        if self.sim.stopping or self.state != "new":
            return
        self.state = "init"
        self._request("init", "coord", tid=self.tid, timeout_ms=TXN_TIMEOUT_MS)

    def _on_init_reply(self, msg: Msg, error: str) -> None:
        if error != "NONE":
            self.sim.unexpected.append(f"{self.name} init: {error}")
            self.state = "fenced"
            return
        self.pid, self.epoch = msg.body["response"].producer_id, msg.body["response"].producer_epoch
        self.sim.on_producer_granted(self.name, self.pid, self.epoch)
        self.sim.trace(f"{self.name} has producer {self.pid} epoch {self.epoch}")
        self._begin()

    def _begin(self) -> None:
        if self.txns_left <= 0 or self.sim.stopping:
            self.state = "done"
            return
        rng = self.sim.rng
        self.txn_no += 1
        tps = sorted(rng.sample(self.sim.tps, rng.randint(1, min(3, len(self.sim.tps)))))
        self.plan, seqs = [], dict.fromkeys(tps, 0)
        for _ in range(rng.randint(len(tps), 2 * len(tps))):
            tp = rng.choice(tps)
            n = rng.randint(1, 3)
            values = [
                f"{self.name}/{self.txn_no}/{tp.partition}/{seqs[tp] + i}".encode()
                for i in range(n)
            ]
            b = B.BatchBuilder(
                producer_id=self.pid,
                producer_epoch=self.epoch,
                base_sequence=seqs[tp],
                is_transactional=True,
            )
            for v in values:
                b.append(self.sim.now, None, v)
            self.plan.append((tp, seqs[tp], values, b.build()))
            seqs[tp] += n
        self.next_batch = 0
        self.data_epoch = self.epoch
        self.acked = {tp: [] for tp in tps}
        self.sent = {tp: [] for tp in tps}
        self.state = "add"
        self._request(
            "add",
            "coord",
            tid=self.tid,
            pid=self.pid,
            epoch=self.epoch,
            tps=[tuple(tp) for tp in tps],
        )

    def _on_add_reply(self, msg: Msg, error: str) -> None:
        if error != "NONE":
            self.sim.unexpected.append(f"{self.name} add: {error}")
            self.state = "fenced"
            return
        self.state = "produce"
        self._produce_next()

    def _produce_next(self) -> None:
        if self.next_batch == len(self.plan):
            self._end(self.sim.rng.random() < 0.75)
            return
        tp, seq, values, data = self.plan[self.next_batch]
        what = f"{self.name} txn {self.txn_no} {TOPIC}-{tp.partition} seq {seq}"
        for v in values:
            self.sim.values[v] = (self.pid, self.data_epoch)
        self.sent[tp].extend(values)
        self.attempts = 0
        self._request(
            "produce",
            f"p{tp.partition}",
            tid=self.tid,
            pid=self.pid,
            epoch=self.epoch,
            batch=data,
            what=what,
        )

    def _on_produce_reply(self, msg: Msg, error: str) -> None:
        if error == "NONE":
            tp, _seq, values, _data = self.plan[self.next_batch]
            self.acked[tp].extend(values)
            self.next_batch += 1
            self._produce_next()
            return
        if error not in ABORTABLE:
            self.sim.unexpected.append(f"{self.name} produce: {error}")
        self._end(False)

    def _end(self, commit: bool) -> None:
        self.state = "end"
        self.commit = commit
        self._request("end", "coord", tid=self.tid, pid=self.pid, epoch=self.epoch, commit=commit)

    def _on_end_reply(self, msg: Msg, error: str) -> None:
        r = msg.body["response"]
        if error == "NONE":
            self.sim.claims.append(
                (self.name, self.tid, self.pid, self.data_epoch, self.commit, self.acked, self.sent)
            )
            self.sim.trace(f"{self.name} ended txn {self.txn_no} commit={self.commit}")
            self.pid, self.epoch = r.producer_id, r.producer_epoch
            self.sim.on_producer_granted(self.name, self.pid, self.epoch)
            self.txns_left -= 1
            self.state = "between"
            self.sim.at(self.sim.now + self.sim.rng.randint(0, 200), self._next)
            return
        # INVALID_TXN_STATE: it ended the other way (a timeout aborted it): start over
        self.sim.trace(f"{self.name} end: {error}: init again")
        if not (error == "INVALID_TXN_STATE" and self.commit):
            self.sim.unexpected.append(f"{self.name} end(commit={self.commit}): {error}")
        self.state = "new"
        self._start()

    def _next(self) -> None:
        if self.state != "between":
            return
        if not self.commit and self.sim.rng.random() < 0.3 and not self.sim.stopping:
            # after an abort, re-initialise with the current pair (KIP-360): a bump that
            # keeps the producer id, recognised if retried
            self.state = "init"
            self.sim.stats["KIP-360 re-initialisations"] += 1
            self._request(
                "init",
                "coord",
                tid=self.tid,
                timeout_ms=TXN_TIMEOUT_MS,
                pid=self.pid,
                epoch=self.epoch,
            )
            return
        self._begin()

    # -------------------------------------------------------------------------- faults

    def pause(self, ms: int) -> None:
        """A long stop (GC, swapped out): on waking it resends what it was doing."""
        self.paused_until = self.sim.now + ms
        self.sim.at(self.paused_until, self._wake)

    def _wake(self) -> None:
        if self.pending is not None and self.up and self.active:
            if self.sim.rng.random() < 0.7:
                self._stray_write()
            self._send()

    def _stray_write(self) -> None:
        """A zombie's write to a partition its transaction never added (fire and forget):
        KIP-890 part 1 refuses it; without it the write would open a transaction no
        coordinator ends (a hanging transaction, KAFKA-14402)."""
        others = [tp for tp in self.sim.tps if tp not in self.sent]
        if not others or self.pid < 0:
            return
        tp = self.sim.rng.choice(others)
        self.sim.stats["stray writes"] += 1
        value = f"{self.name}/{self.txn_no}/stray/{tp.partition}/{self.sim.now}".encode()
        self.sim.values[value] = (self.pid, self.data_epoch)
        b = B.BatchBuilder(
            producer_id=self.pid, producer_epoch=self.epoch, base_sequence=0, is_transactional=True
        )
        b.append(self.sim.now, None, value)
        what = f"{self.name} txn {self.txn_no} stray {TOPIC}-{tp.partition}"
        body = dict(tid=self.tid, pid=self.pid, epoch=self.epoch, batch=b.build(), what=what)
        self.sim.net.send(Msg("produce", self.name, f"p{tp.partition}", self.sim.next_id(), body))

    def kill(self) -> None:
        self.state = "dead"
        self.pending = None

    def stop(self) -> None:
        if self.state != "dead":
            self.state = "stopped"
        self.pending = None
