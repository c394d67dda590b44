"""The brokers of the replication simulator (a mixin of ``ReplicationSimulation``: ``self``
has the network, clock, rng, checker and the controller of replication_controller.py)."""

from __future__ import annotations

from rillet.coordinator import election as E
from rillet.coordinator import replication as R
from rillet.logstore import batch as B
from rillet.logstore.errors import LogStoreError
from rillet.logstore.validator import append_validated

from .replication_damage import KAFKA_STORAGE_ERROR
from .replication_world import (
    _TICK,
    CHECKPOINT_MS,
    CONTROLLER,
    FETCH_BACKOFF_MS,
    FETCH_TIMEOUT_MS,
    HEARTBEAT_MS,
    MIN_INSYNC,
    PURGATORY_MS,
    TICK_MS,
    FollowState,
    InvariantViolation,
    SimBroker,
)
from .variants import NoDedupProducerState, reframed


class NodesMixin:
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
        self._damage_meta(b, st)
        self._follow_meta(b, st)

    def _follow_meta(self, b: SimBroker, st: E.PartitionState) -> None:
        if b.id not in st.replicas:  # not (or no longer) a replica: stop fetching
            b.follow = None
            return
        if st.leader == b.id:
            if b.leader is None and (b.damage is None or self.variant == "damaged-leads"):
                self._become_leader(b, st)
            return
        if st.leader == E.NO_LEADER or b.damage is not None:
            b.follow = None  # (a damaged replica fetches nothing until it has healed)
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
        self.checker.became_leader(b.id, st.leader_epoch, b)
        b.follow = None
        log = b.log
        log.epochs.assign(st.leader_epoch, log.log_end_offset)
        rebuilt = b.rebuild_pstate()
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
            self._send(b.id, CONTROLLER, ("alter", p.propose, str(b.incarnation)))
        if p.high_watermark > b.hw:
            b.hw = p.high_watermark

    def _answer(self, b: SimBroker, c: R.Completion) -> None:
        client, attempt, base = b.parked.pop(c.key)
        # acks=all: on at least min.insync.replicas logs right now. (A duplicate answered
        # with the offsets of records committed earlier was checked when first acknowledged;
        # a bit flip or a damaged crash may have taken copies since, which the replicas heal.
        # Likewise a copy that damage cut after the follower's fetch said it had it - the
        # fetch may still be on its way - counts: losing it is what damage reports are for.)
        if c.error == R.NONE and c.last_offset >= len(self.checker.ref):
            end = c.last_offset + 1
            expected = b.log.values[base:end]
            holders = [
                x.id
                for x in self.brokers.values()
                if x.log.values[base:end] == expected or x.pre_damage[base:end] == expected
            ]
            if len(holders) < MIN_INSYNC:
                raise InvariantViolation(
                    f"leader {b.id} acknowledged offsets {base}..{c.last_offset} held only by "
                    f"{holders} (min.insync.replicas={MIN_INSYNC})"
                )
        self._send(b.id, client, ("produce_resp", attempt, c.error, base))

    def _broker_receive(self, b: SimBroker, src, msg: tuple) -> None:
        kind = msg[0]
        if kind == "meta":
            if msg[2] == b.incarnation:  # else sent before this broker (re)registered
                b.meta_offset = max(b.meta_offset, msg[3])
                self._on_meta(b, msg[1])
        elif kind == "produce":
            self._on_produce(b, src, *msg[1:])
        elif kind == "fetch":
            self._on_fetch(b, src, *msg[1:])
        elif kind == "ofle":
            _, req, current, requested = msg
            L = b.leader
            if L is None or self._refuses_as_damaged(b):
                err = R.NOT_LEADER_OR_FOLLOWER if L is None else KAFKA_STORAGE_ERROR
                self._send(b.id, src, ("ofle_resp", req, err, -1, -1))
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
        elif kind == "damage_resp":
            self._on_damage_resp(b, msg[1], msg[2])

    def _on_produce(
        self, b: SimBroker, client: str, attempt: int, pid: int, pepoch: int, seq: int, values
    ) -> None:
        L = b.leader
        if L is None or L.resigned:
            self._send(b.id, client, ("produce_resp", attempt, R.NOT_LEADER_OR_FOLLOWER, -1))
            return
        err = KAFKA_STORAGE_ERROR if self._refuses_as_damaged(b) else L.check_append(-1)
        if err != R.NONE:
            self._send(b.id, client, ("produce_resp", attempt, err, -1))
            return
        # the batch as the client builds it, appended by the broker's own produce path
        builder = B.BatchBuilder(producer_id=pid, producer_epoch=pepoch, base_sequence=seq)
        for v in values:
            builder.append(self.now, None, v)
        records = builder.build()
        producers = NoDedupProducerState(b.pstate) if self.variant == "no-dedup" else b.pstate
        start = b.log.log_end_offset
        a = append_validated(b.log.log, producers, records, L.leader_epoch, self.now)
        if a.error != R.NONE:
            self._send(b.id, client, ("produce_resp", attempt, a.error, -1))
            return
        base, last = a.base_offset, a.last_offset
        if a.duplicate is None:
            b.log.appended(start)
            b.appended(records, self.snapshot_every, leader=True)
            self._carry(b, L.on_append(b.log.log_end_offset, self.now))
        self._req += 1
        b.parked[self._req] = (client, attempt, base)
        done = L.wait_for_ack(self._req, last, self.now + PURGATORY_MS)
        if done is not None:
            self._answer(b, done)

    def _on_fetch(
        self,
        b: SimBroker,
        follower: int,
        req: int,
        epoch: int,
        offset: int,
        last_epoch,
        incarnation: str,
    ) -> None:
        L = b.leader
        if L is None or self._refuses_as_damaged(b):
            err = R.NOT_LEADER_OR_FOLLOWER if L is None else KAFKA_STORAGE_ERROR
            self._send(b.id, follower, ("fetch_resp", req, err, b"", 0, None))
            return
        d = L.on_follower_fetch(
            follower,
            offset,
            self.now,
            current_leader_epoch=epoch,
            last_fetched_epoch=last_epoch,
            epochs=b.log.epochs,
            incarnation=incarnation,
        )
        self._carry(b, d.progress)
        data, err = b"", d.error
        if d.error == R.NONE and d.diverging_epoch is None:
            data, end = b.log.read(offset, self.max_fetch_batches)
            if self.variant == "no-digest-check":  # broken: re-framed as served, unchecked
                data = reframed(data)
            if self._found_on_read(b, offset, end) or (
                data and self._read_checked(b, offset, end) < end
            ):
                # it read a damaged batch just now: from here on it refuses fetches
                data, err = b"", KAFKA_STORAGE_ERROR
        self._send(
            b.id,
            follower,
            ("fetch_resp", req, err, data, L.high_watermark, d.diverging_epoch),
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
        fetch = ("fetch", req, f.leader_epoch, b.log.log_end_offset, last_epoch, str(b.incarnation))
        self._send(b.id, f.leader, fetch)

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

    def _on_fetch_resp(self, b: SimBroker, req: int, err: str, data, hw: int, diverging) -> None:
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
        if data and B.read_header(data).base_offset == log.log_end_offset:
            try:
                log.append_replicated(data, self.now)  # checks every digest
            except LogStoreError:  # (a corrupt batch): the real follower answers an error
                f.next_ms = self.now + FETCH_TIMEOUT_MS
                self.stats.corrupt_fetched += 1
                return
            b.appended(data, self.snapshot_every)
        b.hw = max(b.hw, R.follower_high_watermark(hw, log.log_end_offset))
        if data:
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
        self._damage_tick(b)
        if self.now >= b.next_hb_ms:
            b.next_hb_ms = self.now + HEARTBEAT_MS
            self._send(b.id, CONTROLLER, ("hb", b.incarnation, b.meta_offset))
        if self.now >= b.next_checkpoint_ms:
            b.next_checkpoint_ms = self.now + CHECKPOINT_MS
            b.hw_checkpoint = min(b.hw, b.log.log_end_offset)
            b.log.log.flush()  # the recovery point (its checkpoint: maybe_flush's timer)
            b.log.log.maybe_flush(self.now)

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
