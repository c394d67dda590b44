"""Actors on a shared dispatcher: a mailbox is not a thread.

``DispatchedActor`` is a drop-in ``pykka.Actor`` (``start``, ``tell``, ``ask``, ``proxy``,
``stop``, ``on_start`` / ``on_receive`` / ``on_stop`` / ``on_failure``, the
``ActorRegistry``) whose mailbox is drained by a small pool of threads, a ``Dispatcher``, as
in Akka or Orleans, instead of a thread per actor. An idle actor costs its mailbox and
nothing else: no thread, no wake-ups.

Guarantees (tests/unit/actors/test_runtime.py):

* one message at a time per actor, in the order each sender told them (a mailbox is FIFO and
  an actor is on at most one pool thread at a time: it is queued for a *turn* only when its
  mailbox goes from empty to not empty);
* fairness: a turn handles at most ``throughput`` messages, then the actor goes to the back of
  the queue if it has more, so a busy actor cannot starve the others;
* a slow handler holds one pool thread, never the pool: blocking work (fsync, big reads)
  belongs on its own dispatcher (``lane = "io"``), so it cannot starve the request path;
* a failure is isolated as in pykka: an exception from a ``tell`` stops that actor (after
  ``on_failure``), one from an ``ask`` is returned to the caller, a ``BaseException`` stops
  every actor (pykka's rule).

Handlers must not block waiting for another actor's reply (pykka deadlocks then too; here it
would also hold a pool thread).

Lanes: ``"default"`` for sessions and coordinators (Kafka's ``num.network.threads``, 3
threads), ``"io"`` for partition replicas, whose handlers write and fsync the log (Kafka's
``num.io.threads``, 8 threads), and ``"controller"`` (2 threads) for the Controller (Raft)
and the BrokerLifecycle (heartbeats): their timers must not queue behind client sessions'
turns when the request lane is overloaded (as KRaft runs its controller on its own threads),
or a loaded broker misses elections and heartbeats and the quorum flaps.
``configure(lane, threads)`` sets a lane's size, at start (the broker does it from its
config) or while it runs (a dynamic broker config, actors/dynamic_configs.py):
``Dispatcher.resize``.

Inline turns (``tell_inline`` / ``ask_inline``): a message to an idle actor that allows it
(``inline_ok``) is handled at once on the sender's thread, the actor claimed for that turn as a
pool thread claims it; a request over hundreds of partitions is then appended in one pass, as
Kafka's handler threads do, instead of a thread hand-off per partition
(tests/unit/actors/test_inline_turns.py).

Hosted turns (``claim`` / ``run_claimed``): a thread that is not a pool thread takes an
idle actor that allows it (``host_ok``) for a turn as a pool thread would, and runs it
itself. The broker's endpoint I/O threads take their client sessions' turns this way (see
actors/router.py): a request is then decoded, appended and answered on the thread that read
it, instead of a hand-off to the ``default`` lane and another back to the I/O thread. A hosted
turn is a pool turn in every respect: its own ``tell_inline`` calls run inline.

Resizing a running lane: growing lets up to ``threads`` workers run (new ones start as work
comes, as at start); shrinking retires the surplus workers, each after the turn it is in (a
retiring worker finishes its actor's turn, then exits instead of taking the next actor). No
actor is lost or run twice at once: an actor is in the ready queue at most once (its mailbox's
``_scheduled`` flag), whichever worker takes it.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from typing import Any, ClassVar

import pykka
from loguru import logger
from pykka import ActorDeadError, ActorRegistry, Timeout, messages
from pykka._envelope import Envelope

DEFAULT_LANES = {"default": 3, "io": 8, "controller": 2}


class Dispatcher:
    """A FIFO queue of actors that have messages, and ``threads`` daemon threads that give
    each one a turn. Thread-safe."""

    def __init__(self, name: str, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"a dispatcher needs at least one thread, got {threads}")
        self.name = name
        self.threads = threads
        self._ready: deque[DispatchedActor] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._workers: list[threading.Thread] = []
        self._spawned = 0  # workers ever started (names them)
        self.turns = 0  # turns run so far (tests and benchmarks read it)

    def resize(self, threads: int) -> list[threading.Thread]:
        """Run with ``threads`` workers from now on; the workers that will retire (each after
        its current turn: join them to wait). Growing starts workers as work arrives."""
        if threads < 1:
            raise ValueError(f"a dispatcher needs at least one thread, got {threads}")
        with self._cond:
            self.threads = threads
            surplus = len(self._workers) - threads
            retiring = self._workers[threads:] if surplus > 0 else []
            for _ in range(min(threads - len(self._workers), len(self._ready))):
                self._spawn()  # queued actors get the new workers at once
            self._cond.notify_all()  # idle surplus workers wake up to retire
        return retiring

    @property
    def live_workers(self) -> int:
        """Worker threads not yet retired (started lazily: at most ``threads``, once the
        retiring ones have finished their turns)."""
        with self._cond:
            return len(self._workers)

    def schedule(self, actor: DispatchedActor) -> None:
        with self._cond:
            self._ready.append(actor)
            if len(self._workers) < self.threads:
                self._spawn()
            self._cond.notify()

    def _spawn(self) -> None:
        worker = threading.Thread(
            target=self._work, name=f"rillet-{self.name}-{self._spawned}", daemon=True
        )
        self._spawned += 1
        self._workers.append(worker)
        worker.start()

    def _retire(self, me: threading.Thread) -> bool:
        """Under the lock: True if this worker is surplus (it leaves the pool and exits).
        The newest workers retire first, as ``resize`` reports them."""
        workers = self._workers
        if len(workers) <= self.threads or me not in workers[self.threads:]:
            return False
        workers.remove(me)
        return True

    def _work(self) -> None:
        ready, cond = self._ready, self._cond
        me = threading.current_thread()
        while True:
            with cond:
                while True:
                    if self._retire(me):
                        return
                    if ready:
                        break
                    cond.wait()
                actor = ready.popleft()
                self.turns += 1
            try:
                actor._turn()  # noqa: SLF001 - the dispatcher is the actor's loop
            except BaseException:  # noqa: BLE001 - a worker must never die
                logger.exception("dispatcher {}: a turn of {} failed", self.name, actor)


_lanes: dict[str, Dispatcher] = {}
_sizes: dict[str, int] = dict(DEFAULT_LANES)
_lanes_lock = threading.Lock()


def configure(lane: str, threads: int) -> list[threading.Thread]:
    """Set the size of ``lane``: before its first actor starts, or while it runs (both ways,
    ``Dispatcher.resize``; the workers that retire are returned)."""
    if threads < 1:
        raise ValueError(f"{lane}: at least one thread, got {threads}")
    with _lanes_lock:
        _sizes[lane] = threads
        existing = _lanes.get(lane)
    return existing.resize(threads) if existing is not None else []


def lane_threads() -> dict[str, int]:
    """Each started lane's live worker threads (BrokerStats)."""
    with _lanes_lock:
        lanes = dict(_lanes)
    return {name: d.live_workers for name, d in sorted(lanes.items())}


