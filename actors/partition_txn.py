"""The partition side of transactions on the leader (docs/transactions.md, "Partition
wiring"): verification of transactional produces (KIP-890 part 1) and end-transaction
markers (WriteTxnMarkers).

Verification. A client's transactional produce (``Append.transactional_id``) whose
``(producer_id, producer_epoch)`` this partition has not verified yet is *parked*: the actor
asks its ``TxnVerifier`` (actors/txn_verify.py; the real one sends
``AddPartitionsToTxn(verify_only=True)`` to the transaction coordinator) and goes on with
other messages. The answer comes back as ``TxnVerified``: on NONE the pair is cached and the
parked appends run again in arrival order; otherwise they are refused with the answer's code
(nothing appended). Later appends of a producer with a verification in flight park behind
it, so a producer's batches keep their order. A pair counts as verified when the cache says
so or when the producer state already has its transaction open here at that epoch (a new
leader after failover: the write that opened it was verified). The cache entry of a producer
is dropped by its marker (the next transaction is verified again) and the whole cache when
leadership is lost. A marker of a producer written while its verification is out makes the
answer stale: a yes may be about the transaction the marker just ended (a late batch would
then open a transaction nobody ends), so the question is asked again (Kafka's verification
guard). A parked append whose verification never answers is refused with
COORDINATOR_NOT_AVAILABLE after ``VERIFY_PARK_MS``.

Markers. ``WriteMarker`` appends the marker with ``logstore.transactions.append_marker`` and
answers once the high watermark passes it (the acks=all purgatory of the produce path); on
``__consumer_offsets`` the ``on_txn_marker`` hook (the broker passes one that tells the group
coordinator ``TxnMarkerWritten``) is called first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pykka
from rillet.coordinator import replication as RC
from rillet.logstore import batch as B
from rillet.logstore import transactions as T
from rillet.logstore.txn_markers import ControlType, EndTxnMarker
from rillet.transport import protocol as P

from rillet.frozen import frozen

from .partition_messages import Append, WriteMarker, code_of, error_code_for
from .txn_messages import TxnMarkerWritten

E = P.ErrorCode
OFFSETS_TOPIC = "__consumer_offsets"
VERIFY_PARK_MS = 15_000  # safety net: the verifier itself answers within its own timeout
MARKER_ACK_TIMEOUT_MS = 30_000  # then REQUEST_TIMED_OUT: the coordinator writes it again


@frozen
class TxnVerified:
    """The verifier's answer for ``producer_id`` at ``producer_epoch`` (verification
    number ``token``)."""

    producer_id: int
    producer_epoch: int
    token: int
    error_code: int


@dataclass(slots=True)
class _Verifying:
    producer_epoch: int
    token: int
    deadline_ms: int
    parked: list[Append] = field(default_factory=list)
    # a marker of the producer was written while the question was out: the answer may speak
    # of the transaction that marker ended (Kafka's verification guard), so it is asked again
    stale: bool = False


def _txn_pairs(records: bytes) -> set[tuple[int, int]]:
    """(producer id, epoch) of every transactional batch in ``records`` (headers only;
    malformed data: none, the validator answers it)."""
    try:
        return {
            (h.producer_id, h.producer_epoch)
            for h, _ in B.iter_batches(records, validate=False)
            if h.is_transactional and h.producer_id >= 0
        }
    except Exception:  # noqa: BLE001
        return set()


class TxnSide:
    """Mixed into ``PartitionReplica`` (actors/partition.py): runs on its thread, uses its
    state."""

    def _init_txn(self, verifier, on_txn_marker) -> None:
        self._txn_verifier = verifier  # txn_verify.TxnVerifier or None (nothing verifies)
        self._on_txn_marker: Callable[[TxnMarkerWritten], None] | None = on_txn_marker
        self._verified: dict[int, int] = {}  # producer id -> verified epoch, until its marker
        self._verifying: dict[int, _Verifying] = {}  # producer id -> verification in flight
        self._verify_seq = 0

    # --------------------------------------------------------------------- verification

    def _is_verified(self, producer_id: int, producer_epoch: int) -> bool:
        if self._verified.get(producer_id) == producer_epoch:
            return True
        entry = self.pstate.entry(producer_id)
        return (
            entry is not None
            and entry.producer_epoch == producer_epoch
            and entry.current_txn_first_offset >= 0
        )

    def _txn_gate(self, msg: Append) -> bool:
        """A transactional produce may run now (True) or was parked (False)."""
        if self.leader is None or self.log is None:
            return True  # refused as usual by the produce path
        pairs = _txn_pairs(msg.records)
        for pid, _epoch in pairs:
            pending = self._verifying.get(pid)
            if pending is not None:  # keep the producer's order
                pending.parked.append(msg)
                return False
        for pid, epoch in sorted(pairs):
            if not self._is_verified(pid, epoch):
                self._start_verification(msg, pid, epoch)
                return False
        return True

    def _start_verification(
        self, msg: Append, pid: int, epoch: int, parked: list[Append] | None = None
    ) -> None:
        self._verify_seq += 1
        token = self._verify_seq
        self._verifying[pid] = _Verifying(
            epoch, token, self.clock() + VERIFY_PARK_MS, parked if parked is not None else [msg]
        )
        verifier = self._txn_verifier
        if verifier is None:
            self._verification_done(TxnVerified(pid, epoch, token, E.COORDINATOR_NOT_AVAILABLE))
            return
        me = self.actor_ref

        def answer(code: int) -> None:
            try:
                me.tell(TxnVerified(pid, epoch, token, code))
            except pykka.ActorDeadError:
                pass

        try:
            verifier.verify(msg.transactional_id, pid, epoch, self.topic, self.partition, answer)
        except Exception:  # noqa: BLE001 - a broken verifier refuses, never hangs
            self._log.exception("transaction verification failed to start")
            answer(E.COORDINATOR_NOT_AVAILABLE)

    def _verification_done(self, msg: TxnVerified) -> None:
        pending = self._verifying.get(msg.producer_id)
        if pending is None or pending.token != msg.token:
            return  # answered already (expired) or superseded
        del self._verifying[msg.producer_id]
        if msg.error_code == E.NONE and pending.stale:
            first = pending.parked[0]
            self._start_verification(first, msg.producer_id, msg.producer_epoch, pending.parked)
            return
        if msg.error_code == E.NONE:
            self._verified[msg.producer_id] = msg.producer_epoch
            for append in pending.parked:
                self._append(append)  # may park again behind another verification
            return
        self._log.debug(
            "transactional produce of producer {} epoch {} refused: {}",
            msg.producer_id,
            msg.producer_epoch,
            msg.error_code,
        )
        failed = (msg.producer_id, msg.producer_epoch)
        for append in pending.parked:
            if failed in _txn_pairs(append.records):
                self._refuse_append(append, msg.error_code, "transaction verification failed")
            else:  # parked behind it, of another epoch of the producer: its own turn
                self._append(append)

    def _refuse_append(self, append: Append, code: int, message: str) -> None:
        if append.reply is None:
            return
        try:
            append.reply(
                P.ProducePartitionResponse(
                    partition=self.partition,
                    error_code=code,
                    error_message=f"{message}: {P.ErrorCode(code).name}",
                )
            )
        except Exception:  # noqa: BLE001
            self._log.exception("produce reply failed")

    def _expire_verifications(self, now: int) -> None:
        for pid, pending in list(self._verifying.items()):
            if pending.deadline_ms <= now:
                self._verification_done(
                    TxnVerified(
                        pid, pending.producer_epoch, pending.token, E.COORDINATOR_NOT_AVAILABLE
                    )
                )

    def _verification_due(self) -> int | None:
        if not self._verifying:
            return None
        return min(p.deadline_ms for p in self._verifying.values())

    def _forget_verifications(self, code: int | None = None) -> None:
        """Leadership lost: the cache goes; with ``code`` parked appends are answered."""
        self._verified.clear()
        if code is None:
            return
        pending, self._verifying = self._verifying, {}
        for p in pending.values():
            for append in p.parked:
                self._refuse_append(append, code, "partition leadership moved")

    # ------------------------------------------------------------------------- markers

    def _write_marker(self, msg: WriteMarker) -> None:
        log, leader = self.log, self.leader
        if log is None or self._damage() is not None:
            msg.reply(E.KAFKA_STORAGE_ERROR)
            return
        if leader is None:
            msg.reply(E.NOT_LEADER_OR_FOLLOWER)
            return
        check = leader.check_append(-1)
        if check != RC.NONE:
            msg.reply(code_of(check))
            return
        marker = EndTxnMarker(
            msg.producer_id,
            msg.producer_epoch,
            ControlType.COMMIT if msg.committed else ControlType.ABORT,
            msg.coordinator_epoch,
            msg.transaction_version,
        )
        now = self.clock()
        try:
            done = T.append_marker(log, self.pstate, marker, self.leader_epoch, now)
        except Exception as e:  # noqa: BLE001 - a failed log answers, stays failed
            self._log.error("marker append failed: {}", e)
            msg.reply(error_code_for(e))
            return
        if done.error != T.OK:
            msg.reply(code_of(done.error))
            return
        self._verified.pop(msg.producer_id, None)  # the next transaction is verified again
        pending = self._verifying.get(msg.producer_id)
        if pending is not None:
            pending.stale = True
        self._log.debug(
            "{} marker for producer {} epoch {} at {}",
            marker.control_type.name,
            msg.producer_id,
            msg.producer_epoch,
            done.offset,
        )
        self._carry_out(leader.on_append(log.log_end_offset, now))
        self._serve_waiters(followers_only=self.high_watermark < log.log_end_offset)
        self._ack_seq += 1
        key = self._ack_seq
        # answered as an acks=all produce is (partition.py ``_carry_out``; with
        # flush.mode=group-commit after the fsync too)
        response = P.ProducePartitionResponse(partition=self.partition, base_offset=done.offset)
        self._acks[key] = (self._marker_replicated(msg, done.offset), response)
        completion = leader.wait_for_ack(key, done.offset, now + MARKER_ACK_TIMEOUT_MS)
        if completion is not None:
            self._carry_out(RC.Progress(self.high_watermark, completions=(completion,)))

    def _marker_replicated(self, msg: WriteMarker, offset: int) -> Callable:
        """The purgatory's reply for a marker (a ProducePartitionResponse: its error code is
        the marker's answer)."""

        def replied(response: P.ProducePartitionResponse) -> None:
            code = response.error_code
            if code == E.NONE and self.topic == OFFSETS_TOPIC and self._on_txn_marker:
                try:
                    self._on_txn_marker(
                        TxnMarkerWritten(self.partition, msg.producer_id, msg.committed, offset)
                    )
                except Exception:  # noqa: BLE001
                    self._log.exception("could not tell the group coordinator")
            try:
                msg.reply(code)
            except Exception:  # noqa: BLE001
                self._log.exception("marker reply failed")

        return replied
