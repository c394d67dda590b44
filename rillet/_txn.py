"""The transactional producer's state machine (Kafka's client ``TransactionManager``), pure.

No I/O, no clock, no threads: the producer (:mod:`rillet._txn_client`) calls it under one lock
from the application's thread and the sender thread, passes ``now_ms`` where time matters,
and performs the requests itself. It answers three questions: may this call happen now (and
what it raises if not), which partitions must join the transaction before their batches may
leave, and what the producer's error is after a failure.

States and legal transitions (``TRANSITIONS`` below is this table as data; a transition not
in it raises :class:`IllegalTransition` and leaves the state unchanged)::

    new state        legal previous states
    ---------------  ---------------------------------------------------------------
    INITIALIZING     UNINITIALIZED
    READY            INITIALIZING, COMMITTING, ABORTING
    IN_TRANSACTION   READY
    COMMITTING       IN_TRANSACTION
    ABORTING         IN_TRANSACTION, ABORTABLE_ERROR
    ABORTABLE_ERROR  IN_TRANSACTION, COMMITTING, ABORTABLE_ERROR
    FATAL_ERROR      every state

The calls (``Producer`` methods) map onto it::

    init_transactions()            UNINITIALIZED -> INITIALIZING -> READY
    begin_transaction()            READY -> IN_TRANSACTION
    send(), send_offsets_...()     only in IN_TRANSACTION
    commit_transaction()           IN_TRANSACTION -> COMMITTING -> READY
    abort_transaction()            IN_TRANSACTION | ABORTABLE_ERROR -> ABORTING -> READY

A call that timed out leaves its state (INITIALIZING, COMMITTING, ABORTING); calling it again
resumes it (Kafka's behaviour: the coordinator answers a retried EndTxn as the first). An
*abortable* error (a batch failed, an offset commit was refused) moves IN_TRANSACTION or
COMMITTING to ABORTABLE_ERROR: then only abort_transaction() is allowed, every other call
raises :class:`~rillet.errors.TransactionAbortableError` whose ``__cause__`` is the error. A
*fatal* error (fenced by a newer instance, a coordinator that refuses the transactional id)
moves any state to FATAL_ERROR, where every call raises that error: the producer can only be
closed. An abortable error while ABORTING is ignored (the transaction is being aborted anyway).
"""

from __future__ import annotations

import enum

from rillet.errors import (
    InvalidTxnStateError,
    ProducerFencedError,
    RilletError,
    TransactionAbortableError,
    TransactionTimeoutError,
)

TopicPartitionKey = tuple[str, int]


class TxnState(enum.Enum):
    UNINITIALIZED = "Uninitialized"
    INITIALIZING = "Initializing"
    READY = "Ready"
    IN_TRANSACTION = "InTransaction"
    COMMITTING = "CommittingTransaction"
    ABORTING = "AbortingTransaction"
    ABORTABLE_ERROR = "AbortableError"
    FATAL_ERROR = "FatalError"


class S:
    """The members of :class:`TxnState` as plain class attributes: ``S.READY`` is the same
    object as ``TxnState.READY``, read in ~20 ns instead of ~125 (an Enum member's attribute
    access goes through the enum's metaclass on CPython 3.11), which matters on paths run
    per record (``Transactions.check_send``) or per sender round."""

    UNINITIALIZED = TxnState.UNINITIALIZED
    INITIALIZING = TxnState.INITIALIZING
    READY = TxnState.READY
    IN_TRANSACTION = TxnState.IN_TRANSACTION
    COMMITTING = TxnState.COMMITTING
    ABORTING = TxnState.ABORTING
    ABORTABLE_ERROR = TxnState.ABORTABLE_ERROR
    FATAL_ERROR = TxnState.FATAL_ERROR


IN_TRANSACTION = TxnState.IN_TRANSACTION  # read per record by the producer's send()