def turn_counts() -> dict[str, int]:
    """Turns run so far: ``turns_<lane>`` by each lane's pool threads, ``turns_inline`` on
    senders' threads, ``turns_hosted`` by claiming threads (BrokerCounters)."""
    with _lanes_lock:
        lanes = dict(_lanes)
    counts = {f"turns_{name}": d.turns for name, d in sorted(lanes.items())}
    counts["turns_inline"] = inline_turns
    counts["turns_hosted"] = hosted_turns
    return counts


def dispatcher(lane: str) -> Dispatcher:
    """The process-wide dispatcher of ``lane`` (created on first use)."""
    d = _lanes.get(lane)
    if d is None:
        with _lanes_lock:
            d = _lanes.get(lane)
            if d is None:
                d = _lanes[lane] = Dispatcher(lane, _sizes.get(lane, 2))
    return d


class _Mailbox:
    """The actor's inbox (pykka's ``ActorInbox`` protocol: put/get/empty). ``put`` queues the
    actor for a turn when the mailbox goes from empty to not empty."""

    __slots__ = ("_actor", "_messages", "_lock", "_scheduled", "_started")

    def __init__(self, actor: DispatchedActor) -> None:
        self._actor = actor
        self._messages: deque = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._started = False

    def put(self, envelope: Any, block: bool = True, timeout: float | None = None) -> None:  # noqa: ARG002
        actor = self._actor
        if actor.actor_stopped.is_set():
            _refuse(actor, envelope)
            return
        with self._lock:
            self._messages.append(envelope)
            if self._scheduled or not self._started:
                return
            self._scheduled = True
        actor._dispatcher.schedule(actor)  # noqa: SLF001

    def get(self, block: bool = True, timeout: float | None = None) -> Any:  # noqa: ARG002
        with self._lock:
            return self._messages.popleft()

    def empty(self) -> bool:
        return not self._messages

    def qsize(self) -> int:
        return len(self._messages)

    def _start(self) -> None:
        with self._lock:
            self._started = True
            self._scheduled = True
        self._actor._dispatcher.schedule(self._actor)  # noqa: SLF001

    def _claim(self) -> bool:
        """Take the actor for a turn on the calling thread: True only if it is started, idle
        (not queued, not in a turn) and its mailbox is empty, so the turn keeps its order."""
        with self._lock:
            if self._scheduled or not self._started or self._messages:
                return False
            if self._actor.actor_stopped.is_set():
                return False
            self._scheduled = True
            return True

    def _pop(self) -> Any | None:
        with self._lock:
            return self._messages.popleft() if self._messages else None

    def _end_turn(self) -> bool:
        """True if the actor has more messages (it must be queued again)."""
        with self._lock:
            if self._messages and not self._actor.actor_stopped.is_set():
                return True
            self._scheduled = False
            return False


