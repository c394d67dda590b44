"""The KAFKA listener's consumer fetch sessions (KIP-227): the thread-safe shell around the
pure cache (coordinator/kafka_fetch_sessions.py), one per broker process.

A Fetch request is classified when it arrives (``context``: full, incremental or a session
error) on a listener worker, and its answer filtered when the native fetch completes
(``answered``), on a transcoder thread; one lock serialises both. The clock and the session
ids (random, positive, as Kafka's) come from here, not from the core.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from typing import Any

from rillet.coordinator import kafka_fetch_sessions as S

SLOTS_KEY = "max.incremental.fetch.session.cache.slots"


class KafkaFetchSessions:
    """One broker's consumer fetch sessions; any thread."""

    def __init__(self, max_slots: int, clock, rng: random.Random | None = None) -> None:
        self.cache = S.FetchSessionCache(max_slots)
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    def context(self, session_id: int, epoch: int,
                requested: Iterable[tuple[S.Key, S.CachedPartition]],
                forgotten: Iterable[S.Key]) -> S.FetchContext:
        with self._lock:
            return self.cache.new_context(session_id, epoch, requested, forgotten, self._clock(),
                                          lambda: self._rng.randrange(1, S.MAX_EPOCH))

    def answered(self, ctx: S.FetchContext, key: S.Key, answer: S.PartitionAnswer) -> bool:
        """Whether ``key``'s answer goes into the response of ``ctx``'s fetch."""
        if ctx.session is None:
            return True
        with self._lock:
            return ctx.session.must_answer(key, answer, full=ctx.full)


_lock = threading.Lock()
_by_broker: dict[int, tuple[Any, KafkaFetchSessions]] = {}


def of(broker: Any) -> KafkaFetchSessions:
    """``broker``'s sessions (a BrokerContext; slots, so kept here by identity)."""
    entry = _by_broker.get(id(broker))
    if entry is not None and entry[0] is broker:
        return entry[1]
    with _lock:
        entry = _by_broker.get(id(broker))
        if entry is None or entry[0] is not broker:
            configs = getattr(broker, "broker_configs", None) or {}
            slots = int(configs.get(SLOTS_KEY, S.DEFAULT_SLOTS))
            clock = getattr(broker, "clock", None)
            if clock is None:
                import time

                def clock() -> int:
                    return int(time.monotonic() * 1000)
            entry = (broker, KafkaFetchSessions(slots, clock))
            _by_broker[id(broker)] = entry
        return entry[1]
