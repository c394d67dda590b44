"""Damaged replicas in the replication simulator (a mixin of ``ReplicationSimulation``).

Two faults damage a replica's log, as docs/replication.md ("Corruption and self-healing")
describes for real brokers:

* a damaged crash: the broker dies and recovery cuts its log short (a torn write, a
  zero-filled tail, flipped bytes in the last batches), so records the ISR acknowledged may
  be gone from it; recovery knows and reports it (``SimBroker.damage`` = the new log end);
* a bit flip in a batch at rest (``MemLog.flip``: its values really change and its digest
  fails): found when the replica reads it to serve a fetch or a poll, or by its scrubber.

A replica that knows of damage at offset O serves nothing from O on, refuses leadership (as
leader it refuses produce, follower fetches and OffsetForLeaderEpoch with
KAFKA_STORAGE_ERROR), does not fetch, and re-sends ("damage", O, epoch, incarnation) to
the controller until answered NONE (epoch: the leader epoch it knew when it found the
damage). The controller applies the shipped ``election.on_replica_damage`` (out of the ISR
and leadership, leader epoch bumped; offline with ``offline_reason`` if it was the last
in-sync replica). Once the controller has answered and the metadata shows it damaged, out of
the ISR and another broker leading, it truncates to O and re-fetches like any follower; the
leader's ISR expansion adds it back (``alter_partition`` clears the mark). Healing before the
answer would be unsafe: a fetch it sent before finding the damage could still reach the
leader at the old epoch and have it added back with records missing.

Broken variants: ``damaged-leads`` takes what recovery cut off for a torn write (the bug
logstore/recovery.py had for a damaged last batch of a sealed segment): it neither reports
nor refuses leadership, so a last in-sync replica comes back as leader without records it
acknowledged; ``no-digest-check`` serves batches without checking them, re-framed with
fresh digests (so followers and consumers take the rot; only its scrubber finds it).
"""

from __future__ import annotations

from rillet.coordinator import election as E
from rillet.logstore.recovery import RECOVERY_POINT_FILE

from .replication_world import (
    CONTROLLER,
    DAMAGE_RESEND_MS,
    SCRUB_CHANCE,
    SimBroker,
)

KAFKA_STORAGE_ERROR = "KAFKA_STORAGE_ERROR"  # retriable: clients refresh metadata
SCRUB_BYTES = 8192  # per scrubber turn


