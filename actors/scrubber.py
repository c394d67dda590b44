"""Scrubber: one per broker, re-checking the batches stored by every hosted partition at a
bounded rate (docs/storage.md, "Corruption and self-healing"). Not in Kafka.

Driven by ``ScrubTick``s, it keeps a byte budget that grows at
``log.scrub.bytes.per.second`` (capped at one second's worth) and spends it by sending
``Scrub(max_bytes)`` to one partition actor at a time (never more than one in flight, so at
most one partition is busy scrubbing and a step is a few milliseconds of blake3). The
partition checks that much more of its current pass (``PartitionLog.scrub``) and answers
with a ``ScrubReport``; damage found is handled by the partition itself
(actors/partition_damage.py).

Order: partitions that still hold bytes opened unchecked (after a restart) first, round
robin; then partitions whose pass is due again (a new pass every ``log.scrub.interval.ms``
from the start of the previous one). A partition not heard of yet counts as unchecked.
Not thread-safe outside the actor: only its own thread touches the state.

Ticks (issue #12): given the ticker's ``schedule``, the scrubber arms one timer
(actors/wakeup.py) for when it next has work: the answer of the step in flight is a message
(the timer only covers its timeout); otherwise the moment the budget allows a step while a
partition is due (at most every ``TICK_S``), and every ``RESYNC_MS`` a look at the hosted set,
since nothing tells the scrubber of a partition created or deleted. An idle broker's scrubber
wakes once a second instead of ten times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pykka
from loguru import logger

from rillet.frozen import frozen

from .partition_messages import Scrub, ScrubReport
from .runtime import DispatchedActor
from .ticker import now_ms
from .wakeup import Schedule, WokenWhenDue

Key = tuple[str, int]
TICK_S = 0.1
MAX_STEP = 4 << 20  # bytes per Scrub message
MIN_STEP = 64 << 10  # do not bother a partition for less
IN_FLIGHT_TIMEOUT_MS = 30_000
# the hosted set is re-read in full when its size changes, else every this many ticks (a
# partition replaced by another of the same count is seen within a second): copying and
# comparing 3,000 keys ten times a second cost ~0.2% of a core per idle broker (issue #12)
RESYNC_TICKS = 10
# ticks come only when something is due (a timer armed for it): the hosted set is looked at
# at least this often all the same (new partitions to scrub; nothing else tells the scrubber)
RESYNC_MS = 1_000
# steps that checked no bytes (empty partitions) followed at once, per tick (see _done)
CHAIN_PER_TICK = 64


@frozen
class ScrubTick:
    now_ms: int


@frozen
class _Done:
    key: Key
    report: ScrubReport


@dataclass(slots=True)
class _PartitionScrub:
    unverified: int | None = None  # bytes opened unchecked; None: not heard of yet
    pass_started_ms: int = 0
    pass_done: bool = False


class Scrubber(WokenWhenDue, DispatchedActor):
    """``replicas()`` gives the hosted partition actors by (topic, partition)."""

    tick_message = ScrubTick

    def __init__(
        self,
        broker_id: int,
        replicas: Callable[[], Mapping[Key, pykka.ActorRef]],
        bytes_per_second: int,
        interval_ms: int,
        schedule: Schedule | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__()
        self.replicas = replicas
        self.rate = bytes_per_second
        self.interval_ms = interval_ms
        self.budget = 0.0
        self.last_ms: int | None = None
        self.in_flight: tuple[Key, int] | None = None
        self.states: dict[Key, _PartitionScrub] = {}
        self.bytes_checked = 0
        self.passes_done = 0
        self._next = 0  # round-robin position
        # ticks come 10 times a second: with thousands of partitions, sorting and scanning
        # them all each time cost a few percent of a core while idle (issue #12)
        self._keys: list[Key] = []  # sorted self.states, rebuilt when the set changes
        self._idle_until: int | None = None  # nothing due before this (every pass done)
        self._ticks = 0
        self._chained = 0  # steps sent since the last tick without waiting for it
        self._resynced_ms = 0  # when the hosted set was last read in full
        self.clock = clock
        self._wake = self._wakeup(schedule, clock, int(TICK_S * 1000))
        self._log = logger.bind(broker=broker_id, actor="scrubber")

    def on_start(self) -> None:
        super().on_start()
        if self._wake is not None:
            self._wake.arm(self.clock(), self.clock())  # the first tick starts the budget

    def _dispatch(self, message: object) -> None:
        try:
            match message:
                case ScrubTick(now_ms=now):
                    self._tick(now)
                case _Done(key=key, report=report):
                    self._done(key, report)
        except Exception:  # noqa: BLE001 - the scrubber must outlive any one partition
            self._log.exception("scrubber failed on {}", type(message).__name__)

    def _next_due(self, now: int) -> int | None:
        """When a tick next has something to do (actors/wakeup.py)."""
        if self.in_flight is not None:
            return self.in_flight[1] + IN_FLIGHT_TIMEOUT_MS  # else its answer is a message
        if self.last_ms is None or self.rate <= 0:
            ready = now
        else:  # when the budget allows a step (a tick returns at once before that)
            missing = min(MIN_STEP, self.rate) - self.budget
            ready = self.last_ms + max(0, -(-int(missing * 1000) // self.rate))
        due = self._resynced_ms + RESYNC_MS
        if self.states:
            due = min(due, now if self._idle_until is None else self._idle_until)
        return max(ready, due)

    def _tick(self, now: int) -> None:
        if self.last_ms is not None:
            self.budget = min(self.rate, self.budget + self.rate * (now - self.last_ms) / 1000)
        self.last_ms = now
        if self.in_flight is not None:
            if now - self.in_flight[1] < IN_FLIGHT_TIMEOUT_MS:
                return
            self.in_flight = None  # the partition went away without answering
        if self.budget < min(MIN_STEP, self.rate):
            return
        refs = self.replicas()  # the broker's live table: read, never iterated in Python
        self._ticks += 1
        resync = self._ticks % RESYNC_TICKS == 0 or (
            self._wake is not None and now - self._resynced_ms >= RESYNC_MS
        )
        if resync:
            self._resynced_ms = now
        if len(refs) != len(self.states) or (resync and refs.keys() != self.states.keys()):
            refs = dict(refs)  # one snapshot (the broker changes the table meanwhile)
            self._resynced_ms = now
            for key in list(self.states):
                if key not in refs:
                    del self.states[key]
            for key in refs:
                self.states.setdefault(key, _PartitionScrub(pass_started_ms=now))
            self._keys = sorted(self.states)
            self._idle_until = None
        self._chained = 0
        self._send_next(now, refs)

    def _send_next(self, now: int, refs: Mapping[Key, pykka.ActorRef]) -> None:
        if self._idle_until is not None and now < self._idle_until:
            return
        key, restart = self._choose(now)
        if key is None:
            if self.states:
                self._idle_until = self.interval_ms + min(
                    s.pass_started_ms for s in self.states.values()
                )
            return
        if restart:
            state = self.states[key]
            state.pass_started_ms, state.pass_done = now, False
        me = self.actor_ref

        def reply(report: ScrubReport, key=key) -> None:
            try:
                me.tell(_Done(key, report))
            except pykka.ActorDeadError:
                pass

        ref = refs.get(key)
        try:
            if ref is None:
                raise pykka.ActorDeadError(f"{key} is no longer hosted")
            ref.tell(Scrub(int(min(self.budget, MAX_STEP)), restart, reply))
            self.in_flight = (key, now)
        except pykka.ActorDeadError:
            self.states.pop(key, None)
            self._keys = sorted(self.states)

    def _choose(self, now: int) -> tuple[Key | None, bool]:
        """(partition, start a new pass first?) or (None, False) when nothing is due."""
        keys = self._keys
        if not keys:
            return None, False
        n, start = len(keys), self._next % len(keys)
        self._next = (start + 1) % n
        states = self.states
        # round robin from ``start`` without copying the list: keys[start - n + i] walks
        # start..n-1 (negative indexes), then 0..start-1
        for i in range(n):
            key = keys[start - n + i]
            s = states[key]
            if (s.unverified is None or s.unverified > 0) and not s.pass_done:
                return key, False
        for i in range(n):
            key = keys[start - n + i]
            s = states[key]
            if not s.pass_done:
                return key, False
            if now - s.pass_started_ms >= self.interval_ms:
                return key, True
        return None, False

    def _done(self, key: Key, report: ScrubReport) -> None:
        self._idle_until = None
        if self.in_flight is not None and self.in_flight[0] == key:
            self.in_flight = None
        self.budget -= report.bytes_checked
        self.bytes_checked += report.bytes_checked
        state = self.states.get(key)
        if state is None:
            return
        state.unverified = report.unverified_bytes
        if report.pass_done and not state.pass_done:
            state.pass_done = True
            self.passes_done += 1
            if report.bytes_checked:  # not for each of thousands of empty partitions
                self._log.debug("scrub pass of {}-{} done", *key)
        # a step that checked nothing (an empty partition) spent none of the byte budget:
        # the next partition goes at once instead of at the next tick, so a first pass over
        # thousands of new, empty partitions ends within seconds of their creation rather
        # than waking a partition every tick for minutes (issue #12: 3,000 partitions took
        # 300 s of idle ticks); bounded per tick, so the lane is not held
        if (
            report.bytes_checked == 0
            and self.in_flight is None
            and self._chained < CHAIN_PER_TICK
            and self.last_ms is not None
            and self.budget >= min(MIN_STEP, self.rate)
        ):
            self._chained += 1
            self._send_next(self.last_ms, self.replicas())
