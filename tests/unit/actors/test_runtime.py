"""The dispatcher runtime (actors/runtime.py): pykka's actor semantics on a shared pool."""

from __future__ import annotations

import queue
import threading
import time

import pykka
import pytest
from rillet.actors import runtime
from rillet.actors.runtime import DispatchedActor, Dispatcher, ReplyFuture

from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)


class Recorder(DispatchedActor):
    """Records messages; detects two threads inside one actor at once."""

    lane = "test-default"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []
        self.inside = 0
        self.overlaps = 0
        self.threads: set[str] = set()
        self.started_on: str | None = None

    def on_start(self) -> None:
        self.started_on = threading.current_thread().name

    def on_receive(self, message):
        self.inside += 1
        if self.inside > 1:
            self.overlaps += 1
        self.threads.add(threading.current_thread().name)
        match message:
            case ("sleep", seconds):
                time.sleep(seconds)
            case ("boom",):
                self.inside -= 1
                raise ValueError("boom")
            case ("get",):
                self.inside -= 1
                return list(self.seen)
            case _:
                self.seen.append(message)
        self.inside -= 1
        return None

    def stats(self):
        return self.overlaps, self.started_on, sorted(self.threads)


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=10)


def test_one_message_at_a_time_and_order_per_sender_kept():
    ref = Recorder.start()
    senders = []
    for s in range(4):

        def send(s=s):
            for i in range(500):
                ref.tell((s, i))

        senders.append(threading.Thread(target=send))
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    seen = ref.ask(("get",), timeout=10)
    assert len(seen) == 2000
    for s in range(4):
        assert [i for (who, i) in seen if who == s] == list(range(500))
    overlaps, started_on, threads = ref.proxy().stats().get(timeout=10)
    assert overlaps == 0
    assert started_on.startswith("rillet-test-default")
    assert all(name.startswith("rillet-test-default") for name in threads)


def test_thousands_of_idle_actors_cost_no_threads():
    runtime.configure("test-many", 2)

    class Idle(DispatchedActor):
        lane = "test-many"

        def on_receive(self, message):
            return message * 2

    before = threading.active_count()
    refs = [Idle.start() for _ in range(2000)]
    assert [r.ask(i, timeout=10) for i, r in enumerate(refs[:50])] == [i * 2 for i in range(50)]
    assert threading.active_count() <= before + 2  # the lane's two workers at most
    assert runtime.dispatcher("test-many").threads == 2


def test_a_slow_actor_does_not_stall_the_others():
    runtime.configure("test-slow", 2)

    class Slow(Recorder):
        lane = "test-slow"

    slow, quick = Slow.start(), Slow.start()
    slow.tell(("sleep", 2.0))
    t0 = time.monotonic()
    for i in range(20):
        assert quick.ask(("get",), timeout=5) == list(range(i))
        quick.tell(i)
    assert time.monotonic() - t0 < 1.5  # answered while the slow one still sleeps


def test_a_busy_actor_yields_its_thread_after_a_turn():
    """Fairness: one thread, a flooded actor, and another actor still gets turns."""
    runtime.configure("test-fair", 1)

    class Busy(Recorder):
        lane = "test-fair"
        throughput = 8

    busy, other = Busy.start(), Busy.start()
    for i in range(5000):
        busy.tell(i)
    other.tell("hello")
    answer = other.ask(("get",), timeout=10)
    assert answer == ["hello"]
    assert len(busy.ask(("get",), timeout=10)) == 5000


def test_a_failing_actor_is_isolated():
    failed = threading.Event()

    class Fragile(Recorder):
        def on_failure(self, *exc):
            failed.set()

    fragile, healthy = Fragile.start(), Recorder.start()
    with pytest.raises(ValueError, match="boom"):
        fragile.ask(("boom",), timeout=5)  # an ask returns the exception, the actor lives
    assert fragile.is_alive()
    fragile.tell(("boom",))  # a tell that fails stops the actor after on_failure
    wait_until(lambda: not fragile.is_alive(), what="the failed actor to stop")
    assert failed.is_set()
    with pytest.raises(pykka.ActorDeadError):
        fragile.tell("late")
    healthy.tell("fine")
    assert healthy.ask(("get",), timeout=5) == ["fine"]


