"""Python's cyclic garbage collector as the broker sees it: every collection's pause.

A collection stops every thread of the broker (it runs holding the GIL) for as long as it
walks the objects of its generations; a full (generation 2) collection walks every tracked
object, and a broker hosting thousands of partitions holds millions. A pause longer than the
Raft fetch timeout costs the quorum its leader, one longer than a session timeout fences the
broker. ``GcWatch`` times each collection (``gc.callbacks``) and reports, in the broker's
counters (BrokerCounters, ``rillet broker counters``): ``gc_collections_gen0/1/2``,
``gc_pause_ms_total`` and ``gc_pause_ms_max``; a pause of ``warn_ms`` or more is also logged.

**Freezing the long-lived objects**: at 10,000 partitions each broker tracked millions of
objects and its full collections stopped it for 0.5-2.7 s every 5-15 s under a spread produce
(scale_bench, load 15-20): the quorum changed leader, ISRs shrank. Nearly all of those
objects are the hosted partition actors, their logs and indexes, which live as long as the
broker hosts the partition. So when a full collection of the objects not yet frozen takes
``freeze_ms`` or more, ``report`` (every 5 s, at most every ``freeze_every_s``) calls
``gc.freeze()``: what survived that collection moves to the collector's permanent
generation, which later collections do not walk (the collection just ran: hardly any garbage
is frozen with it). A big creation's logs open over the minute after the image, so it
freezes a few times in that minute, then its collections stay short.

**Freezing a creation's objects before they are walked**: that rule still let the first full
collection after a creation walk everything the creation made, so one pause of 0.1-0.7 s
per broker (3,000 partitions) landed in the first produce after it. So when the publisher
hosts new partitions (``partitions_added``), ``report`` also freezes at each of its calls
for ``grow_window_s`` (60 s), without waiting for a slow collection: the replicas' objects
move to the permanent generation as their logs open, and no collection walks them. Garbage
that only a reference cycle holds at one of those instants is frozen with them (it waits
for the next unfreeze): a few reference cycles, against the walk of millions of objects.
An unfreeze (partitions dropped) ends that window, so a dropped partition's cycles always
meet a full collection before the next freeze.

**Freezing the start**: what a broker's start makes (its modules, the actors and their
state) lives as long as the process; ``started`` freezes it once the broker serves, so the
first full collections do not walk it either.

A partition dropped later is reclaimed by reference counting; what only a reference cycle
keeps alive needs the collector, so when the publisher drops hosted partitions
(``partitions_dropped``), once the hosted set has stayed unchanged for ``settle_s``, the
watch calls ``gc.unfreeze()``: the next full collection walks, and reclaims, everything
again, and being slow it is followed by a freeze. No collection is ever run on purpose.

The callback runs inside the collection, in whatever thread triggered it, possibly while that
thread holds a lock of ours: it takes no lock and allocates nothing but the numbers (plain
attributes: collections never overlap, the GIL serialises them). The log line is written
later, by ``report``, from the ticker.
"""

from __future__ import annotations

import gc
import time

from loguru import logger


class GcWatch:
    def __init__(self, warn_ms: float = 500.0, schedule=None, settle_s: float = 2.0,
                 freeze_ms: float = 250.0, freeze_every_s: float = 20.0,
                 grow_window_s: float = 60.0) -> None:
        self.warn_ms = warn_ms
        self.freeze_ms = freeze_ms
        self.freeze_every_s = freeze_every_s
        self._slow_full = False  # a full collection took freeze_ms or more since report
        self._last_freeze = float("-inf")
        self.grow_window_s = grow_window_s
        self._grow_until = float("-inf")  # report freezes until then (partitions were added)
        self._schedule = schedule  # (delay_s, fn): the broker's ticker; None: never freeze
        self.settle_s = settle_s
        self._changes = 0  # drops seen (an unfreeze acts only on the latest)
        self.refreezes = 0
        self.unfreezes = 0
        self.collections = [0, 0, 0]
        self.pause_ms_total = 0.0
        self.pause_ms_max = 0.0
        self._started = 0.0
        self._slow: list[tuple[int, float]] = []  # (generation, ms) not yet logged
        self._installed = False

    def install(self) -> GcWatch:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False
            if self.refreezes:
                gc.unfreeze()  # a stopped broker's objects are collectable again

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        ms = (time.perf_counter() - self._started) * 1000
        generation = info.get("generation", 2)
        self.collections[generation] += 1
        self.pause_ms_total += ms
        if ms > self.pause_ms_max:
            self.pause_ms_max = ms
        if ms >= self.warn_ms and len(self._slow) < 100:
            self._slow.append((generation, ms))
        if generation == 2 and ms >= self.freeze_ms:
            self._slow_full = True

    def started(self) -> None:
        """The broker has started: freeze what the start made (its modules, actors and their
        state, which live as long as the process), so that no full collection walks them.
        A broker's first full collections walked ~100,000 such objects, 25-45 ms in which
        nothing else ran (the p99.9 of an acks=all produce, docs/runtime.md)."""
        if self._schedule is not None and self._installed:
            gc.freeze()
            self.refreezes += 1

    def partitions_dropped(self) -> None:
        """The metadata publisher dropped hosted partitions: unfreeze once the hosted set has
        been unchanged for ``settle_s``, so the next full collection reclaims their cycles
        (any thread)."""
        if self._schedule is None:
            return
        self._changes += 1
        seen = self._changes
        self._schedule(self.settle_s, lambda: self._unfreeze(seen))

    def partitions_added(self) -> None:
        """The metadata publisher hosts new partitions: ``report`` freezes at each call for
        the next ``grow_window_s``, while their logs open (any thread)."""
        if self._schedule is not None:
            self._grow_until = time.monotonic() + self.grow_window_s

    def _unfreeze(self, seen: int) -> None:
        if seen != self._changes or not self._installed:
            return  # a later drop reschedules; or the broker stopped
        gc.unfreeze()
        self.unfreezes += 1
        # a creation's freezes stop here: the dropped partitions' cycles must meet a full
        # collection before anything is frozen again (the slow-collection rule does that)
        self._grow_until = float("-inf")
        logger.info("hosted partitions dropped: the next full collection walks every object")

    def values(self) -> dict[str, int]:
        """The counters (any thread)."""
        gen0, gen1, gen2 = self.collections
        return {
            "gc_collections_gen0": gen0,
            "gc_collections_gen1": gen1,
            "gc_collections_gen2": gen2,
            "gc_pause_ms_total": round(self.pause_ms_total),
            "gc_pause_ms_max": round(self.pause_ms_max),
            "gc_refreezes": self.refreezes,
            "gc_unfreezes": self.unfreezes,
        }

    def report(self) -> None:
        """Freeze after a slow full collection or while new partitions open, and log the slow
        collections seen since the last call (the ticker calls it every 5 s)."""
        now = time.monotonic()
        if self._schedule is not None and self._installed and (
                now < self._grow_until
                or (self._slow_full and now - self._last_freeze >= self.freeze_every_s)):
            gc.freeze()  # what survived that collection is walked by no later one
            self._last_freeze = now
            self.refreezes += 1  # (not gc.get_freeze_count(): it walks the frozen list)
            if self._slow_full:
                logger.info("a full collection took {:.0f} ms or more: the live objects frozen "
                            "out of the collector's walks", self.freeze_ms)
        self._slow_full = False
        slow, self._slow = self._slow, []
        for generation, ms in slow:
            logger.warning("a garbage collection (generation {}) stopped the broker for {:.0f} ms",
                           generation, ms)