class DamageMixin:
    # -------------------------------------------------------------------------- faults

    def _reopen(self, b: SimBroker) -> None:
        """The restart of ``b``'s process: the real ``PartitionLog.open`` (recovery). After a
        damaged crash a batch among the last ones rotted meanwhile; recovery finds it (and
        cuts the log there) if it lies above the recovery point, else it stays on disk,
        unverified, until a read or the scrubber finds it. Damage recovery found is reported."""
        log = b.log
        if b.damaged_on_restart:
            b.damaged_on_restart = False
            last = len(log.bases) - 1  # (a damaged last batch would read as a torn tail)
            window = log.log_end_offset - 40
            trusted = log.fs.read_checkpoint(log.directory / RECOVERY_POINT_FILE) or 0
            verified = self.checker.verified.get(b.id, 0)
            candidates = [
                i
                for i in range(last)
                if log.lasts[i] >= window and (log.bases[i] >= trusted or log.lasts[i] < verified)
            ]
            if candidates:
                b.pre_damage = list(log.values)
                log.damage_before_reopen(self.rng.choice(candidates))
                self.stats.damaged += 1
        log.reopen(self.now)
        b.hw_checkpoint = min(b.hw_checkpoint, log.log_end_offset)
        report = log.log.recovery
        if self.variant == "damaged-leads":
            return  # broken on purpose: what recovery cut off is taken for a torn write
        if report is not None and report.damage is not None:
            self.stats.found_by_log += 1
            self._found_damage(b, report.damage.offset)

    def _flip(self, b: SimBroker) -> None:
        """Bit rot in one batch of ``b`` that the checker has already verified (so the
        checker does not mistake the rot itself for a replication bug; what it must never
        see is the rot served: to a follower, a consumer, or counted as committed). Not the
        log's last batch: after a crash, recovery would take that for a torn write."""
        limit = self.checker.verified.get(b.id, 0)
        log = b.log
        candidates = [i for i in range(len(log.bases) - 1) if log.lasts[i] < limit]
        if not candidates:
            return
        log.flip(self.rng.choice(candidates))
        self.stats.flips += 1

    # ------------------------------------------------------------------------ replicas

    def _found_damage(self, b: SimBroker, offset: int) -> None:
        if b.damage is not None and b.damage <= offset:
            return
        b.damage = offset
        b.damage_epoch = b.meta.leader_epoch if b.meta is not None else -1
        b.damage_acked = False
        b.next_damage_ms = self.now
        b.follow = None  # a damaged follower stops fetching until it has healed
        self.stats.damage_reports += 1

    def _found_on_read(self, b: SimBroker, start: int, end: int) -> bool:
        """A read of [start, end) reached a damaged batch the log store's read-time
        verification found (``log.damage``)."""
        damage = b.log.log.damage
        if (
            damage is None
            or self.variant == "no-digest-check"
            or damage.offset >= max(end, start + 1)
        ):
            return False
        if b.damage is None or damage.offset < b.damage:
            self.stats.found_by_log += 1
            self._found_damage(b, damage.offset)
        return True

    def _read_checked(self, b: SimBroker, start: int, end: int) -> int:
        """How far [start, end) of ``b``'s log may be served: up to a damaged batch, which is
        found (its digest fails) when it is read: by the log's own verification for bytes
        it opened unchecked; for bytes that rotted under the running process, modelled
        (``first_flipped``: the real log trusts what it wrote)."""
        if self.variant == "no-digest-check":
            return end
        if b.damage is not None:
            end = min(end, b.damage)
        log = b.log
        if log.log.unverified_bytes:  # read it as the broker serves it: verified
            at = start
            while at < end:
                _data, after = log.read(at, 1 << 30)
                if self._found_on_read(b, at, after) or after == at:
                    break
                at = after
            if b.damage is not None:
                end = min(end, b.damage)
        flipped = b.log.first_flipped(start, end)
        if flipped is not None:
            self._found_damage(b, flipped)
            end = flipped
        return max(start, end)

    def _damage_tick(self, b: SimBroker) -> None:
        if self.rng.random() < SCRUB_CHANCE:  # the scrubber's turn
            step = b.log.log.scrub(SCRUB_BYTES)  # the log store's own scrub (sealed segments)
            if step.damage is not None and self.variant != "no-digest-check":
                self.stats.found_by_log += 1
                self._found_damage(b, step.damage.offset)
            if step.pass_done:
                b.log.log.start_scrub_pass()
            if b.log.flipped:  # rot in what the running process wrote: modelled
                self._found_damage(b, min(b.log.flipped))
        meta = b.meta
        if meta is not None and self._try_heal(b, meta):
            self._follow_meta(b, meta)
            return
        if (
            b.damage is None
            or b.damage_acked
            or meta is None  # not registered yet: the report would be refused as stale
            or b.id not in meta.replicas
            or self.now < b.next_damage_ms
        ):
            return
        b.next_damage_ms = self.now + DAMAGE_RESEND_MS
        if b.damage_epoch < 0:
            b.damage_epoch = meta.leader_epoch
        self._send(b.id, CONTROLLER, ("damage", b.damage, b.damage_epoch, b.incarnation))

    def _on_damage_resp(self, b: SimBroker, offset: int, error: str) -> None:
        if error == E.NONE and b.damage == offset:
            b.damage_acked = True
            if b.meta is not None and self._try_heal(b, b.meta):
                self._follow_meta(b, b.meta)

    def _damage_meta(self, b: SimBroker, st: E.PartitionState) -> None:
        """A new partition state reached ``b``: heal if it may, or re-report damage that the
        state does not record (e.g. a reassignment dropped and re-added the replica)."""
        if b.damage is not None and b.id not in st.damaged:
            b.damage_acked = False
        self._try_heal(b, st)

    def _try_heal(self, b: SimBroker, st: E.PartitionState) -> bool:
        """Truncate the damage away once the controller has recorded it and ``st`` shows
        ``b`` damaged, out of the ISR and following another leader."""
        if b.damage is None or not b.damage_acked or b.id not in st.damaged:
            return False
        if b.id in st.isr or st.leader in (E.NO_LEADER, b.id) or b.leader is not None:
            return False  # offline with it as the last in-sync replica: keep everything
        b.pre_damage = list(b.log.values)
        b.truncate(b.damage)
        b.damage = None
        self.stats.healed += 1
        return True

    def _refuses_as_damaged(self, b: SimBroker) -> bool:
        """A damaged leader answers no produce, follower fetch or epoch query."""
        return b.damage is not None and self.variant != "damaged-leads"

    # ---------------------------------------------------------------------- controller

    def _offline_damaged(self) -> bool:
        """The terminal state "partition offline, reason damaged": the last in-sync replica
        is damaged, and without unclean election nothing may replace what it lost."""
        st = self.state
        if st.leader != E.NO_LEADER or self.variant == "unclean-enabled":
            return False
        return any(r in st.damaged for r in st.isr)  # (offline_reason names it)
