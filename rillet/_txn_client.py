"""The transactional producer's requests: what ``init_transactions``, ``commit_transaction``,
``abort_transaction`` and ``send_offsets_to_transaction`` send, and the AddPartitionsToTxn the
sender thread sends before a partition's first batch of a transaction. See
docs/transactions.md ("Client").

The decisions (which call is legal now, which error is abortable or fatal, which partitions
must join) belong to the pure :class:`rillet._txn.TransactionManager`; this module performs
the requests and feeds it their outcomes, holding ``lock`` around every use of it.

Threads: the application's calls run on the caller's thread and block (until their timeout,
default max.block.ms); AddPartitionsToTxn is sent by the sender thread and answered on the
endpoint's I/O thread, which hands the answer back to the sender (``Sender._txn_results``).

Retries: NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE (find the coordinator again),
COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS (the previous transaction's markers are
still being written: a short backoff from 2 ms, doubling) and lost connections are
retried until the call's deadline; other errors are classified abortable or fatal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from rillet._membership import CoordinatorLocator
from rillet._network import NetworkClient, map_error
from rillet._txn import IN_TRANSACTION, TransactionManager, TxnState
from rillet.errors import (
    BrokerUnavailableError,
    CommitFailedError,
    ProducerFencedError,
    RequestTimedOutError,
    RilletError,
    RilletTimeoutError,
    error_for_code,
)
from rillet.records import ConsumerGroupMetadata, TopicPartition
from rillet.transport import protocol as P

E = P.ErrorCode
_REFIND = {E.NOT_COORDINATOR, E.COORDINATOR_NOT_AVAILABLE}
_WAIT = {E.COORDINATOR_LOAD_IN_PROGRESS, E.CONCURRENT_TRANSACTIONS, E.REQUEST_TIMED_OUT}
_FENCED = {E.PRODUCER_FENCED, E.INVALID_PRODUCER_EPOCH}
# errors of the transaction coordinator after which the producer cannot go on (Kafka's
# TransactionManager treats these as fatal): fencing and a coordinator that does not know us
_FATAL = _FENCED | {E.INVALID_TXN_STATE, E.TRANSACTIONAL_ID_NOT_FOUND,
                    E.INVALID_PRODUCER_ID_MAPPING, E.TRANSACTION_COORDINATOR_FENCED,
                    E.INVALID_TRANSACTION_TIMEOUT, E.UNSUPPORTED_VERSION}
# TxnOffsetCommit: the consumer's group generation moved on (KIP-447): the offsets are refused,
# the transaction must be aborted
_MEMBER_GONE = {E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION, E.FENCED_INSTANCE_ID,
                E.FENCED_MEMBER_EPOCH, E.STALE_MEMBER_EPOCH}
# the coordinator answers CONCURRENT_TRANSACTIONS while it writes the previous transaction's
# markers (a few ms on a healthy cluster): retry soon, then back off (Kafka's client: 20 ms)
_CONCURRENT_BACKOFF_MS = 2


def _monotonic_ms() -> float:
    return time.monotonic() * 1000


def fenced(code: int, message: str | None = None) -> ProducerFencedError:
    """PRODUCER_FENCED and INVALID_PRODUCER_EPOCH both mean a newer epoch exists."""
    return ProducerFencedError(
        f"{E(code).name}: a newer producer with the same transactional.id exists, or the "
        f"coordinator aborted this producer's transaction{f' ({message})' if message else ''}")


class Transactions:
    """The transactional state of one Producer and the coordinator requests it needs.
    Thread-safe: ``lock`` guards ``tm``."""

    def __init__(self, client: NetworkClient, config: Any) -> None:
        self.client = client
        self.transactional_id: str = config.transactional_id
        self.tm = TransactionManager(self.transactional_id, config.transaction_timeout_ms)
        self.lock = threading.Lock()
        self.backoff_ms = config.retry_backoff_ms
        self.backoff_max_ms = max(config.retry_backoff_max_ms, config.retry_backoff_ms)
        self.request_timeout_ms = config.request_timeout_ms
        self.locator = CoordinatorLocator(client, self.transactional_id,
                                          config.retry_backoff_ms / 1000,
                                          key_type=P.COORDINATOR_TRANSACTION)
        self._groups: dict[str, CoordinatorLocator] = {}
        # AddPartitionsToTxn: at most one in flight (sender thread)
        self.add_in_flight = False
        self.add_retry_at = 0.0
        self.add_attempts = 0

    # -- state, for the producer and the sender ------------------------------------------

    def pair(self) -> tuple[int, int]:
        with self.lock:
            return self.tm.producer_id, self.tm.producer_epoch

    def check_send(self) -> None:
        """send(): only inside a transaction (raises InvalidTxnStateError, the abortable or
        the fatal error otherwise)."""
        tm = self.tm
        if tm.state is not IN_TRANSACTION:
            with self.lock:
                tm.check_in_transaction("send()")

    def on_batch_failed(self, error: BaseException) -> None:
        """A batch of the transaction failed (sender thread): the transaction must be aborted,
        or, fenced, the producer is done."""
        with self.lock:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        tm = self.tm
        if isinstance(error, ProducerFencedError):
            tm.fatal(tm.fenced_error(error, _monotonic_ms()))
        elif tm.state is IN_TRANSACTION or tm.state is TxnState.COMMITTING:
            tm.abortable(error)

    # -- init_transactions ---------------------------------------------------------------

    def init(self, timeout_s: float) -> tuple[int, int]:
        with self.lock:
            self.tm.start_init()
        deadline = time.monotonic() + timeout_s
        r = self._coordinator_call(
            lambda: P.InitProducerIdRequest(
                transactional_id=self.transactional_id, timeout_ms=self.request_timeout_ms,
                transaction_timeout_ms=self.tm.transaction_timeout_ms),
            deadline, "init_transactions()")
        if r.error_code:
            self._fatal(r.error_code, r.error_message, "init_transactions()")
        with self.lock:
            self.tm.init_done(r.producer_id, r.producer_epoch)
        return r.producer_id, r.producer_epoch

    # -- begin / commit / abort ----------------------------------------------------------

    def begin(self) -> None:
        with self.lock:
            self.tm.begin(_monotonic_ms())

    def start_commit(self) -> None:
        with self.lock:
            self.tm.start_commit()

    def start_abort(self) -> None:
        with self.lock:
            self.tm.start_abort()

    def raise_if_failed(self) -> None:
        """After commit's flush: a failed batch made the transaction abortable (or fatal)."""
        with self.lock:
            self.tm._raise_error()

    def end(self, committed: bool, deadline: float) -> tuple[int, int] | None:
        """EndTxn if the coordinator knows of this transaction; the pair for the next one
        (None: the pair did not change). The state goes to READY."""
        with self.lock:
            needed = self.tm.needs_end_txn
            pid, epoch = self.tm.producer_id, self.tm.producer_epoch
        new: tuple[int, int] | None = None
        if needed:
            what = "commit_transaction()" if committed else "abort_transaction()"
            r = self._coordinator_call(
                lambda: P.EndTxnRequest(transactional_id=self.transactional_id,
                                        producer_id=pid, producer_epoch=epoch,
                                        committed=committed),
                deadline, what)
            if r.error_code:
                self._fatal(r.error_code, r.error_message, what)
            if r.producer_id >= 0 and (r.producer_id, r.producer_epoch) != (pid, epoch):
                new = (r.producer_id, r.producer_epoch)
        with self.lock:
            self.tm.end_done(*(new or (-1, -1)))
            self.add_retry_at = 0.0
            self.add_attempts = 0
        return new

    # -- send_offsets_to_transaction -----------------------------------------------------

    def send_offsets(self, offsets: Mapping[Any, Any], group: Any, timeout_s: float) -> None:
        with self.lock:
            self.tm.check_in_transaction("send_offsets_to_transaction()")
        meta = group if isinstance(group, ConsumerGroupMetadata) else (
            ConsumerGroupMetadata(group_id=group) if isinstance(group, str) else None)
        if meta is None or not meta.group_id:
            raise TypeError("send_offsets_to_transaction() needs consumer.group_metadata() or "
                            f"a group id, got {group!r}")
        topics = _offset_topics(offsets)
        if not topics:
            return
        deadline = time.monotonic() + timeout_s
        with self.lock:
            self.tm.offsets_adding()
            pid, epoch = self.tm.producer_id, self.tm.producer_epoch
        r = self._coordinator_call(
            lambda: P.AddOffsetsToTxnRequest(transactional_id=self.transactional_id,
                                             producer_id=pid, producer_epoch=epoch,
                                             group_id=meta.group_id),
            deadline, "send_offsets_to_transaction() (AddOffsetsToTxn)")
        if r.error_code:
            self._fail_call(r.error_code, r.error_message, "AddOffsetsToTxn")
        request = P.TxnOffsetCommitRequest(
            transactional_id=self.transactional_id, group_id=meta.group_id, producer_id=pid,
            producer_epoch=epoch, generation_id=meta.generation_id, member_id=meta.member_id,
            group_instance_id=meta.group_instance_id, topics=topics)
        locator = self._group_locator(meta.group_id)
        r = self._coordinator_call(lambda: request, deadline,
                                   "send_offsets_to_transaction() (TxnOffsetCommit)",
                                   locator=locator, partitions=True)
        code = _first_error(r)
        if code:
            self._fail_call(code, r.error_message, "TxnOffsetCommit")

    def _group_locator(self, group_id: str) -> CoordinatorLocator:
        locator = self._groups.get(group_id)
        if locator is None:
            locator = self._groups[group_id] = CoordinatorLocator(
                self.client, group_id, self.backoff_ms / 1000)
        return locator

    # -- AddPartitionsToTxn (sender thread) ----------------------------------------------

    def add_partitions(self, wanted, on_done) -> bool:
        """Ask the coordinator to add the partitions of ``wanted`` that are not in the
        transaction yet; ``on_done(tps, future)`` runs on the I/O thread with the answer.
        False when nothing was sent (nothing new, or the coordinator is unknown and could
        not be found within the request timeout: tried again on the next round)."""
        if self.add_in_flight:
            return False
        with self.lock:
            tps = self.tm.partitions_to_add(wanted)
            pid, epoch = self.tm.producer_id, self.tm.producer_epoch
        if not tps:
            return False
        try:
            # usually known since init_transactions(); found again after NOT_COORDINATOR
            address = self.locator.address(min(self.request_timeout_ms, 5000) / 1000)
        except RilletError as exc:
            self.add_failed(tps, exc)
            return False
        by_topic: dict[str, list[int]] = {}
        for topic, partition in tps:
            by_topic.setdefault(topic, []).append(partition)
        req = P.AddPartitionsToTxnRequest(
            transactional_id=self.transactional_id, producer_id=pid, producer_epoch=epoch,
            topics=tuple(P.TxnTopic(name=t, partitions=tuple(ps)) for t, ps in by_topic.items()))
        self.add_in_flight = True
        fut = self.client.request(address, req, self.request_timeout_ms)
        fut.add_done_callback(lambda f, _tps=tps: on_done(_tps, f))
        return True

    def add_done(self, tps: list, fut) -> None:
        """The AddPartitionsToTxn answer (sender thread): partitions added, to retry (after
        ``add_retry_at``), or the transaction failed (abortable or fatal)."""
        self.add_in_flight = False
        exc = fut.exception()
        if exc is not None:
            self.add_failed(tps, map_error(exc))
            return
        r = fut.result()
        codes = {(t.name, p.partition): p.error_code for t in r.results for p in t.partitions}
        ok = [tp for tp in tps if r.error_code == 0 and codes.get(tp, 0) == 0]
        bad = [tp for tp in tps if tp not in ok]
        with self.lock:
            self.tm.partitions_added(ok)
        if not bad:
            self.add_attempts = 0
            return
        code = r.error_code or next(codes[tp] for tp in bad if codes.get(tp))
        self.add_failed(bad, error_for_code(code, r.error_message), code)

    def add_failed(self, tps: list, error: BaseException, code: int | None = None) -> None:
        code = getattr(error, "code", -1) if code is None else code
        with self.lock:
            self.tm.partitions_not_added(tps)
            if code in _FENCED:
                self._fail(fenced(code))
                return
            if code in _FATAL:
                self.tm.fatal(error)
                return
            if not (getattr(error, "retriable", False) or code in _REFIND or code in _WAIT):
                self._fail(error)
                return
        if code in _REFIND or isinstance(error, (BrokerUnavailableError, RequestTimedOutError)):
            self.locator.invalidate()
        base = _CONCURRENT_BACKOFF_MS if code == E.CONCURRENT_TRANSACTIONS else self.backoff_ms
        self.add_retry_at = _monotonic_ms() + min(self.backoff_max_ms,
                                                  base * 2 ** min(self.add_attempts, 10))
        self.add_attempts += 1

    # -- helpers ---------------------------------------------------------------------------

    def _coordinator_call(self, make, deadline: float, what: str, *,
                          locator: CoordinatorLocator | None = None, partitions: bool = False):
        """Send ``make()`` to the coordinator until an answer that is not a retriable error
        (returned, its error_code possibly set) or the deadline (RilletTimeoutError; the
        call may be repeated). Retriable: the protocol table's (``retriable``: coordinator
        moves and loads, CONCURRENT_TRANSACTIONS, NOT_ENOUGH_REPLICAS for its log, ...) and
        REQUEST_TIMED_OUT; ``partitions``: per-partition error codes count too."""
        locator = locator or self.locator
        attempt = 0
        last: Any = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RilletTimeoutError(f"{what} did not complete in time; last error: {last}")
            code = None
            try:
                address = locator.address(left)
                left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                r = self.client.call(address, make(), min(left_ms, self.request_timeout_ms))
            except RilletError as exc:
                if not exc.retriable:
                    raise
                locator.invalidate()
                last, r = exc, None
            if r is not None:
                code = _first_error(r) if partitions else r.error_code
                if not code or not (code in _WAIT or P.retriable(code)):
                    return r
                last = error_for_code(code, getattr(r, "error_message", None))
                if code in _REFIND:
                    locator.invalidate()
            base = _CONCURRENT_BACKOFF_MS if code == E.CONCURRENT_TRANSACTIONS else self.backoff_ms
            pause = min(self.backoff_max_ms, base * 2 ** min(attempt, 10)) / 1000
            attempt += 1
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))

    def _fatal(self, code: int, message: str | None, what: str) -> None:
        error = fenced(code, message) if code in _FENCED else error_for_code(
            code, f"{what}: {message}" if message else what)
        with self.lock:
            if isinstance(error, ProducerFencedError):
                error = self.tm.fenced_error(error, _monotonic_ms())
            self.tm.fatal(error)
        raise error

    def _fail_call(self, code: int, message: str | None, what: str) -> None:
        """An error answer to AddOffsetsToTxn / TxnOffsetCommit: fatal or abortable."""
        if code in _FATAL:
            self._fatal(code, message, what)
        if code in _MEMBER_GONE:
            error: RilletError = CommitFailedError(
                f"{what}: {E(code).name}: the consumer's group generation moved on (its "
                f"partitions may belong to another member now){f': {message}' if message else ''}",
                code=code)
        else:
            error = error_for_code(code, f"{what}: {message}" if message else what)
        with self.lock:
            self.tm.abortable(error)
        raise error


def _offset_topics(offsets: Mapping[Any, Any]) -> tuple[P.OffsetCommitTopic, ...]:
    """{TopicPartition: offset | OffsetAndMetadata-like (.offset, .metadata)} as the wire's
    topics; the offset is the next one to consume (position), as in Kafka."""
    by_topic: dict[str, list[P.OffsetCommitPartition]] = {}
    for tp, value in sorted(offsets.items(), key=lambda kv: tuple(kv[0])):
        topic, partition = TopicPartition(*tp)
        offset = getattr(value, "offset", value)
        metadata = getattr(value, "metadata", "") or ""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset for {topic}-{partition} must be an int >= 0, got {value!r}")
        by_topic.setdefault(topic, []).append(P.OffsetCommitPartition(
            partition=partition, committed_offset=offset, committed_metadata=str(metadata)))
    return tuple(P.OffsetCommitTopic(name=t, partitions=tuple(ps)) for t, ps in by_topic.items())


def _first_error(r: Any) -> int:
    if r.error_code:
        return r.error_code
    return next((p.error_code for t in getattr(r, "topics", ()) for p in t.partitions
                 if p.error_code), 0)