#: new state -> the states it may be entered from (the docstring's table)
TRANSITIONS: dict[TxnState, frozenset[TxnState]] = {
    S.INITIALIZING: frozenset({S.UNINITIALIZED}),
    S.READY: frozenset({S.INITIALIZING, S.COMMITTING, S.ABORTING}),
    S.IN_TRANSACTION: frozenset({S.READY}),
    S.COMMITTING: frozenset({S.IN_TRANSACTION}),
    S.ABORTING: frozenset({S.IN_TRANSACTION, S.ABORTABLE_ERROR}),
    S.ABORTABLE_ERROR: frozenset({S.IN_TRANSACTION, S.COMMITTING, S.ABORTABLE_ERROR}),
    S.FATAL_ERROR: frozenset(TxnState),
    S.UNINITIALIZED: frozenset(),
}


class IllegalTransition(Exception):
    """A transition the table does not allow (a bug in the caller; the state is unchanged)."""


class TransactionManager:
    """One transactional producer's state. Not thread-safe: the owner holds a lock around
    every call. ``producer_id`` / ``producer_epoch``: the pair of the current transaction
    (from InitProducerId, then from each EndTxn answer, KIP-890 part 2)."""

    def __init__(self, transactional_id: str, transaction_timeout_ms: int) -> None:
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self.state = S.UNINITIALIZED
        self.error: BaseException | None = None  # the abortable or fatal error
        self.producer_id = -1
        self.producer_epoch = -1
        self.txn_start_ms: float | None = None
        # partitions of the current transaction: added (AddPartitionsToTxn answered NONE),
        # pending (a request in flight)
        self.added: set[TopicPartitionKey] = set()
        self.pending: set[TopicPartitionKey] = set()
        # something was sent to the coordinator in this transaction (AddPartitions or
        # AddOffsets, answered or not): the transaction may exist there, so its end needs an
        # EndTxn; without it there is nothing to end (Kafka sends no EndTxn then either)
        self.coordinator_touched = False

    # -- transitions ---------------------------------------------------------------------

    def _to(self, new: TxnState) -> None:
        if self.state not in TRANSITIONS[new]:
            raise IllegalTransition(f"{self.state.value} -> {new.value}")
        self.state = new

    def _refuse(self, call: str) -> InvalidTxnStateError:
        return InvalidTxnStateError(
            f"{call} is not allowed in state {self.state.value}"
            + {S.UNINITIALIZED: ": call init_transactions() first",
               S.READY: ": call begin_transaction() first",
               S.INITIALIZING: ": init_transactions() has not completed"}.get(self.state, ""))

    def _raise_error(self) -> None:
        """The error a call raises in an error state (nothing in the others)."""
        if self.state is S.FATAL_ERROR:
            raise self.error  # type: ignore[misc]
        if self.state is S.ABORTABLE_ERROR:
            raise TransactionAbortableError(
                f"the transaction failed and must be aborted (abort_transaction()): "
                f"{self.error}") from self.error

    # -- the application's calls --------------------------------------------------------

    def start_init(self) -> None:
        """init_transactions(): UNINITIALIZED -> INITIALIZING (INITIALIZING: a retry)."""
        self._raise_error()
        if self.state is S.INITIALIZING:
            return
        if self.state is not S.UNINITIALIZED:
            raise InvalidTxnStateError(
                f"init_transactions() was already called (state {self.state.value})")
        self._to(S.INITIALIZING)

    def init_done(self, producer_id: int, producer_epoch: int) -> None:
        self._to(S.READY)
        self.producer_id, self.producer_epoch = producer_id, producer_epoch

    def begin(self, now_ms: float) -> None:
        """begin_transaction(): READY -> IN_TRANSACTION."""
        self._raise_error()
        if self.state is not S.READY:
            raise (InvalidTxnStateError("a transaction is already in progress")
                   if self.state is S.IN_TRANSACTION else self._refuse("begin_transaction()"))
        self._to(S.IN_TRANSACTION)
        self.txn_start_ms = now_ms

    def check_in_transaction(self, call: str) -> None:
        """send() and send_offsets_to_transaction() need an open transaction."""
        if self.state is not S.IN_TRANSACTION:
            self._raise_error()
            raise self._refuse(call)

    def start_commit(self) -> None:
        """commit_transaction(): IN_TRANSACTION -> COMMITTING (COMMITTING: a retry)."""
        self._raise_error()
        if self.state is S.COMMITTING:
            return
        if self.state is not S.IN_TRANSACTION:
            raise self._refuse("commit_transaction()")
        self._to(S.COMMITTING)

    def start_abort(self) -> None:
        """abort_transaction(): IN_TRANSACTION | ABORTABLE_ERROR -> ABORTING (ABORTING: a
        retry). Allowed after an abortable error: that is what it is for."""
        if self.state is S.FATAL_ERROR:
            raise self.error  # type: ignore[misc]
        if self.state is S.ABORTING:
            return
        if self.state not in (S.IN_TRANSACTION, S.ABORTABLE_ERROR):
            raise self._refuse("abort_transaction()")
        self._to(S.ABORTING)

    def end_done(self, producer_id: int, producer_epoch: int) -> None:
        """The EndTxn answer (or nothing to end): COMMITTING | ABORTING -> READY with the
        pair the coordinator gave for the next transaction (-1: keep the current one)."""
        self._to(S.READY)
        if producer_id >= 0:
            self.producer_id, self.producer_epoch = producer_id, producer_epoch
        self.added.clear()
        self.pending.clear()
        self.coordinator_touched = False
        self.txn_start_ms = None

    @property
    def needs_end_txn(self) -> bool:
        return self.coordinator_touched

    # -- the sender's questions ----------------------------------------------------------

    @property
    def may_add_partitions(self) -> bool:
        """Batches drain while the transaction is open or committing (commit flushes)."""
        return self.state in (S.IN_TRANSACTION, S.COMMITTING)

    def partitions_to_add(self, wanted) -> list[TopicPartitionKey]:
        """Of the partitions whose batches wait, those that must join the transaction now
        (neither added nor pending); they become pending. Empty when the state does not allow
        adding (the batches keep waiting or are failed by the owner)."""
        if not self.may_add_partitions:
            return []
        new = sorted(tp for tp in wanted if tp not in self.added and tp not in self.pending)
        if new:
            self.pending.update(new)
            self.coordinator_touched = True
        return new

    def partitions_added(self, tps) -> None:
        for tp in tps:
            self.pending.discard(tp)
            self.added.add(tp)

    def partitions_not_added(self, tps) -> None:
        """A retriable failure: the partitions may be asked for again."""
        for tp in tps:
            self.pending.discard(tp)

    def is_added(self, tp: TopicPartitionKey) -> bool:
        return tp in self.added

    def offsets_adding(self) -> None:
        """AddOffsetsToTxn is about to be sent."""
        self.coordinator_touched = True

    # -- errors --------------------------------------------------------------------------

    @property
    def has_error(self) -> bool:
        return self.state in (S.ABORTABLE_ERROR, S.FATAL_ERROR)

    def abortable(self, error: BaseException) -> None:
        """A failure the application recovers from by aborting. Ignored while ABORTING (the
        transaction ends anyway) and in an error state already (the first error stays)."""
        if self.state in (S.ABORTING, S.FATAL_ERROR, S.ABORTABLE_ERROR):
            return
        self._to(S.ABORTABLE_ERROR)
        self.error = error

    def fatal(self, error: BaseException) -> None:
        if self.state is S.FATAL_ERROR:
            return
        self._to(S.FATAL_ERROR)
        self.error = error

    def fenced_error(self, error: RilletError, now_ms: float) -> RilletError:
        """The error to report for a fencing: TransactionTimeoutError when the transaction
        had outlived transaction.timeout.ms (the coordinator's abort is what fenced us)."""
        start = self.txn_start_ms
        if (isinstance(error, ProducerFencedError) and not isinstance(error, TransactionTimeoutError)
                and start is not None and now_ms - start >= self.transaction_timeout_ms):
            timeout = TransactionTimeoutError(
                f"the transaction was open {int(now_ms - start)} ms, longer than "
                f"transaction.timeout.ms={self.transaction_timeout_ms}: the coordinator "
                f"aborted it and fenced this producer ({error})")
            timeout.__cause__ = error
            return timeout
        return error

    def check_usable(self) -> None:
        """Raise the fatal error, if any (flush() and the like stay usable otherwise)."""
        if self.state is S.FATAL_ERROR:
            raise self.error  # type: ignore[misc]
