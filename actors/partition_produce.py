"""Produce on the leader: the checks of the partition's role (leader, not damaged, acks=all
with enough in-sync replicas), then the batches validated and appended by
logstore/validator.py (producer state: duplicates, sequence gaps), then the answer (acks=0/1
at once, acks=all once the high watermark passes, group-commit after one fsync). A client's
transactional produce (``Append.transactional_id``) first passes the verification gate of
partition_txn.py (KIP-890 part 1); other produces never touch it."""

from __future__ import annotations

from collections.abc import Callable

from rillet.coordinator import replication as RC
from rillet.logstore.log import PartitionLog
from rillet.logstore.validator import append_validated
from rillet.transport import protocol as P

from .partition_messages import (
    Append,
    code_of,
    error_code_for,
)

E = P.ErrorCode


def _trusted(producer_id: int, producer_epoch: int) -> bool:
    """An internal writer (Append.verified) checked the transaction itself."""
    return True


class ProduceSide:
    """Mixed into ``PartitionReplica`` (actors/partition.py): runs on its thread, uses its
    state."""

    # ----------------------------------------------------------------------------- produce

    def _append(self, msg: Append) -> None:
        transactional = msg.transactional_id is not None and not msg.verified
        if transactional and not self._txn_gate(msg):
            return  # parked until the transaction coordinator answers (partition_txn.py)
        log = self.log
        leader = self.leader
        dup = None
        append_time = -1  # a LogAppendTime topic's stamp (logstore/rewrite.py)
        if log is None:
            code, message, base, last = E.KAFKA_STORAGE_ERROR, "partition log is offline", -1, -1
        elif leader is None:
            code, message, base, last = E.NOT_LEADER_OR_FOLLOWER, "not the leader", -1, -1
        elif self._damage() is not None:  # leaving leadership (partition_damage.py)
            code, message, base, last = (
                E.KAFKA_STORAGE_ERROR,
                f"replica damaged at offset {self._damage().offset}",
                -1,
                -1,
            )
        else:
            check = leader.check_append(msg.acks)
            if check != RC.NONE:
                code, message, base, last = (
                    code_of(check),
                    f"{check} (isr {list(leader.isr)})",
                    -1,
                    -1,
                )
            else:
                verified = (
                    _trusted if msg.verified else self._is_verified if transactional else None
                )
                code, message, base, last, dup = self._append_batches(log, msg.records, verified)
                append_time = self._log_append_time
        if code == E.NONE and dup is None:
            self._carry_out(leader.on_append(log.log_end_offset, self.clock()))
            # followers fetch up to the LEO: wake them now (consumers wait for the HW)
            self._serve_waiters(followers_only=self.high_watermark < log.log_end_offset)
        if msg.reply is None:
            return
        response = P.ProducePartitionResponse(
            partition=self.partition,
            error_code=code,
            base_offset=base,
            log_append_time_ms=append_time if code == E.NONE else -1,
            log_start_offset=log.log_start_offset if log is not None and code == E.NONE else -1,
            error_message=message,
        )
        if code == E.NONE and msg.acks == -1:
            self._ack_seq += 1
            key = self._ack_seq
            self._acks[key] = (msg.reply, response)
            done = leader.wait_for_ack(key, last, self.clock() + max(msg.timeout_ms, 1))
            if done is not None:
                self._carry_out(RC.Progress(self.high_watermark, completions=(done,)))
            return
        self._reply(msg.reply, response)

    def _append_batches(self, log: PartitionLog, records: bytes, verified=None):
        """(code, message, base_offset, last_offset, duplicate-or-None): the rules are
        logstore/validator.py's; ``verified(pid, epoch)`` answers for transactional batches
        (None: refused, INVALID_TXN_STATE). Sets ``_log_append_time`` (-1: CreateTime)."""
        self._log_append_time = -1
        try:
            r = append_validated(
                log, self.pstate, records, self.leader_epoch, self.clock(), verified
            )
        except Exception as e:  # noqa: BLE001 - mapped to a code; a failed log stays failed
            code = error_code_for(e)
            if code == E.KAFKA_STORAGE_ERROR:
                self._log.error("log failed on append: {}", e)
            return code, str(e), -1, -1, None
        if r.error != "NONE":
            self._log.debug("refused batch: {} {}", r.error, r.message)
        self._log_append_time = r.log_append_time
        return code_of(r.error), r.message, r.base_offset, r.last_offset, r.duplicate

    def _group_commit(self) -> None:
        try:
            if self.log is not None:
                self.log.flush()
        except Exception as e:  # noqa: BLE001
            self._log.error("group commit fsync failed: {}", e)
            failed = [
                (
                    reply,
                    P.ProducePartitionResponse(
                        partition=self.partition,
                        error_code=E.KAFKA_STORAGE_ERROR,
                        error_message=str(e),
                    ),
                )
                for reply, _ in self._unacked
            ]
            self._unacked = failed
        self._release_unacked()

    def _release_unacked(self) -> None:
        unacked, self._unacked = self._unacked, []
        for reply, response in unacked:
            try:
                reply(response)
            except Exception:  # noqa: BLE001
                self._log.exception("produce reply failed")

    def _reply(self, reply: Callable, response: P.ProducePartitionResponse) -> None:
        if response.error_code == E.NONE and self.config.flush_mode == "group-commit":
            self._unacked.append((reply, response))
            return
        try:
            reply(response)
        except Exception:  # noqa: BLE001
            self._log.exception("produce reply failed")
