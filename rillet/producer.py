"""The producer: ``send()`` batches records per partition; a sender thread ships them.

    with Producer({"bootstrap.servers": "127.0.0.1:9092"}) as producer:
        future = producer.send("orders", b"hello", key=b"user-1")
        print(future.get(timeout=10))   # RecordMetadata(topic='orders', partition=2, offset=0, ...)

Threads: ``send``/``flush``/``close`` may be called from any thread. A sender thread
(``rillet-producer-sender``) encodes and sends batches and completes them; delivery callbacks
(``on_delivery(err, metadata)`` and futures' ``add_done_callback``) run on it, so they must be
quick. The endpoint's I/O thread owns the sockets.

Ordering and delivery: with ``enable.idempotence=true`` (the default, as in Kafka; it needs
acks=all) the producer gets a producer id from the cluster and numbers its batches per
partition; the partition leader drops a retried duplicate (answering with the original
offsets) and refuses a gap, so retries never duplicate or reorder, with up to 5 requests in
flight per partition. With idempotence off, delivery is at least once: a request that timed
out may have been appended anyway and is sent again, and a later batch already sent may land
before a retried one; set max.in.flight.requests.per.connection=1 for strict order then.

Transactions (``transactional.id``; docs/transactions.md, "Client"): records sent between
``begin_transaction()`` and ``commit_transaction()`` become visible to read_committed
consumers together, with the consumer offsets given to ``send_offsets_to_transaction()``, or
not at all (``abort_transaction()``)::

    producer = Producer(bootstrap_servers=..., transactional_id="app-1")
    producer.init_transactions()        # fences older instances with the same id
    producer.begin_transaction()
    producer.send("out", b"...")
    producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
    producer.commit_transaction()        # flushes first

Call the transactional methods from one thread (sends may come from several, but not while
a transaction ends: a record sent during commit_transaction() joins the next transaction).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from rillet._accumulator import ProducerBatch, RecordAccumulator
from rillet._future import DeliveryCallback, RecordFuture
from rillet._future import new_future as _new_future
from rillet._network import NetworkClient
from rillet._partitioner import KeyPartitioner, StickyPartitioner
from rillet._sender import Sender
from rillet._txn import IN_TRANSACTION as _IN_TRANSACTION
from rillet._txn_client import Transactions
from rillet.config import producer_config
from rillet.errors import (
    IllegalStateError,
    MessageTooLargeError,
    ProducerClosedError,
    RilletTimeoutError,
    SerializationError,
    TransactionAbortedError,
    UnknownTopicOrPartitionError,
)
from rillet.logstore.batch import RECORD_OVERHEAD as _OVERHEAD
from rillet.logstore.batch import Codec
from rillet.records import TopicPartition

_time_ns = time.time_ns
_monotonic = time.monotonic


class Producer:
    """Kafka-style producer. Config: a dict of Kafka keys and/or snake_case keywords
    (see :mod:`rillet.config`): ``Producer({"bootstrap.servers": ...}, linger_ms=5)``."""

    def __init__(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        cfg = producer_config(config, kwargs)
        self.config = cfg
        self._client = NetworkClient(cfg, name="rillet-producer")
        self._acc = RecordAccumulator(cfg.batch_size, cfg.linger_ms,
                                      Codec.from_name(cfg.compression_type))
        self._sticky = StickyPartitioner()
        self._sticky_current = self._sticky._current  # read on the hot path without a call
        self._batch_size = cfg.batch_size
        self._keyed = KeyPartitioner()
        self._ignore_keys = cfg.partitioner_ignore_keys
        from rillet._partitioner_class import load as _load_partitioner

        self._partitioner_class = _load_partitioner(cfg["partitioner.class"])
        self._key_serializer = cfg.key_serializer
        self._value_serializer = cfg.value_serializer
        self._buffer_memory = cfg.buffer_memory
        self._max_block_ms = cfg.max_block_ms
        self._max_request_size = cfg.max_request_size
        self._closed = False
        self._txn = Transactions(self._client, cfg) if cfg.transactional_id is not None else None
        self._sender = Sender(
            self._client, self._acc, acks=cfg.acks, retries=cfg.retries,
            retry_backoff_ms=cfg.retry_backoff_ms, retry_backoff_max_ms=cfg.retry_backoff_max_ms,
            delivery_timeout_ms=cfg.delivery_timeout_ms,
            request_timeout_ms=cfg.request_timeout_ms,
            max_in_flight=cfg.max_in_flight_requests_per_connection,
            max_request_size=cfg.max_request_size, on_batch_drained=self._on_batch_drained,
            client_id=cfg.client_id,
            name="rillet-producer-sender", txn=self._txn,
        )
        self._sender.start()
        self.send = self.produce = self._send = self._make_send()

    # -- the hot path ----------------------------------------------------------------------

    def send(self, topic: str, value: Any = None, key: Any = None,
             headers: Iterable[tuple[str, bytes | None]] | None = None,
             partition: int | None = None, timestamp_ms: int | None = None,
             on_delivery: DeliveryCallback | None = None) -> RecordFuture:
        """Queue one record; returns a future of its :class:`RecordMetadata`.

        ``value``/``key``: bytes or None (or anything the configured serializers take).
        ``headers``: (str, bytes | None) pairs. ``timestamp_ms``: ms since the epoch (default
        now). ``on_delivery(err, metadata)`` runs on the sender thread once the record is
        acknowledged (err None) or failed (metadata None). Blocks at most max.block.ms (topic
        metadata, or buffer.memory exhausted).
        """
        # Replaced per instance by the closure of _make_send (see there); kept for the docs.
        return self._send(topic, value, key, headers, partition, timestamp_ms, on_delivery)

    def _make_send(self):
        """Build ``send`` as a closure: its per-record state lives in cell variables, which
        are read faster than instance attributes (about 15 lookups per record)."""
        state = self
        client = self._client
        partition_counts = client.partition_counts
        acc = self._acc
        lock = acc.lock
        acquire, release = lock.acquire, lock.release
        open_batches = acc._open
        open_get = open_batches.get
        counts_get = partition_counts.get
        ready_append = acc._ready.append
        codec = acc.codec
        sticky = self._sticky
        sticky_current = sticky._current
        sticky_get = sticky_current.get
        keyed = self._keyed
        ignore_keys = self._ignore_keys
        chooser = self._partitioner_class
        key_serializer = self._key_serializer
        value_serializer = self._value_serializer
        buffer_memory = self._buffer_memory
        max_block_ms = self._max_block_ms
        max_request_size = self._max_request_size
        batch_size = self._batch_size
        txn = self._txn
        check_txn = None if txn is None else txn.check_send
        # the state read inline (a call per record costs ~10% of send()); the call, which
        # raises the right error under the lock, only when it is not IN_TRANSACTION
        txn_tm = None if txn is None else txn.tm
        # partitions in the transaction (the set is updated in place): a batch opened for
        # another one wakes the sender, which adds the partition while the batch lingers
        txn_added = None if txn is None else txn.tm.added

        clock = (0, 0, 0)  # (start ns, end ns, ms) of the millisecond last seen

        def send(topic: str, value: Any = None, key: Any = None,
                 headers: Iterable[tuple[str, bytes | None]] | None = None,
                 partition: int | None = None, timestamp_ms: int | None = None,
                 on_delivery: DeliveryCallback | None = None) -> RecordFuture:
            nonlocal clock
            if state._closed:
                raise ProducerClosedError()
            if txn_tm is not None and txn_tm.state is not _IN_TRANSACTION:
                check_txn()
            if key_serializer is not None and key is not None:
                key = key_serializer(key)
            if value_serializer is not None and value is not None:
                value = value_serializer(value)
            if key is not None and type(key) is not bytes:
                key = _to_bytes(key, "key")
            if timestamp_ms is None:
                # the clock in ns, but the ms int computed (and allocated) once per millisecond
                now = _time_ns()
                c = clock
                if c[0] <= now < c[1]:
                    timestamp_ms = c[2]
                else:
                    timestamp_ms = now // 1_000_000
                    start = timestamp_ms * 1_000_000
                    clock = (start, start + 1_000_000, timestamp_ms)  # one atomic store
            n = counts_get(topic)
            if n is None:
                n = client.wait_for_topic(topic, max_block_ms)
            is_sticky = False
            if partition is None and chooser is not None:
                partition = chooser(topic, key, n)
            elif partition is None:
                if key is None or ignore_keys:
                    partition = sticky_get(topic)
                    if partition is None or partition >= n:
                        partition = sticky.partition(topic, n)
                    is_sticky = True
                else:
                    partition = keyed(key, n)
            elif not 0 <= partition < n:
                raise UnknownTopicOrPartitionError(
                    f"partition {partition} of topic {topic!r} does not exist ({n} partitions)")
            if acc.buffered_bytes >= buffer_memory:
                state._wait_for_space()
            if value is not None:
                if type(value) is not bytes:
                    value = _to_bytes(value, "value")
                size = len(value)
                if size > max_request_size:
                    raise MessageTooLargeError(f"record of {size} bytes exceeds "
                                               f"max.request.size={max_request_size}")
                size += _OVERHEAD
            else:
                size = _OVERHEAD
            # RecordAccumulator.append + ProducerBatch.append, inlined: the per-record hot path.
            tp = (topic, partition)
            acquire()  # cheaper than `with` here
            try:
                batch = open_get(tp)
                fresh = batch is None
                if fresh:
                    batch = open_batches[tp] = ProducerBatch(topic, partition, codec,
                                                          _monotonic() * 1000)
                timestamps = batch.timestamps
                index = len(timestamps)
                timestamps.append(timestamp_ms)
                batch.keys.append(key)
                batch.values.append(value)
                size += batch.size
                if key is not None:
                    size += len(key)
                    batch.keyed = True
                if headers:
                    try:
                        size += batch.add_headers(index, headers)
                    except (TypeError, ValueError) as exc:
                        del timestamps[-1], batch.keys[-1], batch.values[-1]
                        if fresh:
                            del open_batches[tp]
                        raise SerializationError(str(exc)) from None
                batch.size = size
                full = size >= batch_size
                if full:
                    del open_batches[tp]
                    ready_append(batch)
                    batch.reserved = size
                    acc.buffered_bytes += size
                    acc.ready_bytes += size
            finally:
                release()
            # full: worth a request (see Sender.run); fresh: an idle sender must arm linger.ms
            # (unless it holds the partition behind a request in flight: the answer wakes it)
            if (full and acc.ready_bytes >= acc.wake_bytes) or (fresh and (
                    (acc.sender_idle and tp not in acc.held)
                    or (txn_added is not None and tp not in txn_added))):
                acc.wakeup.set()
            if full:
                if is_sticky:
                    sticky.on_batch_complete(topic, partition, n)
            if on_delivery is not None:
                batch.completion.add_callback(index, timestamp_ms, on_delivery, False)
            return _new_future((batch.completion, index, timestamp_ms))

        send.__doc__ = Producer.send.__doc__
        return send

    produce = send  # confluent-kafka's name

    def _wait_for_space(self) -> None:
        if not self._acc.wait_for_space(self._buffer_memory, self._max_block_ms / 1000):
            raise RilletTimeoutError(
                f"buffer.memory ({self._buffer_memory} bytes) still full after "
                f"max.block.ms={self._max_block_ms}")

    def _on_batch_drained(self, batch: ProducerBatch) -> None:
        # A batch sent because linger.ms expired also completes the sticky partition.
        n = self._client.view.partition_counts.get(batch.topic)
        if n:
            self._sticky.on_batch_complete(batch.topic, batch.partition, n)

    # -- control ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued now and wait until it is acknowledged or failed.

        Raises RilletTimeoutError if ``timeout`` seconds pass first. Failed records are reported
        through their futures and callbacks, not raised here.
        """
        deadline = None if timeout is None else _monotonic() + timeout
        sender = self._sender
        sender.flush_requests += 1
        try:
            while True:
                with self._acc.lock:
                    waiting = [b.completion for b in self._acc._ready]
                    waiting += [b.completion for b in self._acc._open.values()]
                waiting += sender.pending_completions()
                pending = [c for c in waiting if not c.done]
                if not pending:
                    return
                sender.wake()
                for completion in pending:
                    left = None if deadline is None else max(0.0, deadline - _monotonic())
                    if not completion.wait(left):
                        raise RilletTimeoutError(f"flush did not complete within {timeout} s")
                if not sender.is_alive():
                    return
        finally:
            sender.flush_requests -= 1

    # -- transactions (docs/transactions.md, "Client") ------------------------------------

    def _transactions(self) -> Transactions:
        if self._txn is None:
            raise IllegalStateError("transactions need transactional.id in the producer config")
        if self._closed:
            raise ProducerClosedError()
        return self._txn

    def _timeout_s(self, timeout: float | None) -> float:
        return self._max_block_ms / 1000 if timeout is None else float(timeout)

    def init_transactions(self, timeout: float | None = None) -> None:
        """Register transactional.id with its transaction coordinator: get the producer id and
        a new epoch, which fences every older producer with the same id (their transaction
        still open is aborted). Call once, before the first begin_transaction(). ``timeout``
        in seconds (default max.block.ms); after a RilletTimeoutError call it again."""
        txn = self._transactions()
        producer_id, producer_epoch = txn.init(self._timeout_s(timeout))
        self._sender.set_producer(producer_id, producer_epoch)

    def begin_transaction(self) -> None:
        """Start a transaction: every send() until commit/abort belongs to it. Local only (the
        coordinator hears of it with the first partition)."""
        self._transactions().begin()

    def send_offsets_to_transaction(self, offsets, group_metadata, timeout: float | None = None
                                    ) -> None:
        """Commit consumer offsets as part of the transaction: ``offsets`` maps TopicPartition
        to the next offset to consume (an int, or an object with ``.offset``);
        ``group_metadata`` is ``consumer.group_metadata()`` (KIP-447: the offsets are refused
        if that consumer's group generation moved on) or a group id. They become visible to
        the group when the transaction commits, and are discarded if it aborts."""
        self._transactions().send_offsets(offsets, group_metadata, self._timeout_s(timeout))

    def commit_transaction(self, timeout: float | None = None) -> None:
        """Flush, then commit: the transaction's records and offsets become visible together.
        If a record of the transaction failed this raises TransactionAbortableError (call
        abort_transaction()); a RilletTimeoutError may be retried by calling again."""
        txn = self._transactions()
        deadline = _monotonic() + self._timeout_s(timeout)
        txn.start_commit()
        self.flush(max(0.0, deadline - _monotonic()))
        txn.raise_if_failed()
        self._end(txn, True, deadline)

    def abort_transaction(self, timeout: float | None = None) -> None:
        """Abort: records not sent yet are dropped (their futures fail with
        TransactionAbortedError), the rest is marked aborted and never reaches read_committed
        consumers, and offsets sent with the transaction are discarded. Allowed after an
        abortable error (that is how to recover from one)."""
        txn = self._transactions()
        deadline = _monotonic() + self._timeout_s(timeout)
        txn.start_abort()
        sender = self._sender
        sender.drop_unsent(TransactionAbortedError("abort_transaction() dropped the record "
                                                   "before it was sent"),
                           max(0.0, deadline - _monotonic()))
        # what is in flight may still be written: wait for its answers, then end
        while True:
            pending = [c for c in sender.pending_completions() if not c.done]
            if not pending and not txn.add_in_flight:
                break
            if _monotonic() >= deadline:
                raise RilletTimeoutError("abort_transaction(): requests still in flight")
            for completion in pending:
                completion.wait(max(0.0, min(0.1, deadline - _monotonic())))
            if not pending:
                time.sleep(0.005)  # the AddPartitionsToTxn answer is handled by the sender
        self._end(txn, False, deadline)

    def _end(self, txn: Transactions, committed: bool, deadline: float) -> None:
        new = txn.end(committed, deadline)
        if new is not None:
            self._sender.set_producer(*new)

    def metrics(self) -> dict[str, dict[str, float]]:
        """kafka-python's ``{group: {name: value}}``: record send/retry/error totals and
        rates, request latency avg/max (ms), batch size avg (bytes); docs/metrics.md."""
        return self._sender.metrics.snapshot()

    def partitions_for(self, topic: str) -> list[TopicPartition]:
        n = self._client.wait_for_topic(topic, self._max_block_ms)
        return [TopicPartition(topic, p) for p in range(n)]

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout`` seconds, None = until done) and stop. Records still
        unsent after the timeout fail with ProducerClosedError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        sender = self._sender
        try:
            if timeout is None or timeout > 0:
                try:
                    self.flush(timeout)
                except RilletTimeoutError:
                    pass
        finally:
            sender.closing = True
            if timeout is not None and not (timeout > 0 and not sender.incomplete):
                sender.force_close = True
            sender.wake()
            sender.join(None if timeout is None else max(timeout, 1.0))
            self._client.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: never leave the sender thread behind
        try:
            if not self._closed:
                self.close(timeout=0)
        except Exception:  # noqa: BLE001
            pass


def _to_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise SerializationError(
        f"record {what} must be bytes or None, not {type(data).__name__} "
        f"(set {what}.serializer to convert)")


