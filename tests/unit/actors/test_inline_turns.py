"""Inline turns (actors/runtime.py, ``tell_inline`` / ``ask_inline``): a message to an idle
actor handled on the sender's thread, with the dispatcher's guarantees kept."""

from __future__ import annotations

import threading

import pykka
import pytest
from rillet.actors import runtime
from rillet.actors.runtime import DispatchedActor, ask_inline, tell_inline

from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)


class Inline(DispatchedActor):
    """Records each message with the thread that handled it; detects overlapping turns."""

    lane = "test-inline"
    inline_ok = True

    def __init__(self, forward: pykka.ActorRef | None = None) -> None:
        super().__init__()
        self.seen: list = []
        self.threads: list[str] = []
        self.inside = 0
        self.overlaps = 0
        self.forward = forward
        self.gate = threading.Event()

    def on_receive(self, message):
        self.inside += 1
        if self.inside > 1:
            self.overlaps += 1
        try:
            if message != ("get",):
                self.threads.append(threading.current_thread().name)
            match message:
                case ("boom",):
                    raise ValueError("boom")
                case ("hold",):
                    self.gate.wait(10)
                case ("forward", inner):
                    tell_inline(self.forward, inner)
                case ("get",):
                    return list(self.seen), list(self.threads), self.overlaps
            self.seen.append(message)
            return message
        finally:
            self.inside -= 1


class Queued(Inline):
    inline_ok = False  # the default: never run on a sender's thread


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=10)


def state(ref):
    return ref.ask(("get",), timeout=10)


def test_an_idle_actor_is_handled_on_the_senders_thread():
    ref = Inline.start()
    ref.ask(("get",), timeout=10)  # started: its first turn (on_start) is over
    before = runtime.inline_turns
    tell_inline(ref, "a")
    future = ask_inline(ref, "b")
    assert future.get(timeout=0) == "b"  # answered before ask_inline returned
    seen, threads, _ = state(ref)
    assert seen == ["a", "b"]
    me = threading.current_thread().name
    assert threads[:2] == [me, me]
    assert runtime.inline_turns - before == 2


def test_an_actor_that_does_not_say_so_is_queued():
    ref = Queued.start()
    ref.ask(("get",), timeout=10)
    tell_inline(ref, "a")
    assert ask_inline(ref, "b").get(timeout=10) == "b"
    seen, threads, _ = state(ref)
    assert seen == ["a", "b"]
    assert all(name.startswith("rillet-test-inline") for name in threads)


def test_a_busy_actor_gets_the_message_in_its_mailbox_in_order():
    ref = Inline.start()
    actor = ref.proxy().gate.get(timeout=10)
    ref.tell(("hold",))  # a pool thread is in its turn now
    wait_until(lambda: ref.actor_inbox.empty(), 10)
    tell_inline(ref, "x")  # queued behind the turn in progress
    tell_inline(ref, "y")
    actor.set()
    seen, threads, overlaps = state(ref)
    assert seen == [("hold",), "x", "y"]
    assert overlaps == 0
    assert all(name.startswith("rillet-test-inline") for name in threads)


def test_inline_turns_do_not_nest():
    inner = Inline.start()
    outer = Inline.start(forward=inner)
    inner.ask(("get",), timeout=10)
    outer.ask(("get",), timeout=10)
    tell_inline(outer, ("forward", "deep"))
    wait_until(lambda: state(inner)[0] == ["deep"], 10)
    _, outer_threads, _ = state(outer)
    _, inner_threads, _ = state(inner)
    assert outer_threads[0] == threading.current_thread().name
    assert inner_threads[0].startswith("rillet-test-inline")  # queued, not run inline


