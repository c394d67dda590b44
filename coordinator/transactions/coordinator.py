"""The transaction coordinator core (Kafka's TransactionCoordinator and TransactionStateManager,
with KIP-890 parts 1 and 2). Pure: no clock, no I/O; ``now_ms`` is an argument and new
producer ids come from the caller's ``allocate()`` (the controller hands out blocks).

One :class:`TransactionCoordinator` holds the transactional.ids of one ``__transaction_state``
partition, led by this broker at ``coordinator_epoch`` (that partition's leader epoch). Every
handler returns a :class:`TxnResult`: the records to append to that partition, the response
(sent once the records are committed; at once if there are none) and the effects (marker
writes). The state already includes the records when the handler returns (they were applied
with the same ``records.apply`` that replays the topic); if appending them fails the owner
reloads the partition (:meth:`TransactionCoordinator.load`) and fails the responses.

=========================  =======================================================================
request                    what happens
=========================  =======================================================================
InitProducerId             new id: a producer id, epoch 0, Empty. Known id: the epoch is bumped
                           (fencing every older instance; a new producer id once the epoch is
                           exhausted), Empty. If a transaction is Ongoing it is aborted first,
                           with a bumped epoch (PrepareEpochFence -> PrepareAbort, markers) and
                           the answer is CONCURRENT_TRANSACTIONS: the client retries.
AddPartitionsToTxn         -> Ongoing with the partitions added (the first sets txn_start_ms)
AddOffsetsToTxn            the group's ``__consumer_offsets`` partition joins, as above (KIP-447:
                           its offsets become visible on COMMIT only)
verify_partitions          KIP-890 part 1, read only: is each partition in the producer's
                           ongoing transaction? (asked by a partition leader before it accepts a
                           transactional batch)
EndTxn(commit|abort)       Ongoing -> PrepareCommit|PrepareAbort with the epoch bumped (KIP-890
                           part 2: every transaction end bumps it, so a late write or a late
                           EndTxn of this transaction is fenced); effect: write markers. A retry
                           carrying the pre-bump epoch is recognised and answered again.
markers_written            the owner wrote every marker: Prepare* -> Complete*
abort_timed_out            Ongoing for longer than its transaction.timeout.ms: bumped and
                           aborted as by a newer instance
expire_transactional_ids   no transaction for transactional.id.expiration.ms: Dead (tombstone)
=========================  =======================================================================

Markers carry the producer id and the bumped epoch; when the epoch was exhausted and a new
producer id taken, they carry the transaction's old producer id at the largest epoch
(32767): partitions refuse markers older than what they saw. A bump that the producer did
not ask for (a newer instance, a timeout) forgets the pre-bump epoch, so the fenced producer's
requests are never taken for retries.

Errors are Kafka's names: PRODUCER_FENCED (an older epoch: a newer instance exists),
INVALID_PRODUCER_EPOCH (a newer epoch than the coordinator knows), INVALID_PRODUCER_ID_MAPPING,
TRANSACTIONAL_ID_NOT_FOUND, INVALID_TXN_STATE (e.g. committing an aborted or empty
transaction), CONCURRENT_TRANSACTIONS (retriable: markers are still being written),
INVALID_TRANSACTION_TIMEOUT, INVALID_REQUEST.

Owned by one actor; not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import field
from typing import Generic, TypeVar

from rillet.frozen import frozen

from . import records as R
from .state import (
    COMPLETE,
    EXPIRABLE,
    MAX_PRODUCER_EPOCH,
    NO_PRODUCER_EPOCH,
    PREPARING,
    TopicPartition,
    TxnMetadata,
    TxnState,
)

S = TxnState
T = TypeVar("T")
OK = "NONE"
TRANSACTION_MAX_TIMEOUT_MS = 900_000  # transaction.max.timeout.ms
TRANSACTIONAL_ID_EXPIRATION_MS = 604_800_000  # transactional.id.expiration.ms

PRODUCER_FENCED = "PRODUCER_FENCED"
INVALID_PRODUCER_EPOCH = "INVALID_PRODUCER_EPOCH"
INVALID_PRODUCER_ID_MAPPING = "INVALID_PRODUCER_ID_MAPPING"
INVALID_TXN_STATE = "INVALID_TXN_STATE"
CONCURRENT_TRANSACTIONS = "CONCURRENT_TRANSACTIONS"
TRANSACTIONAL_ID_NOT_FOUND = "TRANSACTIONAL_ID_NOT_FOUND"
INVALID_TRANSACTION_TIMEOUT = "INVALID_TRANSACTION_TIMEOUT"
INVALID_REQUEST = "INVALID_REQUEST"


@frozen
class WriteTxnMarkers:
    """Effect: write this end marker to every partition, then call ``markers_written``."""

    transactional_id: str
    producer_id: int  # of the markers (the transaction's producer id)
    producer_epoch: int  # of the markers (the bumped epoch; 32767 when the id changed)
    coordinator_epoch: int
    commit: bool
    partitions: tuple[TopicPartition, ...]
    # 2: the epoch above was bumped at EndTxn (KIP-890 part 2); 1: a Kafka client's
    # transaction, the markers carry the data's own epoch (partitions must accept an equal one)
    transaction_version: int = 2


@frozen
class ProducerIdResponse:
    """InitProducerId and EndTxn answers: the producer id and epoch to use from now on."""

    error: str = OK
    producer_id: int = -1
    producer_epoch: int = -1
    message: str | None = None


@frozen
class TxnOutcome:
    error: str = OK
    message: str | None = None


@frozen
class TxnResult(Generic[T]):
    records: tuple[R.TxnRecord, ...]
    response: T
    effects: tuple[WriteTxnMarkers, ...] = field(default=())


def _refuse(error: str, message: str) -> TxnResult:
    return TxnResult((), TxnOutcome(error, message))


class TransactionCoordinator:
    """The transactional.ids of one ``__transaction_state`` partition (see the module doc)."""

    def __init__(
        self,
        coordinator_epoch: int = 0,
        *,
        max_timeout_ms: int = TRANSACTION_MAX_TIMEOUT_MS,
        expiration_ms: int = TRANSACTIONAL_ID_EXPIRATION_MS,
    ) -> None:
        self.coordinator_epoch = coordinator_epoch
        self.max_timeout_ms = max_timeout_ms
        self.expiration_ms = expiration_ms
        self.transactions: dict[str, TxnMetadata] = {}

    # ----------------------------------------------------------------------------- loading

    @classmethod
    def load(
        cls, records: Iterable[R.TxnRecord], coordinator_epoch: int, **config
    ) -> tuple[TransactionCoordinator, tuple[WriteTxnMarkers, ...]]:
        """Take over a partition: replay its records; the transactions left in Prepare* get
        their markers written (again: partitions ignore a marker they already have)."""
        c = cls(coordinator_epoch, **config)
        c.transactions = R.replay(records)
        effects = tuple(
            c._markers(m) for _, m in sorted(c.transactions.items()) if m.state in PREPARING
        )
        return c, effects

    def _markers(self, m: TxnMetadata) -> WriteTxnMarkers:
        if m.txn_version == 1:  # ended without a bump: the data's own id and epoch
            return WriteTxnMarkers(
                m.transactional_id, m.producer_id, m.producer_epoch, self.coordinator_epoch,
                m.state is S.PREPARE_COMMIT, tuple(sorted(m.partitions)), transaction_version=1)
        if m.last_producer_id >= 0 and m.last_producer_id != m.producer_id:
            # the bump took a new producer id: the old id's data ends at its last epoch
            pid, epoch = m.last_producer_id, MAX_PRODUCER_EPOCH
        else:
            pid, epoch = m.producer_id, m.producer_epoch
        return WriteTxnMarkers(
            m.transactional_id,
            pid,
            epoch,
            self.coordinator_epoch,
            m.state is S.PREPARE_COMMIT,
            tuple(sorted(m.partitions)),
        )

    def _commit(self, *metas: TxnMetadata) -> tuple[R.TxnRecord, ...]:
        out = tuple(R.record_of(m) for m in metas)
        for r in out:
            R.apply(self.transactions, r)
        return out

    def _bump(self, m: TxnMetadata, allocate: Callable[[], int], *, fence: bool = False) -> dict:
        changes = m.bumped()
        changes["txn_version"] = 2  # a bump: the markers carry the new epoch
        if m.needs_new_producer_id:
            changes["producer_id"] = allocate()
        if fence:
            # Not the producer's own request: its (id, epoch) must not pass for a retry of
            # the request that made this state, so no "last epoch" is remembered.
            changes["last_producer_epoch"] = NO_PRODUCER_EPOCH
        return changes

    # ------------------------------------------------------------------- request handlers

    def init_producer_id(
        self,
        transactional_id: str,
        transaction_timeout_ms: int,
        now_ms: int,
        allocate: Callable[[], int],
        *,
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> TxnResult[ProducerIdResponse]:
        """InitProducerId for a transactional producer. ``producer_id``/``producer_epoch``:
        what the client had (KIP-360), -1 for a fresh start."""
        if not 0 < transaction_timeout_ms <= self.max_timeout_ms:
            return TxnResult(
                (),
                ProducerIdResponse(
                    INVALID_TRANSACTION_TIMEOUT,
                    message=f"transaction.timeout.ms {transaction_timeout_ms} is not in "
                    f"(0, transaction.max.timeout.ms={self.max_timeout_ms}]",
                ),
            )
        m = self.transactions.get(transactional_id)
        if m is None:
            new = TxnMetadata(
                transactional_id=transactional_id,
                producer_id=allocate(),
                producer_epoch=0,
                timeout_ms=transaction_timeout_ms,
                last_update_ms=now_ms,
            )
            return TxnResult(self._commit(new), ProducerIdResponse(OK, new.producer_id, 0))
        if producer_id >= 0:
            if (producer_id, producer_epoch) == (m.last_producer_id, m.last_producer_epoch) and (
                m.state is S.EMPTY
            ):  # a retry of the bump that made this state: answer it again
                return TxnResult((), ProducerIdResponse(OK, m.producer_id, m.producer_epoch))
            if (producer_id, producer_epoch) != (m.producer_id, m.producer_epoch):
                return TxnResult(
                    (),
                    ProducerIdResponse(
                        PRODUCER_FENCED,
                        message=f"producer {producer_id} epoch {producer_epoch} is not the "
                        f"current {m.producer_id}/{m.producer_epoch}",
                    ),
                )
        if m.state in PREPARING:
            return TxnResult(
                (), ProducerIdResponse(CONCURRENT_TRANSACTIONS, message="markers in flight")
            )
        if m.state is S.ONGOING:
            # A new instance: abort the old one's transaction with a bumped epoch first.
            fence = m.to(S.PREPARE_EPOCH_FENCE)
            aborting = fence.to(
                S.PREPARE_ABORT, last_update_ms=now_ms, **self._bump(m, allocate, fence=True)
            )
            return TxnResult(
                self._commit(aborting),
                ProducerIdResponse(
                    CONCURRENT_TRANSACTIONS, message="aborting the ongoing transaction"
                ),
                (self._markers(aborting),),
            )
        new = m.to(
            S.EMPTY,
            timeout_ms=transaction_timeout_ms,
            partitions=frozenset(),
            txn_start_ms=-1,
            last_update_ms=now_ms,
            # A fresh start (no pair) is a new instance: its bump must not be "retried" by
            # the instance it fences, which holds the pre-bump pair (Kafka sets
            # lastProducerEpoch to -1 here). A KIP-360 bump (the current pair) keeps it.
            **self._bump(m, allocate, fence=producer_id < 0),
        )
        return TxnResult(
            self._commit(new), ProducerIdResponse(OK, new.producer_id, new.producer_epoch)
        )

    def _check_producer(self, transactional_id: str, producer_id: int, producer_epoch: int):
        """(metadata, None) if the request's producer is the current one, else (None, error)."""
        m = self.transactions.get(transactional_id)
        if m is None:
            return None, TxnOutcome(TRANSACTIONAL_ID_NOT_FOUND, f"{transactional_id!r}")
        if producer_id != m.producer_id:
            return None, TxnOutcome(
                INVALID_PRODUCER_ID_MAPPING,
                f"producer id {producer_id} is not {transactional_id!r}'s ({m.producer_id})",
            )
        if producer_epoch < m.producer_epoch:
            return None, TxnOutcome(
                PRODUCER_FENCED, f"epoch {producer_epoch} < current {m.producer_epoch}"
            )
        if producer_epoch > m.producer_epoch:
            return None, TxnOutcome(
                INVALID_PRODUCER_EPOCH, f"epoch {producer_epoch} > current {m.producer_epoch}"
            )
        if m.state in PREPARING:
            return None, TxnOutcome(CONCURRENT_TRANSACTIONS, f"{m.state.value}: markers in flight")
        return m, None

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        now_ms: int,
    ) -> TxnResult[TxnOutcome]:
        """AddPartitionsToTxn: every partition joins, or (one error for all) none does."""
        tps = frozenset(TopicPartition(t, p) for t, p in partitions)
        if not tps or any(not t or p < 0 for t, p in tps):
            return _refuse(INVALID_REQUEST, "no partitions, or an invalid one")
        m, refused = self._check_producer(transactional_id, producer_id, producer_epoch)
        if refused is not None:
            return TxnResult((), refused)
        if m.state is S.ONGOING and tps <= m.partitions:
            return TxnResult((), TxnOutcome())
        new = m.to(
            S.ONGOING,
            partitions=(m.partitions if m.state is S.ONGOING else frozenset()) | tps,
            txn_start_ms=m.txn_start_ms if m.state is S.ONGOING else now_ms,
            last_update_ms=now_ms,
        )
        return TxnResult(self._commit(new), TxnOutcome())

    def add_offsets(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        offsets_partition: TopicPartition,
        now_ms: int,
    ) -> TxnResult[TxnOutcome]:
        """AddOffsetsToTxn: the ``__consumer_offsets`` partition of the group (the caller
        maps group id -> partition) joins the transaction."""
        return self.add_partitions(
            transactional_id, producer_id, producer_epoch, [offsets_partition], now_ms
        )

    def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> dict[TopicPartition, str]:
        """KIP-890 part 1 (read only): NONE for each partition in the producer's ongoing
        transaction, INVALID_TXN_STATE for the others (or the producer's error for all)."""
        tps = [TopicPartition(t, p) for t, p in partitions]
        m, refused = self._check_producer(transactional_id, producer_id, producer_epoch)
        if refused is not None:
            return {tp: refused.error for tp in tps}
        ongoing = m.partitions if m.state is S.ONGOING else frozenset()
        return {tp: OK if tp in ongoing else INVALID_TXN_STATE for tp in tps}

    def end_txn(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        now_ms: int,
        allocate: Callable[[], int],
        *,
        bump: bool = True,
    ) -> TxnResult[ProducerIdResponse]:
        """EndTxn (KIP-890 part 2): the answer carries the producer id and epoch to use next.

        ``bump=False``: a Kafka client's EndTxn below v5 (transaction version 1), which keeps
        its producer id and epoch for its next transaction: nothing is bumped, the markers
        carry the data's epoch, and a retry with the same pair after the end is answered as
        the first was (Kafka's TV1 rules)."""
        m = self.transactions.get(transactional_id)
        prepare = S.PREPARE_COMMIT if commit else S.PREPARE_ABORT
        complete = S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT
        if (
            not bump
            and m is not None
            and (producer_id, producer_epoch) == (m.producer_id, m.producer_epoch)
            and m.state in (prepare, complete)
            and m.txn_version == 1
        ):  # the TV1 request that ended it, retried
            if m.state is complete:
                return TxnResult((), ProducerIdResponse(OK, m.producer_id, m.producer_epoch))
            return TxnResult((), ProducerIdResponse(CONCURRENT_TRANSACTIONS))
        if m is not None and (producer_id, producer_epoch) == (
            m.last_producer_id,
            m.last_producer_epoch,
        ):  # the request that bumped to the current epoch, retried
            if m.state is complete:
                return TxnResult((), ProducerIdResponse(OK, m.producer_id, m.producer_epoch))
            if m.state is prepare:
                return TxnResult((), ProducerIdResponse(CONCURRENT_TRANSACTIONS))
            return TxnResult(
                (),
                ProducerIdResponse(
                    INVALID_TXN_STATE, message=f"the transaction ended otherwise: {m.state.value}"
                ),
            )
        m, refused = self._check_producer(transactional_id, producer_id, producer_epoch)
        if refused is not None:
            return TxnResult((), ProducerIdResponse(refused.error, message=refused.message))
        if m.state is S.ONGOING or (m.state is S.EMPTY and not commit):
            if bump:
                new = m.to(prepare, last_update_ms=now_ms, **self._bump(m, allocate))
            else:
                new = m.to(prepare, last_update_ms=now_ms, txn_version=1)
            if not new.partitions:  # an abort of nothing: no marker to write
                first = self._commit(new)
                done = new.to(complete, last_update_ms=now_ms)
                return TxnResult(
                    (*first, *self._commit(done)),
                    ProducerIdResponse(OK, done.producer_id, done.producer_epoch),
                )
            return TxnResult(
                self._commit(new),
                ProducerIdResponse(OK, new.producer_id, new.producer_epoch),
                (self._markers(new),),
            )
        what = "no transaction" if m.state is S.EMPTY else f"the transaction is {m.state.value}"
        return TxnResult(
            (),
            ProducerIdResponse(
                INVALID_TXN_STATE, message=f"cannot {'commit' if commit else 'abort'}: {what}"
            ),
        )

    # -------------------------------------------------------------------- owner's events

    def markers_written(self, effect: WriteTxnMarkers, now_ms: int) -> TxnResult[TxnOutcome]:
        """Every marker of ``effect`` is written: Prepare* -> Complete*. A stale effect (the
        state moved on, or a reload) changes nothing."""
        m = self.transactions.get(effect.transactional_id)
        if m is None or m.state not in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
            return _refuse(INVALID_TXN_STATE, "no transaction is waiting for these markers")
        if self._markers(m) != effect:
            return _refuse(INVALID_TXN_STATE, "these markers are not the pending ones")
        done = S.COMPLETE_COMMIT if m.state is S.PREPARE_COMMIT else S.COMPLETE_ABORT
        new = m.to(done, partitions=frozenset(), last_update_ms=now_ms)
        return TxnResult(self._commit(new), TxnOutcome())

    def abort_timed_out(
        self, now_ms: int, allocate: Callable[[], int]
    ) -> TxnResult[tuple[str, ...]]:
        """Abort (with a bumped epoch) every transaction Ongoing for longer than its timeout;
        the response lists their transactional.ids."""
        aborted, metas = [], []
        for tid, m in sorted(self.transactions.items()):
            if m.state is S.ONGOING and m.txn_start_ms + m.timeout_ms <= now_ms:
                fence = m.to(S.PREPARE_EPOCH_FENCE)
                bump = self._bump(m, allocate, fence=True)
                metas.append(fence.to(S.PREPARE_ABORT, last_update_ms=now_ms, **bump))
                aborted.append(tid)
        recs = self._commit(*metas)
        return TxnResult(recs, tuple(aborted), tuple(self._markers(m) for m in metas))

    def expire_transactional_ids(self, now_ms: int) -> TxnResult[tuple[str, ...]]:
        """transactional.id.expiration.ms: ids idle (no transaction) that long are Dead."""
        dead = [
            m.to(S.DEAD, last_update_ms=now_ms)
            for _, m in sorted(self.transactions.items())
            if m.state in EXPIRABLE and m.last_update_ms + self.expiration_ms <= now_ms
        ]
        return TxnResult(self._commit(*dead), tuple(m.transactional_id for m in dead))

    def next_deadline_ms(self) -> int | None:
        """When :meth:`abort_timed_out` or :meth:`expire_transactional_ids` next has work."""
        due = [
            m.txn_start_ms + m.timeout_ms
            if m.state is S.ONGOING
            else m.last_update_ms + self.expiration_ms
            for m in self.transactions.values()
            if m.state is S.ONGOING or m.state in EXPIRABLE
        ]
        return min(due) if due else None

    def describe(self, transactional_id: str) -> TxnMetadata | None:
        return self.transactions.get(transactional_id)


__all__ = [
    "COMPLETE",
    "ProducerIdResponse",
    "TransactionCoordinator",
    "TxnOutcome",
    "TxnResult",
    "WriteTxnMarkers",
]
