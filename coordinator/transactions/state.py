"""The state of one transactional.id and its legal transitions (Kafka's TransactionState,
TransactionMetadata). Pure data; the handlers are in :mod:`.coordinator`.

States::

    Empty              no transaction (after InitProducerId)
    Ongoing            partitions (or a consumer group's offsets) joined the transaction
    PrepareCommit      EndTxn(commit) is durable: the commit *will* happen; markers are being
                       written to every partition of the transaction
    PrepareAbort       the same for an abort (EndTxn(abort), a fenced producer, a timeout)
    CompleteCommit     every COMMIT marker is written
    CompleteAbort      every ABORT marker is written
    PrepareEpochFence  transient, never written: an Ongoing transaction is being aborted with
                       a bumped epoch (a newer producer instance, or a timeout)
    Dead               the transactional.id expired; its record is a tombstone

Legal transitions (new state <- the states it may follow), checked by
:func:`check_transition`; an illegal one raises :class:`IllegalTransition` and nothing
changes (it is a bug in the coordinator, never a client's error):

=================  ==========================================================
new state          legal previous states
=================  ==========================================================
Empty              Empty, CompleteCommit, CompleteAbort
Ongoing            Ongoing, Empty, CompleteCommit, CompleteAbort
PrepareCommit      Ongoing
PrepareAbort       Ongoing, PrepareEpochFence, Empty (KIP-890 part 2: an abort of
                   no transaction still bumps the epoch)
CompleteCommit     PrepareCommit
CompleteAbort      PrepareAbort
PrepareEpochFence  Ongoing
Dead               Empty, CompleteCommit, CompleteAbort
=================  ==========================================================
"""

from __future__ import annotations

import enum
from dataclasses import replace
from typing import NamedTuple

from rillet.frozen import frozen

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
# Kafka's TransactionMetadata.isEpochExhausted: at Short.MaxValue - 1 a new producer id is
# taken instead of bumping further (the bumped epoch must still fit an int16).
MAX_PRODUCER_EPOCH = 32_767


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class TxnState(enum.Enum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"
    DEAD = "Dead"


S = TxnState
VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    S.EMPTY: frozenset({S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
    S.ONGOING: frozenset({S.ONGOING, S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
    S.PREPARE_COMMIT: frozenset({S.ONGOING}),
    S.PREPARE_ABORT: frozenset({S.ONGOING, S.PREPARE_EPOCH_FENCE, S.EMPTY}),
    S.COMPLETE_COMMIT: frozenset({S.PREPARE_COMMIT}),
    S.COMPLETE_ABORT: frozenset({S.PREPARE_ABORT}),
    S.PREPARE_EPOCH_FENCE: frozenset({S.ONGOING}),
    S.DEAD: frozenset({S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
}
PREPARING = frozenset({S.PREPARE_COMMIT, S.PREPARE_ABORT, S.PREPARE_EPOCH_FENCE})
COMPLETE = frozenset({S.COMPLETE_COMMIT, S.COMPLETE_ABORT})
# the states in which the transactional.id may expire (no transaction in flight)
EXPIRABLE = frozenset({S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT})


class IllegalTransition(Exception):
    """The coordinator tried a transition its table forbids (a bug): nothing changed."""

    def __init__(self, transactional_id: str, old: TxnState, new: TxnState) -> None:
        super().__init__(
            f"transactional.id {transactional_id!r}: illegal {old.value} -> {new.value}"
        )
        self.transactional_id = transactional_id
        self.old = old
        self.new = new


def check_transition(transactional_id: str, old: TxnState, new: TxnState) -> None:
    if old not in VALID_PREVIOUS[new]:
        raise IllegalTransition(transactional_id, old, new)


@frozen(kw_only=True)
class TxnMetadata:
    """What the coordinator knows of one transactional.id; one record of
    ``__transaction_state`` holds exactly this. Times in ms since the epoch."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    # the producer id and epoch before the last bump: a retried request carrying them is
    # recognised (KIP-360 InitProducerId, KIP-890 part 2 EndTxn) instead of fenced
    last_producer_id: int = NO_PRODUCER_ID
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: frozenset[TopicPartition] = frozenset()
    txn_start_ms: int = -1  # when the current transaction began (its first partition)
    last_update_ms: int = -1
    # how the last EndTxn ended the transaction: 2 (KIP-890 part 2, rillet's own client: the
    # epoch is bumped, the markers carry the bumped epoch) or 1 (Kafka clients on the KAFKA
    # listener, which keep their epoch: the markers carry the data's epoch)
    txn_version: int = 2

    def to(self, state: TxnState, **changes) -> TxnMetadata:
        """This metadata in ``state`` (with ``changes``), the transition checked."""
        check_transition(self.transactional_id, self.state, state)
        return replace(self, state=state, **changes)

    def bumped(self) -> dict:
        """The fields of an epoch bump (KIP-890 part 2 bumps at every transaction end): epoch
        + 1, or a new producer id at epoch 0 once the epoch is exhausted (the caller fills
        in ``producer_id`` then: see ``needs_new_producer_id``)."""
        return {
            "producer_epoch": 0 if self.needs_new_producer_id else self.producer_epoch + 1,
            "last_producer_id": self.producer_id,
            "last_producer_epoch": self.producer_epoch,
        }

    @property
    def needs_new_producer_id(self) -> bool:
        return self.producer_epoch >= MAX_PRODUCER_EPOCH - 1
