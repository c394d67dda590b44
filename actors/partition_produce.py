"""Produce on the leader: validate the batches of a request (producer state: duplicates,
sequence gaps), append them, answer (acks=0/1 at once, acks=all once the high watermark
passes, group-commit after one fsync)."""

from __future__ import annotations

from collections.abc import Callable

from rillet.coordinator import replication as RC
from rillet.logstore import batch as B
from rillet.logstore import producer_state as PS
from rillet.logstore.errors import (
    CorruptBatchError,
)
from rillet.logstore.log import PartitionLog
from rillet.transport import protocol as P

from .partition_messages import (
    Append,
    code_of,
    error_code_for,
)
from .ticker import now_ms

E = P.ErrorCode


class ProduceSide:
    """Mixed into ``PartitionReplica`` (actors/partition.py): runs on its thread, uses its
    state."""

    # ----------------------------------------------------------------------------- produce

    def _append(self, msg: Append) -> None:
        log = self.log
        leader = self.leader
        dup = None
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
                code, message, base, last, dup = self._append_batches(log, msg.records)
        if code == E.NONE and dup is None:
            self._carry_out(leader.on_append(log.log_end_offset, now_ms()))
            # followers fetch up to the LEO: wake them now (consumers wait for the HW)
            self._serve_waiters(followers_only=self.high_watermark < log.log_end_offset)
        if msg.reply is None:
            return
        response = P.ProducePartitionResponse(
            partition=self.partition,
            error_code=code,
            base_offset=base,
            log_start_offset=log.log_start_offset if log is not None and code == E.NONE else -1,
            error_message=message,
        )
        if code == E.NONE and msg.acks == -1:
            self._ack_seq += 1
            key = self._ack_seq
            self._acks[key] = (msg.reply, response)
            done = leader.wait_for_ack(key, last, now_ms() + max(msg.timeout_ms, 1))
            if done is not None:
                self._carry_out(RC.Progress(self.high_watermark, completions=(done,)))
            return
        self._reply(msg.reply, response)

    def _append_batches(self, log: PartitionLog, records: bytes):
        """(code, message, base_offset, last_offset, duplicate-or-None)."""
        if not records:
            return E.CORRUPT_MESSAGE, "no record batch in the request", -1, -1, None
        try:
            header = B.read_header(records)
            if header.length == len(records):
                # The common case, one batch: log.append validates it (digest, counts).
                views = [(header, memoryview(records))]
            else:
                # Several batches: framing now; log.append_many checks every digest before
                # it writes any (all or nothing), so each batch is hashed once.
                views = list(B.iter_batches(records, validate=False))
        except CorruptBatchError as e:
            return E.CORRUPT_MESSAGE, str(e), -1, -1, None
        pstate = self.pstate
        dups = []  # leading duplicates (a retried request): answered, not appended
        prev = None  # (producer id, epoch, last sequence) of the previous batch
        for i, (header, _view) in enumerate(views):
            if header.is_control:
                return E.INVALID_RECORD, "clients may not write control batches", -1, -1, None
            if header.length > log.config.max_message_bytes:
                limit = log.config.max_message_bytes
                return (
                    E.MESSAGE_TOO_LARGE,
                    f"batch of {header.length} bytes > {limit}",
                    -1,
                    -1,
                    None,
                )
            pid = header.producer_id
            if pid < 0:
                prev = None
                continue
            follows = (
                prev is not None
                and prev[:2] == (pid, header.producer_epoch)
                and header.base_sequence == PS.increment_sequence(prev[2], 1)
                and len(dups) < i
            )
            if not follows:
                check = pstate.check_batch(header)
                if check.duplicate is not None:
                    if len(dups) != i:
                        return (
                            E.DUPLICATE_SEQUENCE_NUMBER,
                            "duplicate after new batches",
                            -1,
                            -1,
                            None,
                        )
                    dups.append(check.duplicate)
                elif not check.should_append:
                    self._log.debug("refused batch: {} {}", check.error, check.message)
                    return code_of(check.error), check.message, -1, -1, None
            last_seq = PS.increment_sequence(header.base_sequence, header.last_offset_delta)
            prev = (pid, header.producer_epoch, last_seq)
        if dups and len(dups) == len(views):
            return E.NONE, None, dups[0].first_offset, dups[-1].last_offset, dups[-1]
        base = dups[0].first_offset if dups else -1
        last = -1
        now = now_ms()
        todo = views[len(dups) :]
        try:
            if len(views) == 1:
                infos = [log.append(records, self.leader_epoch, now)]
            else:  # one validation pass and one pwritev for the lot, no copies
                infos = log.append_many([view for _, view in todo], self.leader_epoch, now)
            for i, ((header, _view), info) in enumerate(zip(todo, infos, strict=True)):
                if i == 0 and base < 0:
                    base = info.base_offset
                last = info.last_offset
                if header.producer_id >= 0:
                    pstate.update(
                        header.producer_id,
                        header.producer_epoch,
                        header.base_sequence,
                        PS.increment_sequence(header.base_sequence, header.last_offset_delta),
                        info.base_offset,
                        info.last_offset,
                        info.max_timestamp,
                    )
                else:
                    pstate.map_end_offset = info.last_offset + 1
        except Exception as e:  # noqa: BLE001 - mapped to a code; a failed log stays failed
            code = error_code_for(e)
            if code == E.KAFKA_STORAGE_ERROR:
                self._log.error("log failed on append: {}", e)
            return code, str(e), -1, -1, None
        return E.NONE, None, base, last, None

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
