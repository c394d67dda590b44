"""Wakeup: the one ticker timer of a broker-wide actor, armed for its next deadline (issue #12).

The broker's coordinators (group, transaction, share-partition, share-state) and the scrubber
used to be told a tick by the ticker ten or five times a second whether they had anything
to do: on an idle broker those ticks were most of its thread wake-ups. Now each computes,
after every message it handles, when it next has timed work (``_next_due``) and arms one
timer for it, as ``PartitionReplica._arm`` does: a new deadline earlier than the armed one
re-arms it, a later one changes nothing, nothing is armed when nothing is due. The timer
tells the actor its usual tick message, so the tick handlers (and the tests that send tick
messages themselves) are unchanged.

A wake-up never comes sooner than ``period_ms`` after the previous tick: that is the period
of the old periodic tick, so work that a tick could not finish (an operation queued behind
an append in flight, a load retried while the replica does not exist yet) is retried at the
old pace instead of in a loop, and no deadline is served later than it used to be.
Thread: the owning actor's (``arm``, ``ticked``, ``cancel``); the timer's callback runs on
the ticker thread and only tells the actor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import pykka

Schedule = Callable[[float, Callable[[], None]], object]


class Wakeup:
    """``schedule(delay_s, fn)``: the ticker's ``call_later``; ``tick(now_ms)``: the actor's
    tick message; ``period_ms``: the shortest time between two ticks."""

    __slots__ = ("_schedule", "_clock", "_tick", "period_ms", "at", "_timer", "_last", "_ref")

    def __init__(self, schedule: Schedule, clock: Callable[[], int],
                 tick: Callable[[int], object], period_ms: int) -> None:
        self._schedule = schedule
        self._clock = clock
        self._tick = tick
        self.period_ms = period_ms
        self.at: int | None = None  # the armed deadline (ms), None: nothing armed
        self._timer: object | None = None
        self._last: int | None = None  # ``now`` of the last tick handled
        self._ref: pykka.ActorRef | None = None

    def bind(self, ref: pykka.ActorRef) -> Wakeup:
        self._ref = ref
        return self

    def ticked(self, now: int) -> None:
        """A tick is being handled: whatever was armed is spent (the caller arms again)."""
        self.cancel()
        self._last = now

    def arm(self, due: int | None, now: int) -> None:
        """Wake the actor at ``due`` (ms, its clock) unless something as early is armed."""
        if due is None:
            return
        if self._last is not None:
            due = max(due, self._last + self.period_ms)
        if self.at is not None and self.at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()  # type: ignore[attr-defined]
        self.at = due
        self._timer = self._schedule(max(0, due - now) / 1000, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()  # type: ignore[attr-defined]
        self._timer = self.at = None

    def _fire(self) -> None:
        ref = self._ref
        if ref is None:
            return
        try:
            ref.tell(self._tick(self._clock()))
        except pykka.ActorDeadError:
            pass


class WokenWhenDue:
    """Mixin for a ``DispatchedActor`` that arms one ``Wakeup`` for its next deadline: it
    declares ``tick_message`` (its tick, built from ``now_ms``), sets ``self._wake =
    self._wakeup(schedule, clock, period_ms)`` (None without a timer service, as in unit
    tests that send ticks themselves) and ``self.clock``, and has ``_dispatch(message)`` and
    ``_next_due(now)``. The mixin binds the wake-up at start, cancels it at stop, marks it
    spent when a tick arrives, and after every message arms it for the next deadline. Put
    it before ``DispatchedActor`` in the bases."""

    tick_message: ClassVar[type]
    _wake: Wakeup | None

    def _wakeup(self, schedule: Schedule | None, clock: Callable[[], int],
                period_ms: int) -> Wakeup | None:
        return None if schedule is None else Wakeup(schedule, clock, self.tick_message,
                                                    period_ms)

    def on_start(self) -> None:
        if self._wake is not None:
            self._wake.bind(self.actor_ref)  # type: ignore[attr-defined]

    def on_stop(self) -> None:
        if self._wake is not None:
            self._wake.cancel()

    def on_receive(self, message: object) -> None:
        self._note_tick(message)
        self._dispatch(message)  # type: ignore[attr-defined]
        if self._wake is not None:
            now = self.clock()  # type: ignore[attr-defined]
            self._wake.arm(self._next_due(now), now)  # type: ignore[attr-defined]

    def _note_tick(self, message: object) -> bool:
        """True if ``message`` is this actor's tick (whatever was armed is then spent)."""
        if not isinstance(message, self.tick_message):
            return False
        if self._wake is not None:
            self._wake.ticked(message.now_ms)  # type: ignore[attr-defined]
        return True


def earliest(*times: int | None) -> int | None:
    """The earliest of ``times`` that are not None (None if all are)."""
    present = [t for t in times if t is not None]
    return min(present) if present else None


def shard_due(shard, now: int, stuck_ms: int) -> int | None:
    """A coordinator shard's own deadlines (the share-state and transaction shards): an append
    unanswered for ``stuck_ms``; until it is loaded, a load step lost, or ``now`` for a load to
    (re)try."""
    due = shard.busy_since + stuck_ms + 1 if shard.busy else None
    if shard.core is None:
        due = earliest(due, shard.loading_since + stuck_ms + 1 if shard.loading else now)
    return due
