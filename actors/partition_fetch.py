"""Fetch on the leader: consumer reads below the high watermark, follower fetches up to the
log end offset (which move the ISR and the high watermark), parked long-poll waiters, and
OffsetForLeaderEpoch."""

from __future__ import annotations

from rillet.coordinator import replication as RC
from rillet.transport import protocol as P

from .partition_messages import (
    EpochEndOffset,
    Read,
    _Waiter,
    code_of,
    error_code_for,
)
from .ticker import now_ms

E = P.ErrorCode


class FetchSide:
    """Mixed into ``PartitionReplica`` (actors/partition.py): runs on its thread, uses its
    state."""

    # ------------------------------------------------------------------------------- fetch

    def _fetch_response(
        self, fetch_offset: int, max_bytes: int, follower: bool = False
    ) -> P.FetchPartitionResponse:
        log = self.log
        if log is None:
            return P.FetchPartitionResponse(
                partition=self.partition, error_code=E.KAFKA_STORAGE_ERROR
            )
        try:
            limit = None if follower else self.high_watermark
            records = log.read(fetch_offset, max(max_bytes, 1), limit)
            code = E.NONE
        except Exception as e:  # noqa: BLE001
            records, code = b"", error_code_for(e)
        if log.damage is not None and self._damage_noted != log.damage.offset:
            self._check_damage()  # this read found it (partition_damage.py)
        return P.FetchPartitionResponse(
            partition=self.partition,
            error_code=code,
            high_watermark=self.high_watermark,
            last_stable_offset=self.high_watermark,
            log_start_offset=log.log_start_offset,
            records=records,
        )

    def _read(self, msg: Read) -> None:
        follower = msg.replica_id >= 0
        if follower or (msg.current_leader_epoch >= 0 and self.info is not None):
            code = self._check_follower_fetch(msg) if follower else None
            if code is None and msg.current_leader_epoch >= 0:
                fence = RC.check_leader_epoch(msg.current_leader_epoch, self.leader_epoch)
                code = None if fence == RC.NONE else code_of(fence)
            if code is not None:
                log = self.log
                msg.reply(
                    P.FetchPartitionResponse(
                        partition=self.partition,
                        error_code=code,
                        high_watermark=self.high_watermark,
                        log_start_offset=log.log_start_offset if log is not None else -1,
                    )
                )
                return
        if not follower and self.info is not None and self.leader is None:
            msg.reply(
                P.FetchPartitionResponse(
                    partition=self.partition, error_code=E.NOT_LEADER_OR_FOLLOWER
                )
            )
            return
        response = self._fetch_response(msg.fetch_offset, msg.max_bytes, follower)
        msg.reply(response)
        if msg.on_data is not None and response.error_code == E.NONE and not response.records:
            if self._waiters:  # drop expired ones (their sessions answered at the deadline)
                now = now_ms()
                self._waiters = [w for w in self._waiters if w.deadline_ms > now]
            self._waiters.append(
                _Waiter(msg.fetch_offset, msg.max_bytes, msg.on_data, msg.deadline_ms, follower)
            )

    def _check_follower_fetch(self, msg: Read) -> int | None:
        """A follower fetch on the leader: record its progress; an error code or None."""
        leader, log = self.leader, self.log
        if leader is None or log is None:
            return E.NOT_LEADER_OR_FOLLOWER
        if self._refuse_as_damaged_leader():
            return E.KAFKA_STORAGE_ERROR
        decision = leader.on_follower_fetch(
            msg.replica_id,
            msg.fetch_offset,
            now_ms(),
            current_leader_epoch=msg.current_leader_epoch,
            log_start_offset=log.log_start_offset,
            incarnation=msg.replica_incarnation,
        )
        self._carry_out(decision.progress)
        if decision.error != RC.NONE:
            return code_of(decision.error)
        return None

    def _serve_waiters(self, followers_only: bool = False) -> None:
        if not self._waiters:
            return
        keep = []
        for w in self._waiters:
            if followers_only and not w.follower:
                keep.append(w)
                continue
            response = self._fetch_response(w.fetch_offset, w.max_bytes, w.follower)
            # a follower also wants a new high watermark with no new records
            if response.records or response.error_code != E.NONE or w.follower:
                try:
                    w.on_data(response)
                except Exception:  # noqa: BLE001
                    self._log.exception("fetch waiter failed")
            else:
                keep.append(w)
        self._waiters = keep

    def _epoch_end_offset(self, msg: EpochEndOffset) -> None:
        leader, log = self.leader, self.log
        if leader is None or log is None:
            msg.reply(
                P.EpochEndOffset(partition=self.partition, error_code=E.NOT_LEADER_OR_FOLLOWER)
            )
            return
        if self._refuse_as_damaged_leader():
            msg.reply(P.EpochEndOffset(partition=self.partition, error_code=E.KAFKA_STORAGE_ERROR))
            return
        error, epoch, end = RC.leader_epoch_end_offset(
            log.epochs,
            log.log_end_offset,
            leader_epoch=leader.leader_epoch,
            current_leader_epoch=msg.current_leader_epoch,
            requested_epoch=msg.leader_epoch,
        )
        msg.reply(
            P.EpochEndOffset(
                partition=self.partition,
                error_code=code_of(error),
                leader_epoch=epoch,
                end_offset=end,
            )
        )

    def _drop_consumer_waiters(self) -> None:
        if not self._waiters:
            return
        gone, self._waiters = self._waiters, []
        for w in gone:
            try:
                w.on_data(
                    P.FetchPartitionResponse(
                        partition=self.partition, error_code=E.NOT_LEADER_OR_FOLLOWER
                    )
                )
            except Exception:  # noqa: BLE001
                self._log.exception("fetch waiter failed")