def _refuse(actor: DispatchedActor, envelope: Any) -> None:
    reply = getattr(envelope, "reply_to", None)
    if reply is None:
        return
    if isinstance(envelope.message, messages._ActorStop):  # noqa: SLF001
        reply.set(None)
        return
    error = ActorDeadError(f"{actor.actor_ref} stopped before handling the message")
    reply.set_exception(exc_info=(ActorDeadError, error, None))


class ReplyFuture(pykka.Future):
    """The future of an ``ask``: pykka's ThreadingFuture with one plain lock instead of a
    Condition (an RLock, a waiter list and a lock per waiter); every ask pays for one, and a
    follower or a produce over thousands of partitions makes thousands per round.

    ``_ready`` is held from creation until the answer (or a get hook) is set; a waiter
    acquires it and hands it on at once, so any number of threads may wait."""

    __slots__ = ("_ready", "_result")

    def __init__(self) -> None:
        super().__init__()
        self._ready = threading.Lock()
        self._ready.acquire()
        self._result: tuple[Any, Any] | None = None  # (value, exc_info)

    def get(self, *, timeout: float | None = None) -> Any:
        result = self._result
        if result is None and self._get_hook is None:
            if timeout is None:
                self._ready.acquire()
            elif not self._ready.acquire(timeout=max(timeout, 0.0)):
                raise Timeout(f"{timeout} seconds")
            self._ready.release()
            result = self._result
        if result is None:  # a get hook (map/filter/join): pykka's rule
            return super().get(timeout=timeout)
        value, exc_info = result
        if exc_info is None:
            return value
        exc_type, exc_value, exc_traceback = exc_info
        if exc_value is None:
            exc_value = exc_type()
        if exc_value.__traceback__ is not exc_traceback:
            raise exc_value.with_traceback(exc_traceback)
        raise exc_value

    def _settle(self, result: tuple[Any, Any] | None) -> None:
        if self._result is not None or self._get_hook is not None:
            raise queue.Full
        if result is not None:
            self._result = result
        self._ready.release()

    def set(self, value: Any | None = None) -> None:
        self._settle((value, None))

    def set_exception(self, exc_info: Any = None) -> None:
        self._settle((None, exc_info if exc_info is not None else sys.exc_info()))

    def set_get_hook(self, func: Any) -> None:
        if self._result is not None:
            raise queue.Full
        super().set_get_hook(func)
        self._ready.release()


