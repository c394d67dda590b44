"""The follower side, driven by the replica fetcher (actors/replica_fetcher.py) with ``ask``:
state, truncation to the leader's epoch boundary (KIP-101/279), append of fetched batches
(with their producer state and aborted-transaction index, logstore/transactions.py)."""

from __future__ import annotations

from rillet.coordinator import replication as RC
from rillet.logstore import producer_state as PS
from rillet.logstore import transactions as T
from rillet.transport import protocol as P

from .delete_records import follow_log_start
from .partition_messages import (
    FollowerAppend,
    FollowerTruncate,
)

E = P.ErrorCode


class FollowerSide:
    """Mixed into ``PartitionReplica`` (actors/partition.py): runs on its thread, uses its
    state."""

    # ---------------------------------------------------------------------------- follower

    def _is_follower_of(self, leader_epoch: int) -> bool:
        # A damaged replica does not fetch until it has truncated the bad batch away
        # (partition_damage.py): a caught-up fetch would get it re-added to the ISR first.
        return (
            self.log is not None
            and self.leader is None
            and self.follower_epoch == leader_epoch
            and self._damage() is None
            and not self._suspect()
        )

    def _follower_state(self, leader_epoch: int):
        if not self._is_follower_of(leader_epoch):
            return None
        log = self.log
        return log.log_end_offset, log.epochs.latest_epoch, self.high_watermark

    def _follower_truncate(self, msg: FollowerTruncate):
        if not self._is_follower_of(msg.leader_epoch):
            return None
        log = self.log
        t = RC.follower_truncation(
            log.epochs, log.log_end_offset, self.high_watermark, msg.epoch, msg.end_offset
        )
        self._truncate(t.truncate_to)
        return t.done, log.log_end_offset, log.epochs.latest_epoch

    def _truncate(self, offset: int) -> None:
        self._forget_lso()
        log = self.log
        before = log.log_end_offset
        log.truncate_to(offset)
        log.epochs.truncate_from_end(log.log_end_offset)  # also drops an empty epoch at the LEO
        leo = log.log_end_offset
        if leo < before:
            self._log.info("truncated from {} to {}", before, leo)
            if not self.pstate.truncate_to(leo):
                self.pstate = PS.rebuild_from_log(log, self.snapshots.read(max_offset=leo))
            self.snapshots.delete_above(leo)
        self.high_watermark = min(self.high_watermark, leo)

    def _follower_append(self, msg: FollowerAppend):
        if not self._is_follower_of(msg.leader_epoch):
            return None
        log = self.log
        self._forget_lso()
        if msg.records:
            log.append_replicated(msg.records, self.clock())
            # producer state (open transactions, markers) and the aborted-transaction index
            # exactly as the leader built them
            T.apply_replicated(log, self.pstate, msg.records)
        leo = log.log_end_offset
        hw = RC.follower_high_watermark(msg.high_watermark, leo)
        if hw > self.high_watermark:
            self.high_watermark = hw
            self.pstate.on_high_watermark_updated(hw)
        if msg.log_start_offset > log.log_start_offset:
            follow_log_start(self, msg.log_start_offset)  # delete_records.py
        return leo, log.epochs.latest_epoch  # the next fetch's offset and last fetched epoch
