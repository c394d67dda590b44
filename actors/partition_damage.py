"""A replica that finds a corrupt batch in its own log (docs/replication.md, "Corruption and
self-healing").

Where it is found: recovery (``log.recovery.damage``: the log was already cut before the
bad batch, so the damage offset is the log end), a read that checks data opened unchecked,
or the broker's scrubber (``Scrub``, actors/scrubber.py). From then on the log serves
nothing from the damage offset on (a fetch returns the batches below it, then
KAFKA_STORAGE_ERROR, retriable); as leader it refuses appends, follower fetches and
OffsetForLeaderEpoch (followers must never truncate to a log that lost records). Then:

1. logs it once and counts it (``damage_events``);
2. reports it to the active controller (``ReplicaDamage`` with the leader epoch known when
   it was found, re-sent every second until it is answered NONE), which marks it damaged,
   takes it out of the ISR and leadership and bumps the leader epoch (fencing fetches sent
   before it was found), or takes the partition offline if it was the only in-sync replica;
3. once the metadata shows it damaged, out of the ISR and following another leader:
   truncates to the damage offset (dropping the bad batch and everything after it) and
   re-fetches as a follower. The leader's ISR expansion adds it back when it has caught up,
   which clears the mark.
"""

from __future__ import annotations

import pykka
from rillet.transport import protocol as P

from .partition_messages import DamageAnswer, Scrub, ScrubReport

E = P.ErrorCode
RESEND_MS = 1000


class DamageSide:
    """Mixed into ``PartitionReplica`` (actors/partition.py): runs on its thread."""

    damage_events = 0  # process-wide count of damaged batches found (all partitions)

    def _init_damage(self, send_damage, scrub_enabled: bool) -> None:
        self.send_damage = send_damage
        self.scrub_enabled = scrub_enabled
        self._suspect_logged = False
        self._damage_noted: int | None = None  # offset logged and counted
        self._damage_acked: int | None = None  # offset the controller has recorded
        self._damage_epoch = -1  # the leader epoch known when the damage was noted
        self._damage_next_send = 0
        self._recovery_damage = None  # recovery cut a damaged batch off; not healed yet

    def _damage(self):
        """The damage this replica has not healed yet (logstore.verify.Damage) or None."""
        log = self.log
        if log is None:
            return None
        return log.damage if log.damage is not None else self._recovery_damage

    def _check_damage(self) -> None:
        """After anything that can find damage: note it once, report it until acked."""
        damage = self._damage()
        if damage is None:
            return
        if self._damage_noted != damage.offset:
            self._damage_noted = damage.offset
            self._damage_epoch = self.leader_epoch
            self._damage_acked = None
            self._damage_next_send = 0
            type(self).damage_events += 1
            self._log.error(
                "corrupt batch found by {} at offset {} (segment {}, byte {}): {}; serving "
                "nothing from there on, leaving the ISR and re-fetching it from the leader",
                damage.source,
                damage.offset,
                damage.segment,
                damage.position,
                damage.reason,
            )
        self._send_damage(self.clock())

    def _send_damage(self, now: int) -> None:
        damage = self._damage()
        if (
            damage is None
            or self.send_damage is None
            or self._damage_acked == damage.offset
            or now < self._damage_next_send
        ):
            return
        self._damage_next_send = now + RESEND_MS
        me = self.actor_ref
        offset = damage.offset

        def answered(error: str) -> None:
            try:
                me.tell(DamageAnswer(offset, error))
            except pykka.ActorDeadError:
                pass

        try:
            # the epoch it was found in, also on re-sends: a report of the current epoch from
            # a replica already marked damaged bumps the epoch again (new damage)
            epoch = self._damage_epoch
            self.send_damage(self.topic, self.partition, offset, epoch, answered)
        except Exception:  # noqa: BLE001 - re-sent by the next tick
            self._log.exception("could not send ReplicaDamage")

    def _damage_due(self) -> int | None:
        """When the next ReplicaDamage re-send is due (ms), or None: for a timer service that
        wakes the replica only when something is due (call ``_send_damage`` then)."""
        damage = self._damage()
        if damage is None or self.send_damage is None or self._damage_acked == damage.offset:
            return None
        return self._damage_next_send

    def _damage_answer(self, msg: DamageAnswer) -> None:
        if msg.error == "NONE":
            self._damage_acked = msg.offset
            self._log.info("the controller recorded the damage at offset {}", msg.offset)
            self._heal()
        else:
            self._log.warning("ReplicaDamage refused ({}); retrying", msg.error)

    def _heal(self) -> None:
        """Truncate the damaged batch away once the controller has answered the report and
        the metadata says another replica leads and this one is out of the ISR; the replica
        fetcher then re-fetches it. Not before the answer: with the mark of an earlier report
        in the metadata, a fetch sent before this damage was found could still count at the
        leader (the replication simulator found it); the answer means the epoch was bumped."""
        log, info, damage = self.log, self.info, self._damage()
        if damage is None or info is None or self._damage_acked != damage.offset:
            return
        me = self.broker_id
        if me not in getattr(info, "damaged", ()) or me in info.isr:
            return
        if info.leader < 0 or info.leader == me or self.leader is not None:
            return  # offline (the only in-sync replica): keep everything for an operator
        offset = damage.offset
        before = log.log_end_offset
        self._truncate(offset)
        self._recovery_damage = None
        self._log.warning(
            "truncated the damaged log from {} to {}; re-fetching from leader {}",
            before,
            log.log_end_offset,
            info.leader,
        )
        self._damage_noted = self._damage_acked = None

    def _scrub(self, msg: Scrub) -> None:
        log = self.log
        if log is None:
            msg.reply(ScrubReport(0, True, 0, False))
            return
        try:
            if msg.restart:
                log.start_scrub_pass()
            step = log.scrub(msg.max_bytes)
        except Exception as e:  # noqa: BLE001 - e.g. a failed log: the scrubber moves on
            self._log.error("scrub failed: {}", e)
            msg.reply(ScrubReport(0, True, 0, False))
            return
        if step.damage is not None:
            self._check_damage()
        msg.reply(
            ScrubReport(
                step.bytes_checked, step.pass_done, step.unverified_bytes, log.damage is not None
            )
        )

    def _suspect(self) -> bool:
        """Marked damaged in the metadata but no damage known here (this process restarted
        before it healed): do not fetch, so it is not re-added to the ISR, until the
        scrubber has checked every byte opened unchecked and found the batch (or not)."""
        info, log = self.info, self.log
        if info is None or log is None or self.broker_id not in getattr(info, "damaged", ()):
            return False
        if not self.scrub_enabled or log.unverified_bytes == 0:
            return False
        if not self._suspect_logged:
            self._suspect_logged = True
            self._log.warning(
                "marked damaged, but the damage is not known here: not fetching until the "
                "scrubber has checked the {} bytes opened unchecked",
                log.unverified_bytes,
            )
        return True

    def _refuse_as_damaged_leader(self) -> bool:
        """A damaged leader answers no follower fetch or epoch query (KAFKA_STORAGE_ERROR)."""
        return self.leader is not None and self._damage() is not None
