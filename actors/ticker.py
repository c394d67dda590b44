"""The broker's clock: one thread that runs callbacks at deadlines and on periodic schedules.

``now_ms()`` here is the broker's wall clock in milliseconds (what actors compare deadlines
and record timestamps against); the pure cores never read a clock, they are given ``now``.
Callbacks run on the ticker thread and must be quick: they tell an actor, or finish a parked
request (encode + hand to the endpoint). An exception in a callback is logged, never fatal.

Cancelled timers cost no wake-up: every parked fetch arms a ``fetch.max.wait.ms`` timer and
almost all of them are cancelled when records arrive first (thousands a second under a
consumer at low latency). The thread drops cancelled timers from the top of its heap before
it sleeps, so it wakes only for a live deadline, and the heap is rebuilt without them once
they are more than half of it, so a long ``max_wait_ms`` cannot make it grow without bound.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from loguru import logger


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (record timestamps, retention)."""
    return time.time_ns() // 1_000_000


class Timer:
    """A scheduled callback; ``cancel()`` (any thread, idempotent) stops it from running."""

    __slots__ = ("cancelled", "_ticker")

    def __init__(self, ticker: Ticker | None = None) -> None:
        self.cancelled = False
        self._ticker = ticker

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker._cancelled += 1  # a hint for compaction: racy increments only delay it


COMPACT_MIN = 1024  # cancelled timers kept in the heap before a rebuild is considered


class Ticker:
    """``call_later(delay_s, fn)`` and ``every(interval_s, fn)``, both on one daemon thread."""

    def __init__(self, name: str = "rillet-ticker") -> None:
        self._heap: list[tuple[float, int, Timer, Callable[[], None], float]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._cancelled = 0  # cancelled timers still in the heap (approximately)
        self.wakeups = 0  # times the thread woke from its wait (tests read it)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> Timer:
        return self._schedule(time.monotonic() + delay_s, fn, 0.0)

    def every(self, interval_s: float, fn: Callable[[], None]) -> Timer:
        return self._schedule(time.monotonic() + interval_s, fn, interval_s)

    def _schedule(self, at: float, fn: Callable[[], None], period: float) -> Timer:
        timer = Timer(self)
        with self._cond:
            if self._cancelled > COMPACT_MIN and self._cancelled * 2 > len(self._heap):
                self._compact()
            heapq.heappush(self._heap, (at, next(self._seq), timer, fn, period))
            if self._heap[0][2] is timer:
                self._cond.notify()
        return timer

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(5)

    def _compact(self) -> None:
        """Caller holds the lock: rebuild the heap without cancelled timers."""
        self._heap = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(self._heap)
        self._cancelled = 0

    def pending(self) -> int:
        """Entries in the heap, cancelled ones not yet dropped included (tests)."""
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    heap = self._heap
                    while heap and heap[0][2].cancelled:  # never sleep for a dead deadline
                        heapq.heappop(heap)
                        self._cancelled = max(0, self._cancelled - 1)
                    if heap and heap[0][0] <= time.monotonic():
                        break
                    timeout = heap[0][0] - time.monotonic() if heap else None
                    self._cond.wait(timeout)
                    self.wakeups += 1
                if self._stopped:
                    return
                at, _, timer, fn, period = heapq.heappop(self._heap)
                if period and not timer.cancelled:
                    nxt = max(at + period, time.monotonic())
                    heapq.heappush(self._heap, (nxt, next(self._seq), timer, fn, period))
            if timer.cancelled:
                continue
            try:
                fn()
            except Exception:  # noqa: BLE001 - a bad callback must not stop the clock
                logger.exception("ticker callback failed")
