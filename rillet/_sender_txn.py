"""The transactional part of the producer's sender thread (a mixin of ``Sender``).

A transactional producer's batches carry the transactional attribute and its requests the
transactional id (``Sender._send_to``); besides that the sender:

* asks the coordinator to add partitions before their batches leave: every round it sends
  AddPartitionsToTxn for the partitions that have batches (lingering in the accumulator,
  ready, or waiting) and are not in the transaction yet, at most one request in flight; the
  answer comes back through ``txn_results`` (``_txn_add``), and a partition's batches wait
  until it is added (``_txn_gate``);
* fails its waiting batches at once when the transaction failed (abortable: with
  TransactionAbortedError; fatal: with the error itself);
* drops what was not sent on abort_transaction() (``drop_unsent``);
* takes the producer id and epoch of each new transaction from the coordinator
  (``set_producer``: sequences restart at 0, KIP-890 part 2); it never bumps epochs itself.

The decisions are the pure state machine's (:mod:`rillet._txn`); the requests are
:mod:`rillet._txn_client`'s.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future

from rillet.errors import (
    ProducerClosedError,
    ProducerFencedError,
    RilletTimeoutError,
    TransactionAbortedError,
)


class TransactionalSending:
    """Mixed into ``Sender``; uses its ``txn``, ``acc``, ``waiting``, ``waiting_overflow``,
    ``txn_results``, ``drop_request``, sequence tables and ``_finish``."""

    # -- called from the application's thread, between transactions ----------------------

    def set_producer(self, producer_id: int, producer_epoch: int) -> None:
        """The pair for the next transaction: sequences restart at 0 (KIP-890 part 2).
        Called when no batch of the producer is in flight or waiting."""
        self.producer_id, self.producer_epoch = producer_id, producer_epoch
        self.next_sequence.clear()
        self.epochs.clear()
        self.unresolved.clear()
        self.needs_bump.clear()

    def drop_unsent(self, error: BaseException, timeout_s: float) -> None:
        """abort_transaction(): fail every batch not sent yet with ``error`` (on the sender
        thread, which owns them); returns once done. Batches in flight complete as usual."""
        done = threading.Event()
        self.drop_request = (error, done)
        self.wake()
        if not done.wait(timeout_s):
            if not self.is_alive():
                raise ProducerClosedError()
            raise RilletTimeoutError("the sender did not drop the unsent batches in time")

    # -- the sender thread ----------------------------------------------------------------

    def _txn_gate(self) -> frozenset | None:
        """The partitions whose batches may leave; None when the transaction failed (its
        waiting batches were failed then)."""
        txn = self.txn
        with txn.lock:
            tm = txn.tm
            error = tm.error if tm.has_error else None
            added = frozenset(tm.added)
        if error is not None:
            if not isinstance(error, ProducerFencedError):
                error = TransactionAbortedError(
                    f"the transaction failed before this batch was sent: {error}")
            self._fail_waiting(error)
            return None
        return added

    def _txn_add(self, now: float) -> float | None:
        """AddPartitionsToTxn for the partitions that have batches, sent or lingering, and
        are not in the transaction yet: asked while the accumulator still fills them, so
        the answer is usually there when they drain. Returns when to retry, if waiting."""
        txn = self.txn
        if txn.add_in_flight:
            return None  # its answer wakes the sender
        if now < txn.add_retry_at:
            return txn.add_retry_at
        wanted = self.acc.partitions()
        if self.waiting:
            wanted.update((b.topic, b.partition) for b in self.waiting)
        if wanted:
            txn.add_partitions(wanted, self._on_add_done)
        return txn.add_retry_at if not txn.add_in_flight and txn.add_retry_at > now else None

    def _on_add_done(self, tps: list, fut: Future) -> None:  # the endpoint's I/O thread
        self.txn_results.append((tps, fut))
        self.acc.wakeup.set()

    def _fail_waiting(self, error: BaseException) -> None:
        batches = list(self.waiting) + self.waiting_overflow
        self.waiting = deque()
        self.waiting_overflow = []
        for batch in batches:
            self._finish(batch, -1, error)
