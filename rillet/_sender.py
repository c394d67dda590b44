"""The producer's sender thread: drains the accumulator, sends Produce requests, completes batches.

One thread per producer. It owns every batch after the accumulator closes it: encoding
(``ProducerBatch.seal``), grouping by leader, the in-flight limit per broker
(max.in.flight.requests.per.connection), retries with exponential backoff and jitter
(retry.backoff.ms .. retry.backoff.max.ms) of retriable errors until delivery.timeout.ms, and
metadata refreshes when a leader moved. Responses arrive on the endpoint's I/O thread and are
handed over through a deque, so batch completion and delivery callbacks run here.

I/O rounds: when a Produce response arrives and the sender thread is idle (waiting for a
reason to go on), the I/O thread runs the sender's round itself (``_on_response``): it handles
the response and sends what waited for it (the coalescing hold below) at once, instead of
waking this thread, which would wake the I/O thread again to send. The rounds are serialized
by ``_turn``; the I/O thread only tries it (never waits for this thread), skips it where a
round could block (a transaction, an idempotent producer still without its producer id), and
never runs user code: the completions of its round (futures, delivery callbacks) are left to
this thread, which runs them first thing in its next round, so they keep their order.

Idempotence (sequences, KIP-360 epoch bumps): see :mod:`rillet._sender_idempotence`.
Deadlines of the requests and batches in flight: see :mod:`rillet._inflight`.

Transactions (``txn``, a :class:`rillet._txn_client.Transactions`): see
:mod:`rillet._sender_txn`. Epochs are never bumped here then: a sequence gap makes the
transaction abortable instead (its end renews the epoch).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import Future

from rillet._accumulator import ProducerBatch, RecordAccumulator
from rillet._client_metrics import ProducerMetrics
from rillet._inflight import InFlightRequests, ProduceInFlight
from rillet._network import NetworkClient, map_error
from rillet._sender_idempotence import IdempotentSending
from rillet._sender_txn import TransactionalSending
from rillet._txn_client import fenced
from rillet.errors import (
    DeliveryTimeoutError,
    ProducerClosedError,
    RequestTimedOutError,
    RilletError,
    error_for_code,
)
from rillet.logstore.batch_fast import with_producer
from rillet.transport.protocol import (
    ErrorCode,
    ProducePartition,
    ProduceRequest,
    ProduceTopic,
)

_TOO_LARGE = {ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE}
_REFRESH_CODES = {
    ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.FENCED_LEADER_EPOCH,
    ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.BROKER_NOT_AVAILABLE,
}


_MAX_BATCHES_IN_FLIGHT = 5  # per partition, with idempotence (the broker keeps 5)
_SEQUENCE_RETRY = {ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode.UNKNOWN_PRODUCER_ID}
_FENCED = {ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH}


_log = logging.getLogger("rillet.producer")


def _monotonic_ms() -> float:
    return time.monotonic() * 1000


def _created(batch: ProducerBatch) -> float:
    return batch.created_ms


def _earliest(a: float | None, b: float) -> float:
    return b if a is None or b < a else a


class Sender(IdempotentSending, TransactionalSending, threading.Thread):
    def __init__(self, client: NetworkClient, accumulator: RecordAccumulator, *, acks: int,
                 retries: int, retry_backoff_ms: int, retry_backoff_max_ms: int,
                 delivery_timeout_ms: int, request_timeout_ms: int, max_in_flight: int,
                 max_request_size: int, on_batch_drained, name: str, txn=None,
                 client_id: str = "") -> None:
        super().__init__(name=name, daemon=True)
        self.client = client
        self.acc = accumulator
        self.acks = acks
        self.retries = retries
        self.backoff_ms = retry_backoff_ms
        self.backoff_max_ms = retry_backoff_max_ms
        self.delivery_timeout_ms = delivery_timeout_ms
        self.request_timeout_ms = request_timeout_ms
        self.max_in_flight = max_in_flight
        self.max_request_size = max_request_size
        self.on_batch_drained = on_batch_drained
        self.rng = random.Random()
        self.responses: deque[ProduceInFlight] = deque()  # completed on the network's thread
        # every request in flight has a deadline (request.timeout.ms) and every batch in it
        # one too (delivery.timeout.ms), enforced here whatever the network does: _inflight.py
        self.in_flight = InFlightRequests(request_timeout_ms, delivery_timeout_ms)
        self.waiting: deque[ProducerBatch] = deque()  # drained, not yet sent (retries too)
        self.waiting_overflow: list[ProducerBatch] = []  # did not fit in max.request.size
        self.coalesce_bytes = min(max_request_size // 2, 256 * 1024)
        self.metrics = ProducerMetrics()  # Producer.metrics() (rillet/_client_metrics.py)
        self.client_id = client_id  # sent with each Produce (the broker's quotas)
        # quotas (docs/security.md): a broker that answered throttle_time_ms gets nothing
        # more before then (KIP-219: the client mutes the connection too)
        self.throttled_until: dict[str, float] = {}
        self.incomplete: set[ProducerBatch] = set()
        self.incomplete_lock = threading.Lock()
        self.flush_requests = 0
        self.closing = False
        self.force_close = False
        self._init_idempotence(client, acks)
        # transactions (see the module docstring)
        self.txn = txn
        self.transactional_id = None if txn is None else txn.transactional_id
        if txn is not None:
            self.idempotent = True  # the config refuses acks != all without idempotence
        self.txn_results: deque = deque()  # (partitions, future) of AddPartitionsToTxn
        self.drop_request: tuple[BaseException, threading.Event] | None = None
        # I/O rounds (see the module docstring)
        self._turn = threading.Lock()  # held for a round, by this thread or the I/O thread
        self._wake_at = 0.0  # when this thread next wakes on its own (ms, monotonic)
        self._deferred: list | None = None  # a round on the I/O thread: its completions
        self._completions: deque = deque()  # left by I/O rounds, run by this thread
        # their completions until this thread has run them (under incomplete_lock): a batch
        # leaves ``incomplete`` before, and flush() must still wait for it
        self._undone: set = set()
        self.io_rounds = 0  # rounds run on the I/O thread so far (tests read it)
        self._stopped = False  # the thread has ended (under _turn)

    # -- called from user threads ---------------------------------------------------------

    def pending_completions(self) -> list:
        """What flush() waits for: the batches not yet answered, and the completions an I/O
        round left to this thread that it has not run yet."""
        with self.incomplete_lock:
            return [b.completion for b in self.incomplete] + list(self._undone)

    def wake(self) -> None:
        self.acc.wakeup.set()


    # -- the thread -----------------------------------------------------------------------

    def run(self) -> None:
        acc = self.acc
        try:
            while True:
                try:
                    if self._run_once(acc):
                        break
                except Exception:  # noqa: BLE001 - the thread must survive (Kafka's Sender too)
                    # a dead sender would leave every later send unanswered (flush hangs)
                    _log.exception("unexpected error in the producer's sender thread")
                    acc.wakeup.wait(0.1)
                    acc.wakeup.clear()
        finally:
            with self._turn:  # no I/O round from now on
                self._stopped = True
            self._run_completions()
            error = ProducerClosedError("the producer was closed before the record was sent")
            acc.abort_all(error)
            for batch in list(self.incomplete):
                self._finish(batch, -1, error)

    def _run_once(self, acc: RecordAccumulator) -> bool:
        """One round, then wait for a reason to go on. True: stop."""
        with self._turn:
            stop, timeout = self._round(acc)
            self._wake_at = _monotonic_ms() + timeout * 1000
        if stop:
            return True
        acc.wakeup.wait(timeout)
        acc.wakeup.clear()
        return False

    def _on_response(self) -> None:
        """The I/O thread, a Produce response just queued: run the round here if this thread
        is idle and the round cannot block, else wake this thread (module docstring)."""
        acc = self.acc
        if self.txn is not None or not self._turn.acquire(blocking=False):
            acc.wakeup.set()
            return
        try:
            if self._stopped or (self.idempotent and self.producer_id < 0):
                # stopped: nothing more is sent; InitProducerId blocks: not on this thread
                stop, timeout, deferred = True, 0.0, None
            else:
                self._deferred = []
                try:
                    stop, timeout = self._round(acc)
                except BaseException:
                    acc.wakeup.set()  # this thread takes over (and logs a bug of its own)
                    raise
                finally:
                    deferred, self._deferred = self._deferred, None
                    self._completions.extend(deferred)
                self.io_rounds += 1
        finally:
            self._turn.release()
        if stop or deferred or _monotonic_ms() + timeout * 1000 < self._wake_at:
            acc.wakeup.set()  # completions to run, or something due before it wakes

    def _leave(self, batch: ProducerBatch) -> None:
        """``batch`` is answered: out of ``incomplete``; in an I/O round its completion, left
        to this thread, counts as undone until run (flush() waits for it either way)."""
        with self.incomplete_lock:
            if self._deferred is not None:
                self._undone.add(batch.completion)
            self.incomplete.discard(batch)

    def _complete(self, completion, *args) -> None:
        """Complete a batch (user code runs: futures, callbacks), or leave it to this thread
        if the round runs on the I/O thread."""
        if self._deferred is not None:
            self._deferred.append((completion, args))
        else:
            completion.complete(*args)

    def _run_completions(self) -> None:
        """This thread: the completions I/O rounds left, in their order."""
        while self._completions:
            completion, args = self._completions.popleft()
            completion.complete(*args)
            with self.incomplete_lock:
                self._undone.discard(completion)

    def _round(self, acc: RecordAccumulator) -> tuple[bool, float]:
        """Completions left by I/O rounds, responses, drain, send. Returns (stop, how long
        to wait at most before the next round, in s)."""
        if self._deferred is None:
            self._run_completions()
        now = _monotonic_ms()
        while self.responses:
            self._handle_response(self.responses.popleft(), now)
        if self.in_flight:
            self._expire_in_flight(now)
        while self.txn_results:
            self.txn.add_done(*self.txn_results.popleft())
        drop = self.drop_request
        flush = self.flush_requests > 0 or self.closing or drop is not None
        drained = acc.drain(now, flush)
        if drained:
            with self.incomplete_lock:
                self.incomplete.update(drained)
            for batch in drained:
                self.on_batch_drained(batch)
            self.waiting.extend(drained)
        if drop is not None:
            self.drop_request = None
            self._fail_waiting(drop[0])
            drop[1].set()
        if self.force_close:
            return True, 0.0
        txn_retry = self._txn_add(now) if self.txn is not None else None
        attention = self._send_ready(now, flush) if self.waiting else None
        if not self.waiting and acc.held:
            acc.held = set()  # nothing held (a drop or an expiry emptied it)
        if self.closing and not self.incomplete and not acc.has_unsent():
            return True, 0.0
        # Wake-ups from send(): a new batch only if nothing would wake us before its
        # linger expires; a full batch only once enough is ready to be worth a request.
        # idle goes up before the check, so a batch opened in between still wakes us.
        acc.sender_idle = True
        expiry = acc.next_expiry_ms()
        if expiry is not None:
            acc.sender_idle = False
        in_flight = self.in_flight.next_deadline_ms()
        deadlines = [d for d in (expiry, attention, txn_retry, in_flight) if d is not None]
        held = sum(b.reserved for b in self.waiting)
        acc.wake_bytes = max(0, self.coalesce_bytes - held) if self.in_flight else 0
        timeout = 0.5 if not deadlines else max(0.0, (min(deadlines) - now) / 1000)
        return False, min(0.5, timeout)

    def _send_ready(self, now: float, flush: bool) -> float | None:
        """Send what can go now; returns when a held batch next needs attention."""
        added: frozenset | None = None  # transactions: the partitions batches may go to
        attention: float | None = None
        if self.txn is not None:
            added = self._txn_gate()
            if added is None:
                return None
        elif self.idempotent and self.producer_id < 0 and not self._init_producer_id(now):
            self._expire_waiting(_monotonic_ms())  # no producer id yet: the deadline holds
            return self.producer_id_retry_at
        if self.needs_bump:
            self._bump_epochs()
        by_leader: dict[str, list[ProducerBatch]] = defaultdict(list)
        keep: deque[ProducerBatch] = deque()
        missing_leader = False
        leaders: dict[tuple[str, int], str | None] = {}
        blocked: set[tuple[str, int]] = set()  # an older batch of the partition must go first
        selected: Counter = Counter()
        heads: dict[tuple[str, int], ProducerBatch] = {}  # unsealed, may absorb the next
        merge_bytes = self.coalesce_bytes
        waiting = self.waiting
        if len(waiting) > 1:  # retries rejoin at the end: restore creation (= send) order
            waiting = sorted(waiting, key=_created)
        for batch in waiting:
            if now - batch.created_ms >= self.delivery_timeout_ms:
                self._finish(batch, -1, self._expired(batch))
                continue
            tp = (batch.topic, batch.partition)
            if batch.retry_at_ms > now or tp in blocked:
                keep.append(batch)
                blocked.add(tp)
                if batch.retry_at_ms > now:
                    attention = _earliest(attention, batch.retry_at_ms)
                continue
            if added is not None and tp not in added:
                keep.append(batch)  # until AddPartitionsToTxn added its partition
                blocked.add(tp)
                continue
            head = heads.get(tp)
            if (head is not None and batch.data is None and not batch.solo
                    and head.size + batch.size <= merge_bytes):
                # a backlog of batches for one partition leaves as one record batch: one
                # sequence range and one append on the broker (librdkafka builds its batches
                # at send time the same way)
                head.absorb(batch)
                continue
            if self.idempotent:
                if tp in self.needs_bump or (
                        self.batches_in_flight[tp] + selected[tp] >= _MAX_BATCHES_IN_FLIGHT):
                    keep.append(batch)
                    blocked.add(tp)
                    continue
                selected[tp] += 1
            address = leaders.get(tp, "")
            if address == "":
                address = leaders[tp] = self.client.leader_address(*tp)
            if address is None:
                missing_leader = True
                batch.retry_at_ms = now + self.backoff_ms
                blocked.add(tp)
                keep.append(batch)
                attention = _earliest(attention, batch.retry_at_ms)
                continue
            by_leader[address].append(batch)
            if batch.data is None and not batch.solo:
                heads[tp] = batch
            else:
                heads.pop(tp, None)
        if missing_leader:
            self.client.request_metadata_update()
        held: set[tuple[str, int]] = set()  # partitions held behind a request in flight
        for address, batches in by_leader.items():
            in_flight = self.in_flight.to(address)
            # Coalesce: while a request to this broker is in flight, send another only once
            # enough waits for a big request (or the oldest batch waited a while). Fewer,
            # larger requests cost less per record on both sides than a request per batch.
            hold_until = batches[0].created_ms + 2 * self.acc.linger_ms + 10
            throttled = self.throttled_until.get(address, 0.0)
            if throttled > now:
                keep.extend(batches)
                attention = _earliest(attention, throttled)
                continue
            if in_flight >= self.max_in_flight or (
                    in_flight and not flush and now < hold_until
                    and sum(b.reserved for b in batches) < self.coalesce_bytes):
                keep.extend(batches)
                held.update((b.topic, b.partition) for b in batches)
                if in_flight < self.max_in_flight:
                    attention = _earliest(attention, hold_until)
                continue  # a response arriving wakes the sender too
            self._send_to(address, batches)
        if self.waiting_overflow:
            keep.extend(self.waiting_overflow)
            self.waiting_overflow = []
            attention = now
        self.waiting = keep
        # a new batch of a held partition would be held too: send() need not wake us for it
        self.acc.held = held
        return attention


    def _expired(self, batch: ProducerBatch, where: str = "") -> DeliveryTimeoutError:
        return DeliveryTimeoutError(
            f"{batch.record_count or 'some'} record(s) for {batch.topic}-{batch.partition} "
            f"expired after {self.delivery_timeout_ms} ms{where}")

    def _expire_waiting(self, now: float) -> None:
        """Fail the waiting batches past delivery.timeout.ms (while nothing can be sent)."""
        if any(now - b.created_ms >= self.delivery_timeout_ms for b in self.waiting):
            keep: deque[ProducerBatch] = deque()
            for batch in self.waiting:
                if now - batch.created_ms >= self.delivery_timeout_ms:
                    self._finish(batch, -1, self._expired(batch))
                else:
                    keep.append(batch)
            self.waiting = keep

    def _send_to(self, address: str, batches: list[ProducerBatch]) -> None:
        # Several batches of one partition travel together (concatenated, in order): one
        # request and one append on the broker instead of several.
        groups: dict[str, dict[int, list[ProducerBatch]]] = defaultdict(lambda: defaultdict(list))
        size = 0
        overflow: list[ProducerBatch] = []
        closed: set[tuple[str, int]] = set()  # partitions whose next batch must wait
        for batch in batches:
            tp = (batch.topic, batch.partition)
            if self.idempotent and batch.base_sequence < 0:
                seq = self.next_sequence.get(tp, 0)
                batch.producer_id = self.producer_id
                batch.producer_epoch = epoch = self.epochs.get(tp, self.producer_epoch)
                batch.base_sequence = seq
                if batch.data is None:
                    count = len(batch.timestamps)
                else:  # renumbered after an epoch bump (KIP-360)
                    count = batch.record_count
                    batch.data = with_producer(batch.data, self.producer_id, epoch, seq)
                self.next_sequence[tp] = (seq + count) & 0x7FFFFFFF
            if self.txn is not None:
                batch.transactional = True
            data = batch.seal()
            # looked up, not created: a partition whose first batch overflows must not be
            # sent as an empty entry (the broker refuses it: CORRUPT_MESSAGE, no batch)
            group = groups.get(batch.topic, {}).get(batch.partition)
            # A retry travels alone: if the broker finds it a duplicate, the offsets of new
            # batches behind it need not follow its original ones (other producers wrote in
            # between), and the response names one base offset per partition.
            alone = batch.solo or (self.idempotent and batch.attempts > 0)
            if tp in closed or (size and size + len(data) > self.max_request_size) or (
                    alone and group):
                overflow.append(batch)  # and every later batch of its partition: keep order
                closed.add(tp)
                continue
            size += len(data)
            groups[batch.topic][batch.partition].append(batch)
            if alone:
                closed.add(tp)
        self.waiting_overflow.extend(overflow)
        topics = []
        sent: list[ProducerBatch] = []
        for topic, parts in groups.items():
            plist = []
            for partition, pbatches in parts.items():
                data = pbatches[0].data if len(pbatches) == 1 else b"".join(
                    b.data for b in pbatches)
                plist.append(ProducePartition(partition=partition, records=data))
                sent.extend(pbatches)
            topics.append(ProduceTopic(name=topic, partitions=tuple(plist)))
        for batch in sent:
            batch.attempts += 1
            if self.idempotent:
                self.batches_in_flight[(batch.topic, batch.partition)] += 1
        req = ProduceRequest(acks=self.acks, timeout_ms=self.request_timeout_ms,
                             transactional_id=self.transactional_id, topics=tuple(topics),
                             client_id=self.client_id)
        try:
            fut = self.client.request(address, req, self.request_timeout_ms)
        except Exception as e:  # noqa: BLE001 - the batches are retried or failed, never lost
            fut = Future()
            fut.set_exception(e)
        request = self.in_flight.add(address, sent, fut, _monotonic_ms())
        self.metrics.sent(sent, size)
        responses = self.responses
        on_response = self._on_response

        def done(_f: Future, _request=request) -> None:
            responses.append(_request)
            on_response()

        fut.add_done_callback(done)

    def _expire_in_flight(self, now: float) -> None:
        """Kafka's two bounds on a request in flight, whatever the network does (a reply lost
        anywhere must not hang the producer): see rillet/_inflight.py."""
        for request in self.in_flight.overdue(now):
            # the network fails a request at the same timeout; this is the backstop
            _log.warning("no answer from %s to a Produce request in %d ms: retrying its "
                         "batches", request.address, self.request_timeout_ms)
            self._request_done(request)
            error = RequestTimedOutError(
                f"no answer from broker {request.address} within {self.request_timeout_ms} ms")
            for batch in request.batches:
                if batch in self.incomplete:
                    self._retry_or_fail(batch, error, now, refresh=True)
        incomplete = self.incomplete
        for request in list(self.in_flight.expiring(now)):
            for batch in request.batches:
                if batch in incomplete and now - batch.created_ms >= self.delivery_timeout_ms:
                    self._finish(batch, -1, self._expired(batch, f" in flight to {request.address}"))
            request.oldest_ms = min(
                (b.created_ms for b in request.batches if b in incomplete), default=float("inf"))

    def _request_done(self, request: ProduceInFlight) -> None:
        if self.idempotent:
            for batch in request.batches:
                self.batches_in_flight[(batch.topic, batch.partition)] -= 1

    def _handle_response(self, request: ProduceInFlight, now: float) -> None:
        if not self.in_flight.answered(request):
            return  # abandoned at its deadline: its batches were retried or failed then
        self._request_done(request)
        self.metrics.latency.observe(now - (request.deadline_ms - self.request_timeout_ms))
        fut = request.future
        incomplete = self.incomplete  # without the batches failed in flight (delivery timeout)
        batches = [b for b in request.batches if b in incomplete]
        exc = fut.exception()
        if exc is not None:
            error = map_error(exc)
            for batch in batches:
                self._retry_or_fail(batch, error, now, refresh=True)
            return
        response = fut.result()
        throttle = getattr(response, "throttle_time_ms", 0)
        if throttle:
            self.metrics.throttle.observe(throttle)
            self.throttled_until[request.address] = now + throttle
        if response is None:  # acks=0: no response by design
            for batch in batches:
                self._finish(batch, -1, None)
            return
        results = {(t.name, p.partition): p for t in response.topics for p in t.partitions}
        next_offset: dict[tuple[str, int], int] = {}
        per_partition = Counter((b.topic, b.partition) for b in request.batches)
        for batch in request.batches:
            key = (batch.topic, batch.partition)
            result = results.get(key)
            if result is not None and result.error_code == ErrorCode.NONE:
                base = next_offset.get(key, result.base_offset)
                next_offset[key] = base + batch.record_count if base >= 0 else -1
                if batch in incomplete:  # (not failed in flight at delivery.timeout.ms)
                    if key in self.unresolved and self._past_unresolved(batch):
                        del self.unresolved[key]  # the failed batch was written after all
                    self._finish(batch, base, None, result.log_append_time_ms)
                continue
            if batch not in incomplete:
                continue
            if result is None:
                self._finish(batch, -1, RilletError(f"no result for {key[0]}-{key[1]}"))
                continue
            if result.error_code in _TOO_LARGE and batch.parts:
                # our merge of several batches was too large for the broker: send them one by
                # one again, in order, with the sequences they already have
                batch.attempts -= 1
                self.waiting.extend(batch.split())
                continue
            if result.error_code in _TOO_LARGE and per_partition[key] > 1:
                # Our concatenation of batches was too large for the broker, not the batch:
                # send each batch on its own (no attempt counted).
                batch.solo = True
                batch.attempts -= 1
                self.waiting.append(batch)
                continue
            error = error_for_code(result.error_code, result.error_message)
            if self.txn is not None and result.error_code in _FENCED:
                error = fenced(result.error_code, result.error_message)
            elif (self.txn is not None and result.error_code in _SEQUENCE_RETRY
                  and key in self.unresolved):
                pass  # a real gap: the transaction must be aborted (its end renews the epoch)
            elif self.idempotent and result.error_code in _SEQUENCE_RETRY:
                # an earlier batch is being retried (or the new leader lacks our state):
                # resend in order with the same sequence
                error = RilletError(str(error), code=result.error_code, retriable=True)
                if key in self.unresolved and batch.producer_epoch == self.epochs.get(
                        key, self.producer_epoch):
                    self.needs_bump.add(key)  # the gap is real: renumber (see __init__)
            if error.retriable:
                self._retry_or_fail(batch, error, now,
                                    refresh=result.error_code in _REFRESH_CODES)
            else:
                self._finish(batch, -1, error)

    def _retry_or_fail(self, batch: ProducerBatch, error: BaseException, now: float,
                       refresh: bool) -> None:
        retriable_error = getattr(error, "retriable", False)
        expired = now - batch.created_ms >= self.delivery_timeout_ms
        if not retriable_error or batch.attempts > self.retries or expired or self.force_close:
            if expired and retriable_error:
                error = DeliveryTimeoutError(
                    f"records for {batch.topic}-{batch.partition} expired after "
                    f"{self.delivery_timeout_ms} ms; last error: {error}")
            self._finish(batch, -1, error)
            return
        self.metrics.retried(batch)
        backoff = min(self.backoff_max_ms, self.backoff_ms * 2 ** (batch.attempts - 1))
        batch.retry_at_ms = now + backoff * self.rng.uniform(0.8, 1.2)
        if refresh:
            self.client.request_metadata_update()
        self.waiting.append(batch)

    def _finish(self, batch: ProducerBatch, base_offset: int, error: BaseException | None,
                log_append_time: int = -1) -> None:
        if error is not None and batch.base_sequence >= 0 and self.idempotent:
            tp = (batch.topic, batch.partition)
            if batch.producer_epoch == self.epochs.get(tp, self.producer_epoch):
                last = (batch.base_sequence + max(batch.record_count, 1) - 1) & 0x7FFFFFFF
                self.unresolved[tp] = last
        if error is not None:
            self.metrics.failed(batch)
        self._leave(batch)
        self.acc.release(batch.reserved)
        batch.reserved = 0
        self._complete(batch.completion, base_offset, error, log_append_time)
        if error is not None and self.txn is not None:
            self.txn.on_batch_failed(error)
        if batch.parts:
            for first, part, _ in batch.parts:
                self._leave(part)
                self._complete(part.completion, base_offset + first if base_offset >= 0 else -1,
                               error, log_append_time)
