"""Python's cyclic garbage collector as the broker sees it: every collection's pause.

A collection stops every thread of the broker (it runs holding the GIL) for as long as it
walks the objects of its generations; a full (generation 2) collection walks every tracked
object, and a broker hosting thousands of partitions holds millions. A pause longer than the
Raft fetch timeout costs the quorum its leader, one longer than a session timeout fences the
broker. ``GcWatch`` times each collection (``gc.callbacks``) and reports, in the broker's
counters (BrokerCounters, ``rillet broker counters``): ``gc_collections_gen0/1/2``,
``gc_pause_ms_total`` and ``gc_pause_ms_max``; a pause of ``warn_ms`` or more is also logged.

**Freezing the hosted partitions** (``hosted_changed``): at 10,000 partitions each broker
tracked millions of objects and its full collections stopped it for 0.5-2.7 s every 5-15 s
under a spread produce (scale_bench, load 15-20): the quorum changed leader, ISRs shrank.
Nearly all of those objects are the hosted partition actors, their logs and indexes, which
live as long as the broker hosts the partition. So after the hosted set changes (a topic
created or deleted, partitions moved, the first image after a start), once it has stayed
unchanged for ``settle_s``, the watch runs one full collection (reclaiming what the change
dropped) and then ``gc.freeze()``: what is alive then moves to the collector's permanent
generation, which later collections do not walk. A partition dropped later is reclaimed by
reference counting; one of its objects kept alive only by a cycle stays until the next
refreeze, which every further change of the hosted set brings (``gc.unfreeze()`` first).
One pause per change of the hosted set, instead of one every few seconds. A partition's log,
indexes and fetch state are built by its actor after the image, over the seconds or minutes
a big creation takes to open every log; so, too, when a full collection of the objects not
yet frozen takes ``freeze_ms`` or more, ``report`` (every 5 s, at most every 20 s) freezes
what is alive without collecting first (the full collection just ran: nearly all of it is
alive).

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
                 freeze_ms: float = 250.0, freeze_every_s: float = 20.0) -> None:
        self.warn_ms = warn_ms
        self.freeze_ms = freeze_ms
        self.freeze_every_s = freeze_every_s
        self._slow_full = False  # a full collection took freeze_ms or more since report
        self._last_freeze = float("-inf")
        self._schedule = schedule  # (delay_s, fn): the broker's ticker; None: never freeze
        self.settle_s = settle_s
        self._changes = 0  # hosted-set changes seen (a refreeze acts only on the latest)
        self.refreezes = 0
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

    def hosted_changed(self) -> None:
        """The metadata publisher created or dropped hosted partitions: refreeze once the
        hosted set has been unchanged for ``settle_s`` (any thread)."""
        if self._schedule is None:
            return
        self._changes += 1
        seen = self._changes
        self._schedule(self.settle_s, lambda: self._refreeze(seen))

    def _refreeze(self, seen: int) -> None:
        if seen != self._changes or not self._installed:
            return  # a later change reschedules; or the broker stopped
        start = time.perf_counter()
        gc.unfreeze()  # what a change dropped becomes collectable again ...
        gc.collect()  # ... and is collected (one full pause)
        self._freeze(start, "the hosted partitions changed")

    def _freeze(self, start: float, why: str) -> None:
        gc.freeze()  # what is alive is walked by no later collection
        self._last_freeze = time.monotonic()
        self._slow_full = False
        self.refreezes += 1  # (not gc.get_freeze_count(): it walks the frozen list)
        logger.info("the live objects frozen out of the collector's walks in {:.0f} ms ({})",
                    (time.perf_counter() - start) * 1000, why)

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
        }

    def report(self) -> None:
        """Log the slow collections seen since the last call (the ticker calls it)."""
        if (self._slow_full and self._schedule is not None and self._installed
                and time.monotonic() - self._last_freeze >= self.freeze_every_s):
            self._freeze(time.perf_counter(), f"a full collection took {self.freeze_ms:.0f} "
                         "ms or more: the long-lived objects grew")
        self._slow_full = False
        slow, self._slow = self._slow, []
        for generation, ms in slow:
            logger.warning("a garbage collection (generation {}) stopped the broker for {:.0f} ms",
                           generation, ms)
