"""The clients of the replication simulator: idempotent acks=all producers and an
assign-mode consumer (a mixin of ``ReplicationSimulation``)."""

from __future__ import annotations

from rillet.coordinator import replication as R

from .replication_world import (
    CLIENT_TIMEOUT_MS,
    CONTROLLER,
    PARTITION,
    ClientBatch,
    SimProducer,
)


class ClientsMixin:
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
        definite = err in (
            R.NOT_ENOUGH_REPLICAS,
            "OUT_OF_ORDER_SEQUENCE_NUMBER",
            "UNKNOWN_PRODUCER_ID",
        )
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

    def _bump_epoch(self, p: SimProducer) -> None:
        """The producer restarts (InitProducerId): a new epoch from sequence 0; whatever it
        had unanswered may or may not have landed, and late requests of the old epoch are
        fenced with INVALID_PRODUCER_EPOCH once a leader saw the new one."""
        for cb in p.batches:
            for v in cb.values:
                self.history.info(v)
        p.batches.clear()
        p.producer_epoch += 1
        p.next_seq = 0
        p.retry_mode = False

    def _poll(self) -> None:
        leaders = [b for b in self.brokers.values() if b.alive and b.leader is not None]
        if not leaders:
            return
        b = self.rng.choice(leaders)
        hw = min(b.leader.high_watermark, self.position + 50)
        hw = self._read_checked(b, self.position, hw)  # (not past a damaged batch)
        for offset in range(self.position, hw):
            self.history.read("c1", PARTITION, offset, b.log.values[offset])
        self.position = max(self.position, hw)
