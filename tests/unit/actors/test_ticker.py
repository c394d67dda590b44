"""The ticker: cancelled timers cost no wake-up and do not pile up (issue #12).

Every parked fetch arms a ``fetch.max.wait.ms`` timer that is almost always cancelled when
records arrive first. Counted by wake-ups and heap entries, never by elapsed time.
"""

from __future__ import annotations

import threading
import time

import pytest
from rillet.actors.ticker import COMPACT_MIN, Ticker

pytestmark = pytest.mark.timeout(30)


def wait_until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def test_cancelled_timers_do_not_wake_the_thread():
    ticker = Ticker()
    try:
        fired = threading.Event()
        # the thread is asleep with nothing to do; 200 timers due in 20..220 ms, each
        # cancelled right away, as parked fetches answered by an append are
        for i in range(200):
            ticker.call_later(0.02 + i * 0.001, lambda: None).cancel()
        ticker.call_later(0.3, fired.set)
        assert fired.wait(10)
        # Without the fix: one wake per cancelled deadline (>= 200). With it: the first
        # timer's notify and the live deadline, plus slack for spurious wake-ups.
        assert ticker.wakeups <= 5, ticker.wakeups
    finally:
        ticker.stop()


def test_live_timers_still_run_in_order_among_cancelled_ones():
    ticker = Ticker()
    try:
        ran: list[int] = []
        done = threading.Event()
        for i in range(50):
            timer = ticker.call_later(0.001 * i, lambda i=i: ran.append(i))
            if i % 2:
                timer.cancel()
        ticker.call_later(0.1, done.set)
        assert done.wait(10)
        assert ran == list(range(0, 50, 2))
    finally:
        ticker.stop()


def test_cancelled_timers_are_compacted_away():
    ticker = Ticker()
    try:
        # a consumer whose long polls (max wait 300 s) are all answered early
        for _ in range(10 * COMPACT_MIN):
            ticker.call_later(300, lambda: None).cancel()
        assert ticker.pending() <= 2 * COMPACT_MIN + 2
        live = ticker.call_later(300, lambda: None)
        assert not live.cancelled
    finally:
        ticker.stop()


def test_periodic_timer_keeps_running_and_stops_when_cancelled():
    ticker = Ticker()
    try:
        count = [0]
        timer = ticker.every(0.005, lambda: count.__setitem__(0, count[0] + 1))
        wait_until(lambda: count[0] >= 3)
        timer.cancel()
        wait_until(lambda: ticker.pending() == 0)
        seen = count[0]
        marker = threading.Event()
        ticker.call_later(0.02, marker.set)
        assert marker.wait(10)
        assert count[0] == seen
    finally:
        ticker.stop()