class DispatchedActor(pykka.Actor):
    """A pykka actor run by a shared ``Dispatcher`` (see the module docstring).

    ``lane``: which dispatcher ("default" or "io"). ``throughput``: messages per turn."""

    lane: ClassVar[str] = "default"
    throughput: ClassVar[int] = 64
    # tell_inline / ask_inline may run a turn on the sender's thread (see there)
    inline_ok: bool = False
    # claim / run_claimed may run a turn on a thread outside the pool (see there)
    host_ok: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._dispatcher = dispatcher(self.lane)
        self._set_up = False
        super().__init__(*args, **kwargs)

    def _create_actor_inbox(self) -> _Mailbox:  # type: ignore[override]
        return _Mailbox(self)

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return ReplyFuture()

    def _start_actor_loop(self) -> None:
        self.actor_inbox._start()  # the first turn runs on_start

    def _handle_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """pykka's: unregister and stop the actor, after logging the failure. pykka logs it to
        the standard ``logging`` module, where its own NullHandler drops it: an ``on_start``
        that raised (an actor with no ``on_failure``, too) stopped the actor without a word."""
        logger.opt(exception=(exception_type, exception_value, traceback)).error(
            "unhandled exception in {}: the actor stops", self)
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    # ------------------------------------------------------------------- one turn

    def _turn(self) -> None:
        inbox: _Mailbox = self.actor_inbox  # type: ignore[assignment]
        if not self._set_up:
            self._set_up = True
            self._actor_loop_setup()
        stopped = self.actor_stopped
        for _ in range(self.throughput):
            if stopped.is_set():
                break
            envelope = inbox._pop()  # noqa: SLF001
            if envelope is None:
                break
            self._handle(envelope)
        self._after_turn()

    def _inline_turn(self, envelope: Any) -> None:
        """A turn of one message on the calling thread (``tell_inline``); the mailbox was
        claimed (``_Mailbox._claim``), so no pool thread runs this actor meanwhile."""
        _local.inline = True
        try:
            self._handle(envelope)
        finally:
            _local.inline = False
        self._after_turn()

    def _hosted_turn(self, envelope: Any) -> None:
        """A turn of one message on a thread that claimed the actor (``claim``), exactly as a
        pool thread's turn: the handler's ``tell_inline`` calls may run inline."""
        self._handle(envelope)
        self._after_turn()

    def _after_turn(self) -> None:
        """After a turn (a pool thread's or an inline one): a stopped actor is torn down; one
        with messages left goes back to its lane's queue."""
        inbox: _Mailbox = self.actor_inbox  # type: ignore[assignment]
        if self.actor_stopped.is_set():
            inbox._end_turn()  # noqa: SLF001
            self._actor_loop_teardown()
            return
        if inbox._end_turn():  # noqa: SLF001
            self._dispatcher.schedule(self)

    def _handle(self, envelope: Any) -> None:
        # pykka's _actor_loop_running, for one message
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                logger.info("exception returned from {} to its caller", self)
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:  # noqa: BLE001
                    self._handle_failure(*sys.exc_info())
        except BaseException:  # noqa: BLE001 - pykka's rule: stop every actor
            self._stop()
            ActorRegistry.stop_all()

    def _actor_loop_teardown(self) -> None:
        inbox: _Mailbox = self.actor_inbox  # type: ignore[assignment]
        while (envelope := inbox._pop()) is not None:  # noqa: SLF001
            _refuse(self, envelope)


# ------------------------------------------------------------------------- inline turns