def test_a_failure_is_isolated_as_in_a_pool_turn():
    ref = Inline.start()
    ref.ask(("get",), timeout=10)
    future = ask_inline(ref, ("boom",))
    with pytest.raises(ValueError, match="boom"):
        future.get(timeout=0)  # an ask's failure goes to the asker
    assert ref.is_alive()
    tell_inline(ref, ("boom",))  # a tell's failure stops the actor, not the sender
    wait_until(lambda: not ref.is_alive(), 10)
    with pytest.raises(pykka.ActorDeadError):
        tell_inline(ref, "late")
    with pytest.raises(pykka.ActorDeadError):
        ask_inline(ref, "late").get(timeout=10)


def test_senders_racing_for_one_actor_never_overlap_and_keep_their_order():
    ref = Inline.start()
    ref.ask(("get",), timeout=10)

    def send(s):
        for i in range(500):
            tell_inline(ref, (s, i))

    senders = [threading.Thread(target=send, args=(s,)) for s in range(4)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    wait_until(lambda: len(state(ref)[0]) == 2000, 20)
    seen, threads, overlaps = state(ref)
    assert overlaps == 0
    for s in range(4):
        assert [i for (who, i) in seen if who == s] == list(range(500))
    assert any(not name.startswith("rillet-test-inline") for name in threads)


# ------------------------------------------------------------------ hosted turns (claim)


class Hosted(Inline):
    host_ok = True  # a thread outside the pool may take its turns (runtime.claim)


def host(ref, message) -> bool:
    """What an endpoint I/O thread does with a message for ``ref`` (actors/router.py)."""
    inbox = runtime.claim(ref)
    if inbox is None:
        ref.tell(message)
        return False
    runtime.run_claimed(inbox, message)
    return True


def test_a_claimed_actor_runs_its_turn_on_the_claiming_thread_and_inlines_its_tells():
    inner = Inline.start()
    outer = Hosted.start(forward=inner)
    inner.ask(("get",), timeout=10)
    outer.ask(("get",), timeout=10)
    before = runtime.hosted_turns
    assert host(outer, ("forward", "deep"))
    me = threading.current_thread().name
    # a hosted turn is a pool turn: the tell_inline of its handler ran inline too
    assert state(outer)[1] == [me]
    assert state(inner) == (["deep"], [me], 0)
    assert runtime.hosted_turns - before == 1


def test_only_an_idle_actor_that_allows_it_is_claimed():
    queued = Inline.start()  # inline_ok, not host_ok
    queued.ask(("get",), timeout=10)
    assert not host(queued, "a")
    assert state(queued)[1][0].startswith("rillet-test-inline")
    hosted = Hosted.start()
    actor = hosted.proxy().gate.get(timeout=10)
    hosted.tell(("hold",))  # a pool thread is in its turn
    wait_until(lambda: hosted.actor_inbox.empty(), 10)
    assert not host(hosted, "x")  # queued behind the turn in progress, in order
    assert not host(hosted, "y")
    actor.set()
    seen, threads, overlaps = state(hosted)
    assert seen == [("hold",), "x", "y"] and overlaps == 0
    assert all(name.startswith("rillet-test-inline") for name in threads)
    assert host(hosted, "z")  # idle again


def test_messages_told_while_claimed_run_after_the_hosted_turn_in_order():
    ref = Hosted.start()
    ref.ask(("get",), timeout=10)
    inbox = runtime.claim(ref)
    assert inbox is not None
    ref.tell("told-meanwhile")  # the actor is claimed: queued, not run
    assert runtime.claim(ref) is None  # nor claimed twice
    runtime.run_claimed(inbox, "hosted")
    wait_until(lambda: state(ref)[0] == ["hosted", "told-meanwhile"], 10)
    assert state(ref)[1][1].startswith("rillet-test-inline")  # the pool took the rest


def test_a_hosted_turn_that_fails_stops_the_actor_not_the_host():
    ref = Hosted.start()
    ref.ask(("get",), timeout=10)
    assert host(ref, ("boom",))  # returns: the failure is the actor's, as in a pool turn
    wait_until(lambda: not ref.is_alive(), 10)
    assert runtime.claim(ref) is None
