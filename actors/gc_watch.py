"""Python's cyclic garbage collector as the broker sees it: every collection's pause.

A collection stops every thread of the broker (it runs holding the GIL) for as long as it
walks the objects of its generations; a full (generation 2) collection walks every tracked
object, and a broker hosting thousands of partitions holds millions. A pause longer than the
Raft fetch timeout costs the quorum its leader, one longer than a session timeout fences the
broker. ``GcWatch`` times each collection (``gc.callbacks``) and reports, in the broker's
counters (BrokerCounters, ``rillet broker counters``): ``gc_collections_gen0/1/2``,
``gc_pause_ms_total`` and ``gc_pause_ms_max``; a pause of ``warn_ms`` or more is also logged.

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
    def __init__(self, warn_ms: float = 500.0) -> None:
        self.warn_ms = warn_ms
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

    def values(self) -> dict[str, int]:
        """The counters (any thread)."""
        gen0, gen1, gen2 = self.collections
        return {
            "gc_collections_gen0": gen0,
            "gc_collections_gen1": gen1,
            "gc_collections_gen2": gen2,
            "gc_pause_ms_total": round(self.pause_ms_total),
            "gc_pause_ms_max": round(self.pause_ms_max),
        }

    def report(self) -> None:
        """Log the slow collections seen since the last call (the ticker calls it)."""
        slow, self._slow = self._slow, []
        for generation, ms in slow:
            logger.warning("a garbage collection (generation {}) stopped the broker for {:.0f} ms",
                           generation, ms)
