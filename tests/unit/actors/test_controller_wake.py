"""The controller is woken when its timed work is due, not every 20 ms (issue #12: an idle
broker's 50 controller ticks a second cost ~0.7% of a core).

A single-voter Controller actor, started for real on its lane, with a ``wake_at`` that
records what it is asked for (and a real Ticker where the wake-ups must drive it)."""

from __future__ import annotations

import threading
import time

from rillet.actors import controller as C
from rillet.actors.ticker import Ticker


def _until(check, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


class _Recorder:
    """``wake_at``: records each requested delay; its handles record cancellation."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.cancelled = 0
        self.lock = threading.Lock()

    def __call__(self, delay_s: float):
        with self.lock:
            self.delays.append(delay_s)
        recorder = self

        class Handle:
            def cancel(self) -> None:
                with recorder.lock:
                    recorder.cancelled += 1

        return Handle()


def test_an_idle_leader_asks_to_be_woken_at_its_raft_deadline_not_every_20_ms(tmp_path):
    wakes = _Recorder()
    ref = C.Controller.start(
        broker_id=1, metadata_dir=tmp_path, publish=lambda old, new: None, broker_configs={},
        endpoint=None, wake_at=wakes,
    )
    try:
        _until(lambda: ref.ask(C.GetStatus(), timeout=5).controller_id == 1)
        ref.tell(C.Tick())
        assert ref.ask(C.GetStatus(), timeout=5).role == "leader"
        # the first wakes come soon (start-up work is due at once); one that has fired (the
        # recorder fires none: its time passed) is re-armed by the next Tick

        def tick_rearmed() -> bool:
            ref.tell(C.Tick())
            ref.ask(C.GetStatus(), timeout=5)
            return wakes.delays[-1] > C.TICK_MIN_MS / 1000

        _until(tick_rearmed)
        armed = len(wakes.delays)
        # alone and idle: the next due work is a Raft deadline (heartbeat 200 ms with the
        # default 1 s election timeout), capped by the backstop; never the old 20 ms period
        assert C.TICK_MIN_MS / 1000 <= wakes.delays[-1] <= C.TICK_MAX_MS / 1000
        assert wakes.delays[-1] > 0.05, wakes.delays
        # ticks while that wake is still to come arm nothing more
        for _ in range(20):
            ref.tell(C.Tick())
        ref.ask(C.GetStatus(), timeout=5)
        assert len(wakes.delays) == armed
    finally:
        ref.stop()


def test_wake_ups_alone_drive_the_controller_few_times_a_second(tmp_path):
    """With a real Ticker and no periodic tick, the controller's own wake-ups keep it going
    (it stays the leader and keeps taking ticks), at most a handful per second."""
    ticker = Ticker(name="test-ticker")
    ticks: list[float] = []
    ref_box: list = []

    def wake_at(delay_s: float):
        def fire() -> None:
            ticks.append(time.monotonic())
            ref_box[0].tell(C.Tick())

        return ticker.call_later(delay_s, fire)

    ref = C.Controller.start(
        broker_id=1, metadata_dir=tmp_path, publish=lambda old, new: None, broker_configs={},
        endpoint=None, wake_at=wake_at,
    )
    ref_box.append(ref)
    try:
        ref.tell(C.Tick())
        _until(lambda: ref.ask(C.GetStatus(), timeout=5).controller_id == 1)
        start = len(ticks)
        _until(lambda: len(ticks) >= start + 2, timeout_s=5)  # wakes keep coming
        began = time.monotonic()
        first = len(ticks)
        _until(lambda: time.monotonic() - began >= 0.6, timeout_s=5)
        per_second = (len(ticks) - first) / (time.monotonic() - began)
        assert 1 <= per_second <= 15, per_second  # the fixed tick was 50 a second
        assert ref.ask(C.GetStatus(), timeout=5).role == "leader"
    finally:
        ref.stop()
        ticker.stop()