_local = threading.local()  # .inline: this thread is in an inline turn (no nesting)
inline_turns = 0  # turns run on the sender's thread so far (benchmarks read it)
hosted_turns = 0  # turns run by a claiming thread (``claim``) so far


def _take(ref: Any, allowed: str) -> _Mailbox | None:
    """``ref``'s mailbox, claimed for a turn on this thread if its actor says so (the flag
    ``allowed``: ``inline_ok`` or ``host_ok``) and is idle, and this thread is not in an
    inline turn; else None."""
    inbox = getattr(ref, "actor_inbox", None)
    if (
        isinstance(inbox, _Mailbox)
        and not in_inline_turn()
        and getattr(inbox._actor, allowed)  # noqa: SLF001
        and inbox._claim()  # noqa: SLF001
    ):
        return inbox
    return None


def _claimed(ref: Any) -> _Mailbox | None:
    """``ref``'s mailbox, claimed for an inline turn on this thread, or None."""
    global inline_turns
    inbox = _take(ref, "inline_ok")
    if inbox is not None:
        inline_turns += 1
    return inbox


def in_inline_turn() -> bool:
    """Whether this thread runs an inline turn now (``tell_inline``): a handler that finds
    its message too costly for the sender's thread (a read of an old segment) re-tells it to
    its own lane."""
    return getattr(_local, "inline", False)


def tell_inline(ref: pykka.ActorRef, message: Any) -> None:
    """``ref.tell(message)``, handled on the calling thread when the actor is idle.

    Kafka's request handler threads append to every partition of a produce request in one
    pass; here each partition is an actor, and a tell costs a hand-off to a pool thread (a
    mailbox, a wake-up, a context switch and the GIL changing hands) per partition. When the
    actor has no turn in progress or queued and an empty mailbox, the message's turn runs at
    once on the caller's thread instead, with the actor claimed for it exactly as a pool
    thread claims it: still one message at a time, in order, and a failure handled as in a
    pool turn (the actor stops; the caller carries on). Otherwise the message is queued as by
    ``tell``. An inline turn does not nest: a tell made by the inline handler is queued.
    Only actors that say so (``inline_ok``) are run inline; use it where the caller holds
    nothing the handler could need and the handler does not block (no fsync)."""
    inbox = _claimed(ref)
    if inbox is None:
        ref.tell(message)
    else:
        inbox._actor._inline_turn(Envelope(message))  # noqa: SLF001


def ask_inline(ref: pykka.ActorRef, message: Any) -> ReplyFuture:
    """``ref.ask(message, block=False)``, handled on the calling thread when the actor is
    idle (``tell_inline``): the future is then already answered."""
    inbox = _claimed(ref)
    if inbox is None:
        return ref.ask(message, block=False)
    future = ReplyFuture()
    inbox._actor._inline_turn(Envelope(message, reply_to=future))  # noqa: SLF001
    return future


# ------------------------------------------------------------------------- hosted turns


def claim(ref: pykka.ActorRef) -> _Mailbox | None:
    """Take ``ref``'s actor for a turn on the calling thread, as a pool thread takes it: its
    mailbox if the actor allows it (``host_ok``) and is idle (started, no turn in progress or
    queued, an empty mailbox), else None (``tell`` it instead). Messages told to a claimed
    actor queue behind the turn, which ``run_claimed`` must then run.

    For a thread outside the pool that reads the actor's messages off the wire and would
    otherwise hand each to the pool: the broker's endpoint I/O threads and their sessions.
    Not from inside a turn (an inline turn does not host another actor's)."""
    global hosted_turns
    inbox = _take(ref, "host_ok")
    if inbox is not None:
        hosted_turns += 1
    return inbox


def run_claimed(inbox: _Mailbox, message: Any) -> None:
    """The turn of a ``claim``: ``message`` handled on this thread, then the actor released
    (and queued for a pool turn if messages came meanwhile)."""
    inbox._actor._hosted_turn(Envelope(message))  # noqa: SLF001
