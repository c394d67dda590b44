"""High watermarks a group coordinator does not host, for consumer group lag (docs/metrics.md).

A coordinator knows its groups' committed offsets and the high watermarks of the partitions
it hosts a replica of. For the others a scrape asks their leaders, as kafka-lag-exporter asks
a cluster: one ``ListOffsets`` (latest, read_uncommitted: the high watermark) per leader
broker over the broker's inter-broker endpoint, all sent at once, waited for together at
most ``timeout_ms``; answers are kept ``ttl_s`` so a slow or dead leader costs one timeout
per ``ttl_s``, not one per scrape, and a partition it stops answering for drops out of the
lag metric after that. Runs on the HTTP thread of a scrape, never on an actor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from rillet.transport import protocol as P

Key = tuple[str, int]


class RemoteHighWatermarks:
    def __init__(
        self,
        request: Callable[[str, Any, int], Future],
        address_of: Callable[[int], str | None],
        *,
        timeout_ms: int = 1000,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._request = request
        self._address_of = address_of
        self._timeout_ms = timeout_ms
        self._ttl_s = ttl_s
        self._clock = clock
        self._known: dict[Key, tuple[float, int]] = {}  # key -> (when answered, hw)
        self._asked: dict[int, float] = {}  # leader -> when last asked (answered or not)
        self._lock = threading.Lock()

    def get(self, wanted: Iterable[Key], image: Any) -> dict[Key, int]:
        """The high watermarks of ``wanted`` that a leader told within ``ttl_s`` (scrapes
        may run at once: one at a time here)."""
        with self._lock:
            return self._get(wanted, image)

    def _get(self, wanted: Iterable[Key], image: Any) -> dict[Key, int]:
        now = self._clock()
        wanted = set(wanted)
        by_leader: dict[int, list[Key]] = {}
        for key in wanted:
            seen = self._known.get(key)
            if seen is not None and now - seen[0] < self._ttl_s:
                continue
            topic = image.topics.get(key[0])
            p = topic.partitions.get(key[1]) if topic is not None else None
            if p is None or p.leader < 0:
                continue
            if now - self._asked.get(p.leader, -1e18) < self._ttl_s / 2:
                continue  # asked recently and got nothing: wait before asking again
            by_leader.setdefault(p.leader, []).append(key)
        sent = []
        for leader, keys in by_leader.items():
            address = self._address_of(leader)
            if address is None:
                continue
            self._asked[leader] = now
            topics: dict[str, list[P.ListOffsetsPartition]] = {}
            for topic, partition in sorted(keys):
                topics.setdefault(topic, []).append(
                    P.ListOffsetsPartition(partition=partition, timestamp=-1)
                )
            req = P.ListOffsetsRequest(topics=tuple(
                P.ListOffsetsTopic(name=t, partitions=tuple(ps)) for t, ps in topics.items()
            ))
            try:
                sent.append(self._request(address, req, self._timeout_ms))
            except Exception:  # noqa: BLE001 - a scrape must not fail for a lag figure
                continue
        deadline = now + self._timeout_ms / 1000
        for future in sent:
            try:
                response = future.result(timeout=max(0.0, deadline - self._clock()))
            except Exception:  # noqa: BLE001 - timed out or refused: no figure this time
                continue
            answered = self._clock()
            for t in getattr(response, "topics", None) or ():
                for p in t.partitions:
                    if p.error_code == 0 and p.offset >= 0:
                        self._known[(t.name, p.partition)] = (answered, p.offset)
        now = self._clock()
        for key in [k for k, (at, _) in self._known.items() if now - at >= 2 * self._ttl_s]:
            del self._known[key]  # forgotten (a deleted topic, a group gone)
        out: dict[Key, int] = {}
        for key in wanted:
            seen = self._known.get(key)
            if seen is not None and now - seen[0] < self._ttl_s:
                out[key] = seen[1]
        return out
