"""Resizing a running dispatcher lane both ways (actors/runtime.py ``Dispatcher.resize``;
dynamic ``num.io.threads`` / ``num.network.threads``, issue #21). Deterministic: every wait
is on an event, a join or an actor's answer, never a sleep."""

from __future__ import annotations

import threading

import pykka
import pytest
from rillet.actors import runtime
from rillet.actors.runtime import DispatchedActor, Dispatcher

pytestmark = pytest.mark.timeout(60)
WAIT = 30  # seconds: a bound for a loaded machine, never reached when things work


class Turn:
    """A fake actor for a bare Dispatcher: its turn records the thread and, if ``gate`` is
    given, says it started and blocks until the gate opens."""

    def __init__(self, gate: threading.Event | None = None, started=None) -> None:
        self.gate, self.started = gate, started
        self.ran_on: list[str] = []
        self.done = threading.Event()

    def _turn(self) -> None:
        self.ran_on.append(threading.current_thread().name)
        if self.gate is not None:
            self.started.release()
            assert self.gate.wait(WAIT)
        self.done.set()


def _busy(d: Dispatcher, n: int, gate: threading.Event) -> list[Turn]:
    """``n`` turns holding ``n`` workers until ``gate`` opens."""
    started = threading.Semaphore(0)
    turns = [Turn(gate, started) for _ in range(n)]
    for t in turns:
        d.schedule(t)
    for _ in turns:
        assert started.acquire(timeout=WAIT)
    return turns


def test_shrinking_retires_workers_after_their_current_turn():
    d = Dispatcher("t-shrink", 4)
    gate = threading.Event()
    busy = _busy(d, 4, gate)
    assert d.live_workers == 4
    retiring = d.resize(1)
    assert len(retiring) == 3 and all(w.is_alive() for w in retiring)  # mid-turn: kept
    later = [Turn() for _ in range(3)]
    for t in later:
        d.schedule(t)
    gate.set()
    for w in retiring:
        w.join(WAIT)
        assert not w.is_alive()
    for t in busy + later:
        assert t.done.wait(WAIT)
    assert d.live_workers == 1
    survivor = ({t.ran_on[0] for t in busy} - {w.name for w in retiring}).pop()
    # a retiring worker finished its turn and took no new one: the survivor ran the rest
    assert [t.ran_on for t in later] == [[survivor]] * 3
    assert [len(t.ran_on) for t in busy] == [1, 1, 1, 1]


def test_growing_gives_queued_actors_new_workers_at_once():
    d = Dispatcher("t-grow", 1)
    gate = threading.Event()
    (blocked,) = _busy(d, 1, gate)
    waiting = Turn()
    d.schedule(waiting)  # the only worker is busy: it waits
    assert not waiting.done.is_set()
    assert d.resize(3) == []
    assert waiting.done.wait(WAIT)  # ran while the first turn still holds its worker
    assert not blocked.done.is_set()
    gate.set()
    assert blocked.done.wait(WAIT)
    assert d.live_workers == 2  # started as work came, up to 3


def test_a_lane_needs_a_thread_and_configure_resizes_a_running_lane():
    with pytest.raises(ValueError):
        Dispatcher("t-zero", 2).resize(0)
    d = runtime.dispatcher("t-configure")
    gate = threading.Event()
    _busy(d, 2, gate)
    retiring = runtime.configure("t-configure", 1)
    assert d.threads == 1 and len(retiring) == 1
    gate.set()
    retiring[0].join(WAIT)
    assert d.live_workers == 1


class Counter(DispatchedActor):
    lane = "t-resize-actors"
    throughput = 3  # short turns: many turns, many chances to change workers

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []
        self.inside = 0
        self.overlaps = 0

    def on_receive(self, message):
        self.inside += 1
        if self.inside > 1:
            self.overlaps += 1
        if message == "get":
            self.inside -= 1
            return self.seen, self.overlaps
        self.seen.append(message)
        self.inside -= 1
        return None


def test_no_message_lost_or_run_concurrently_while_the_lane_resizes():
    runtime.configure(Counter.lane, 8)
    actors = [Counter.start() for _ in range(20)]
    try:
        sizes = [2, 6, 1, 8, 3, 2, 6]
        for i in range(700):
            for a in actors:
                a.tell(i)
            if i % 100 == 50:
                runtime.configure(Counter.lane, sizes[i // 100])
        for a in actors:
            seen, overlaps = a.ask("get", timeout=WAIT)
            assert seen == list(range(700))
            assert overlaps == 0
    finally:
        for a in actors:
            a.stop()
    d = runtime.dispatcher(Counter.lane)
    assert d.threads == 6
    for w in list(d._workers[6:]):  # noqa: SLF001 - the surplus, retiring after their turns
        w.join(WAIT)
    assert d.live_workers <= 6


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()
