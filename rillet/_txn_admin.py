"""Transaction administration, mixed into :class:`rillet.admin.Admin` (the
kafka-transactions.sh tool's calls; docs/transactions.md, "Administration").

    admin.list_transactions()                          # [TransactionListing(...), ...]
    admin.list_transactions(states=["Ongoing"], min_duration_ms=60_000)   # hanging ones
    admin.describe_transactions(["app-1"])["app-1"]    # state, epoch, partitions, start
    admin.force_terminate_transaction("app-1")         # fence the producer, abort its txn

ListTransactions is asked of every live broker (each answers for the transactional ids it
coordinates); DescribeTransactions and InitProducerId go to the id's coordinator
(FindCoordinator key_type 1, re-found on NOT_COORDINATOR).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from rillet._membership import CoordinatorLocator
from rillet.errors import IllegalStateError, RilletTimeoutError, error_for_code
from rillet.frozen import frozen
from rillet.records import TopicPartition
from rillet.transport import protocol as p


@frozen
class TransactionListing:
    transactional_id: str
    producer_id: int
    state: str
    """Kafka's names: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
    CompleteAbort, PrepareEpochFence, Dead."""
    coordinator_id: int


@frozen
class TransactionDescription:
    transactional_id: str
    coordinator_id: int
    state: str
    producer_id: int
    producer_epoch: int
    transaction_timeout_ms: int
    transaction_start_time_ms: int
    """-1 when no transaction is open."""
    partitions: tuple[TopicPartition, ...]


class TransactionAdminMixin:
    """Needs ``self._client`` (a NetworkClient) and ``self.config``."""

    def _txn_locator(self, transactional_id: str) -> CoordinatorLocator:
        if not transactional_id:
            raise IllegalStateError("a transactional id must not be empty")
        return CoordinatorLocator(self._client, transactional_id,
                                  self.config.retry_backoff_ms / 1000,
                                  key_type=p.COORDINATOR_TRANSACTION)

    def list_transactions(self, states: Iterable[str] | None = None,
                          producer_ids: Iterable[int] | None = None,
                          min_duration_ms: int | None = None) -> list[TransactionListing]:
        """Every transactional id of the cluster, optionally only those in ``states``, of
        ``producer_ids``, or with a transaction open for at least ``min_duration_ms``."""
        view = self._client.refresh_metadata(())
        req = p.ListTransactionsRequest(
            state_filters=tuple(states or ()), producer_id_filters=tuple(producer_ids or ()),
            duration_filter_ms=-1 if min_duration_ms is None else int(min_duration_ms))
        found: dict[str, TransactionListing] = {}
        for broker_id, address in sorted(view.brokers.items()):
            r = self._client.call(address, req)
            if isinstance(r, p.ErrorResponse):
                raise error_for_code(r.error_code, r.error_message)
            if r.error_code:
                raise error_for_code(r.error_code, f"ListTransactions on broker {broker_id}")
            if r.unknown_state_filters:
                raise IllegalStateError(
                    f"unknown transaction state(s) {list(r.unknown_state_filters)}; known: "
                    "Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, "
                    "CompleteAbort, PrepareEpochFence, Dead")
            for t in r.transaction_states:
                found[t.transactional_id] = TransactionListing(
                    t.transactional_id, t.producer_id, t.transaction_state, broker_id)
        return [found[k] for k in sorted(found)]

    def describe_transactions(self, transactional_ids: Iterable[str]
                              ) -> dict[str, TransactionDescription]:
        """The coordinator's view of each id; TransactionalIdNotFound for an unknown one."""
        out: dict[str, TransactionDescription] = {}
        timeout_s = self.config.request_timeout_ms / 1000
        for tid in transactional_ids:
            locator = self._txn_locator(tid)
            r = locator.call(p.DescribeTransactionsRequest(transactional_ids=(tid,)), timeout_s)
            if isinstance(r, p.ErrorResponse):
                raise error_for_code(r.error_code, r.error_message)
            (d,) = r.transaction_states
            if d.error_code:
                raise error_for_code(d.error_code, f"transactional id {tid!r}")
            out[tid] = TransactionDescription(
                transactional_id=tid, coordinator_id=self._broker_id_of(locator._address),
                state=d.transaction_state, producer_id=d.producer_id,
                producer_epoch=d.producer_epoch, transaction_timeout_ms=d.transaction_timeout_ms,
                transaction_start_time_ms=d.transaction_start_time_ms,
                partitions=tuple(sorted(TopicPartition(t.name, x)
                                        for t in d.topics for x in t.partitions)))
        return out

    def force_terminate_transaction(self, transactional_id: str) -> None:
        """Fence the producer of ``transactional_id`` and abort its open transaction, as
        Kafka's ``forceTerminateTransaction`` (an InitProducerId for the id: the epoch is
        bumped, an ongoing transaction aborted). The producer's next call fails with
        ProducerFencedError; a new instance starts clean."""
        timeout_s = self.config.request_timeout_ms / 1000
        deadline = time.monotonic() + timeout_s
        locator = self._txn_locator(transactional_id)
        req = p.InitProducerIdRequest(transactional_id=transactional_id)
        while True:
            r = locator.call(req, max(0.1, deadline - time.monotonic()))
            if isinstance(r, p.ErrorResponse):
                raise error_for_code(r.error_code, r.error_message)
            if r.error_code == p.ErrorCode.CONCURRENT_TRANSACTIONS:  # markers being written
                if time.monotonic() >= deadline:
                    raise RilletTimeoutError(
                        f"transaction of {transactional_id!r} still completing after "
                        f"{timeout_s:.0f} s")
                time.sleep(self.config.retry_backoff_ms / 1000)
                continue
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message or repr(transactional_id))
            return

    def _broker_id_of(self, address: str | None) -> int:
        view = self._client.refresh_metadata(())
        return next((b for b, a in view.brokers.items() if a == address), -1)
