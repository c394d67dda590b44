"""The broker's clock: one thread that runs callbacks at deadlines and on periodic schedules.

``now_ms()`` here is the broker's wall clock in milliseconds (what actors compare deadlines
and record timestamps against); the pure cores never read a clock, they are given ``now``.
Callbacks run on the ticker thread and must be quick: they tell an actor, or finish a parked
request (encode + hand to the endpoint). An exception in a callback is logged, never fatal.
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
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Ticker:
    """``call_later(delay_s, fn)`` and ``every(interval_s, fn)``, both on one daemon thread."""

    def __init__(self, name: str = "rillet-ticker") -> None:
        self._heap: list[tuple[float, int, Timer, Callable[[], None], float]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> Timer:
        return self._schedule(time.monotonic() + delay_s, fn, 0.0)

    def every(self, interval_s: float, fn: Callable[[], None]) -> Timer:
        return self._schedule(time.monotonic() + interval_s, fn, interval_s)

    def _schedule(self, at: float, fn: Callable[[], None], period: float) -> Timer:
        timer = Timer()
        with self._cond:
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

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
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