def test_a_failure_is_logged_even_when_on_start_raises():
    """pykka logs a failure to the standard logging module, where its NullHandler drops it:
    a partition replica whose on_start raised stopped without a line in the broker's log."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="ERROR", format="{message}")

    class BadStart(Recorder):
        def on_start(self):
            raise OSError("the directory is gone")

    class Silent(Recorder):  # no on_failure of its own
        pass

    try:
        bad = BadStart.start()
        wait_until(lambda: not bad.is_alive(), what="the actor whose start failed to stop")
        silent = Silent.start()
        silent.tell(("boom",))
        wait_until(lambda: not silent.is_alive(), what="the failed actor to stop")
        wait_until(lambda: len(lines) >= 2, what="both failures in the log")
    finally:
        logger.remove(sink)
    assert any("BadStart" in line and "the directory is gone" in line for line in lines), lines
    assert any("Silent" in line and "boom" in line for line in lines), lines


def test_stop_runs_on_stop_and_refuses_what_comes_after():
    stopped = threading.Event()

    class Stoppable(Recorder):
        def on_stop(self):
            stopped.set()

    ref = Stoppable.start()
    ref.tell("before")
    assert ref.ask(("get",), timeout=5) == ["before"]
    ref.stop(timeout=5)
    assert stopped.is_set() and not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.ask(("get",), timeout=5)


def test_registry_stop_all_stops_dispatched_actors():
    refs = [Recorder.start() for _ in range(10)]
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    assert not any(r.is_alive() for r in refs)


def test_a_dispatcher_needs_a_thread():
    with pytest.raises(ValueError):
        Dispatcher("none", 0)


def test_reply_future_answers_every_waiter_and_keeps_pykkas_rules() -> None:
    f = ReplyFuture()
    with pytest.raises(pykka.Timeout):
        f.get(timeout=0.01)
    got: list = []
    waiters = [threading.Thread(target=lambda: got.append(f.get(timeout=10))) for _ in range(3)]
    for w in waiters:
        w.start()
    f.set(7)
    for w in waiters:
        w.join(10)
    assert got == [7, 7, 7] and f.get() == 7
    with pytest.raises(queue.Full):  # answered once
        f.set(8)
    failed = ReplyFuture()
    try:
        raise ValueError("boom")
    except ValueError:
        failed.set_exception()
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=1)
    source = ReplyFuture()
    mapped = source.map(lambda v: v * 2)  # a get hook on a new future of the same class
    source.set(21)
    assert mapped.get(timeout=1) == 42


def test_the_controller_and_heartbeats_are_served_while_the_request_lane_is_held():
    """Raft and broker heartbeats run on the "controller" lane: with every thread of the
    request lane held by client sessions' turns, the quorum's timers are still handled
    (on a shared lane they queued behind the sessions, and a loaded broker's quorum
    flapped)."""
    from rillet.actors.broker_lifecycle import BrokerLifecycle
    from rillet.actors.controller import Controller
    from rillet.actors.session import ClientSession

    assert Controller.lane == BrokerLifecycle.lane == "controller"
    assert ClientSession.lane == "default"
    runtime.configure("test-requests", 2)
    release = threading.Event()
    holding: list[int] = []

    class Session(DispatchedActor):
        lane = "test-requests"

        def on_receive(self, message):
            holding.append(1)
            release.wait(10)

    class Quorum(Recorder):
        lane = "test-controller"

    sessions = [Session.start() for _ in range(3)]
    try:
        for s in sessions:
            s.tell("work")
        wait_until(lambda: len(holding) == 2, 5, "both request-lane threads held")
        quorum = Quorum.start()
        quorum.tell("tick")
        assert quorum.ask(("get",), timeout=5) == ["tick"]
        assert len(holding) == 2  # the third session still waits for a thread
    finally:
        release.set()
