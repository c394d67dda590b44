"""Light futures for produced records: one shared completion per batch, a tiny object per record.

``concurrent.futures.Future`` costs a lock and a condition per record, more than the rest of
``send()``. Here a :class:`ProducerBatch` is completed once (on the producer's I/O thread) and
each :class:`RecordFuture` holds only its batch, its index in it and its timestamp.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from typing import Any

from rillet.errors import RilletTimeoutError
from rillet.records import RecordMetadata

DeliveryCallback = Callable[[BaseException | None, RecordMetadata | None], Any]


class BatchCompletion:
    """The outcome of one batch: its base offset or an error, set exactly once.

    Owned by the producer's I/O thread (which calls :meth:`complete`); any thread may wait.
    """

    __slots__ = ("topic", "partition", "base_offset", "error", "done", "_event", "_lock",
                 "_callbacks", "log_append_time")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.base_offset = -1
        self.error: BaseException | None = None
        self.done = False
        # the leader's stamp on a LogAppendTime topic (ms), the records' timestamp; -1: none
        self.log_append_time = -1
        self._event: threading.Event | None = None  # made by the first waiter (rarely needed)
        self._lock = threading.Lock()
        # (record index, timestamp, callback, is_future_callback)
        self._callbacks: list[tuple[int, int, Callable, bool]] | None = None

    def add_callback(self, index: int, timestamp: int, fn: Callable, future_style: bool) -> None:
        """Register fn; if already done it runs at once on the calling thread."""
        with self._lock:
            if not self.done:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append((index, timestamp, fn, future_style))
                return
        self._run(index, timestamp, fn, future_style)

    def complete(self, base_offset: int, error: BaseException | None,
                 log_append_time: int = -1) -> None:
        with self._lock:
            if self.done:
                return
            self.base_offset = base_offset
            self.log_append_time = log_append_time
            self.error = error
            self.done = True
            cbs, self._callbacks = self._callbacks, None
            event = self._event
        if event is not None:
            event.set()
        if cbs:
            for index, ts, fn, future_style in cbs:
                self._run(index, ts, fn, future_style)

    def _run(self, index: int, timestamp: int, fn: Callable, future_style: bool) -> None:
        try:
            if future_style:
                fn(new_future((self, index, timestamp)))
            elif self.error is not None:
                fn(self.error, None)
            else:
                fn(None, self.metadata(index, timestamp))
        except Exception:  # noqa: BLE001 - a user callback must not kill the I/O thread
            import traceback

            traceback.print_exc()

    def metadata(self, index: int, timestamp: int) -> RecordMetadata:
        off = self.base_offset
        if self.log_append_time >= 0:  # Kafka's: the append time replaces the create time
            timestamp = self.log_append_time
        return RecordMetadata(self.topic, self.partition, off + index if off >= 0 else -1,
                              timestamp)

    def wait(self, timeout: float | None) -> bool:
        if self.done:
            return True
        with self._lock:
            if self.done:
                return True
            event = self._event
            if event is None:
                event = self._event = threading.Event()
        return event.wait(timeout)


class RecordFuture(tuple):
    """The future result of one ``send()``: ``get(timeout)`` -> :class:`RecordMetadata`.

    Compatible with the parts of ``concurrent.futures.Future`` people use: ``result``,
    ``exception``, ``done``, ``add_done_callback``; plus kafka-python's ``get``,
    ``succeeded``, ``failed``. A tuple (batch completion, index in batch, timestamp) so that
    creating one per record costs no Python-level ``__new__`` or ``__init__``: it is built as
    ``RecordFuture((batch, index, timestamp))``, tuple's own constructor called directly by
    the type (~120 ns less per record than through a Python ``__new__`` or a partial).
    """

    __slots__ = ()

    _batch = property(operator.itemgetter(0))
    _index = property(operator.itemgetter(1))
    _timestamp = property(operator.itemgetter(2))

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """Wait up to ``timeout`` seconds (None: forever); raise the delivery error if any."""
        batch = self._batch
        if not batch.done and not batch.wait(timeout):
            raise RilletTimeoutError(
                f"record to {batch.topic}-{batch.partition} not acknowledged within {timeout} s"
            )
        if batch.error is not None:
            raise batch.error
        return batch.metadata(self._index, self._timestamp)

    result = get

    def exception(self, timeout: float | None = None) -> BaseException | None:
        batch = self._batch
        if not batch.done and not batch.wait(timeout):
            raise RilletTimeoutError(f"record not acknowledged within {timeout} s")
        return batch.error

    def done(self) -> bool:
        return self._batch.done

    def succeeded(self) -> bool:
        return self._batch.done and self._batch.error is None

    def failed(self) -> bool:
        return self._batch.done and self._batch.error is not None

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return not self._batch.done

    def add_done_callback(self, fn: Callable[[RecordFuture], Any]) -> None:
        """``fn(future)`` once the record is acknowledged or failed (on the I/O thread)."""
        self._batch.add_callback(self._index, self._timestamp, fn, True)

    def add_callback(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> RecordFuture:
        """kafka-python: ``fn(record_metadata, *args, **kwargs)`` on success."""
        def done(future: RecordFuture) -> None:
            if future.exception() is None:
                fn(future.get(), *args, **kwargs)
        self.add_done_callback(done)
        return self

    def add_errback(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> RecordFuture:
        """kafka-python: ``fn(exception, *args, **kwargs)`` on failure."""
        def done(future: RecordFuture) -> None:
            error = future.exception()
            if error is not None:
                fn(error, *args, **kwargs)
        self.add_done_callback(done)
        return self

    def __repr__(self) -> str:
        b = self._batch
        state = "pending" if not b.done else ("failed" if b.error else "done")
        return f"<RecordFuture {b.topic}-{b.partition} {state}>"


#: ``new_future((batch, index, timestamp))``: a RecordFuture (the class itself, see there).
new_future = RecordFuture
