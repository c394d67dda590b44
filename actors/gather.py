"""Per-request collectors: partition actors answer into these, the last answer sends the reply.

A request touching several partitions is fanned out by the ClientSession with ``tell`` (never
``ask``); each partition calls back into the collector from its own thread, so collectors are
thread-safe and send the response exactly once.

``FetchGather`` implements the long poll: the first round answers immediately; partitions
that had nothing park a waiter and call ``on_data`` when records arrive; the response goes out
as soon as ``min_bytes`` are available in total, or when ``max_wait_ms`` elapses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from rillet.transport import protocol as P

Key = tuple[str, int]


def _group(order: Sequence[Key], results: dict[Key, object], topic_cls, name_field="name"):
    topics: dict[str, list] = {}
    for key in order:
        topics.setdefault(key[0], []).append(results[key])
    return tuple(topic_cls(**{name_field: t, "partitions": tuple(ps)}) for t, ps in topics.items())


class _Gather:
    def __init__(self, order: Sequence[Key], send: Callable[[object], None]) -> None:
        self._order = list(dict.fromkeys(order))
        self._send = send
        self._results: dict[Key, object] = {}
        self._lock = threading.Lock()
        self._done = False

    def put(self, key: Key, result: object) -> None:
        with self._lock:
            if self._done:
                return
            self._results[key] = result
            if len(self._results) < len(self._order):
                return
            self._done = True
        self._send(self._build())

    def _build(self) -> object:
        raise NotImplementedError


class ProduceGather(_Gather):
    def _build(self) -> P.ProduceResponse:
        return P.ProduceResponse(topics=_group(self._order, self._results, P.ProduceTopicResponse))


class ListOffsetsGather(_Gather):
    def _build(self) -> P.ListOffsetsResponse:
        return P.ListOffsetsResponse(
            topics=_group(self._order, self._results, P.ListOffsetsTopicResponse)
        )


class EpochGather(_Gather):
    def _build(self) -> P.OffsetForLeaderEpochResponse:
        return P.OffsetForLeaderEpochResponse(
            topics=_group(self._order, self._results, P.OffsetForLeaderEpochTopicResponse)
        )


class FetchGather:
    """Collects ``FetchPartitionResponse``s; see the module docstring for the long poll."""

    def __init__(
        self,
        order: Sequence[Key],
        *,
        min_bytes: int,
        max_bytes: int,
        max_wait_ms: int,
        send: Callable[[P.FetchResponse], None],
        call_later: Callable[[float, Callable[[], None]], object],
    ) -> None:
        self._order = list(dict.fromkeys(order))
        self._min_bytes = max(min_bytes, 1)
        self._max_bytes = max_bytes
        self._max_wait_ms = max_wait_ms
        self._send = send
        self._call_later = call_later
        self._results: dict[Key, P.FetchPartitionResponse] = {}
        self._first_round = 0
        self._bytes = 0
        self._lock = threading.Lock()
        self._done = False
        self._timer = None

    @property
    def waiting(self) -> bool:
        """Whether partitions with nothing to return should park a waiter."""
        return self._max_wait_ms > 0

    def immediate(self, key: Key, result: P.FetchPartitionResponse) -> None:
        """A partition's first-round answer (possibly empty)."""
        with self._lock:
            if self._done:
                return
            self._first_round += 1
            self._add(key, result)
            if self._first_round < len(self._order):
                return
            if self._bytes < self._min_bytes and self.waiting:
                self._timer = self._call_later(self._max_wait_ms / 1000, self.expire)
                return
            self._done = True
        self._finish()

    def on_data(self, key: Key, result: P.FetchPartitionResponse, force: bool = False) -> bool:
        """A parked partition got records. Returns False once the response is gone (the
        partition then drops its waiter). ``force``: answer now even below ``min_bytes``
        (a follower fetch learning a new high watermark)."""
        with self._lock:
            if self._done:
                return False
            self._add(key, result)
            if self._first_round < len(self._order) or (
                self._bytes < self._min_bytes and not force
            ):
                return True
            self._done = True
        self._finish()
        return True

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._finish()

    @property
    def done(self) -> bool:
        return self._done

    def _add(self, key: Key, result: P.FetchPartitionResponse) -> None:
        old = self._results.get(key)
        if old is not None:
            self._bytes -= len(old.records)
        self._results[key] = result
        self._bytes += len(result.records)

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # Kafka's response max_bytes: whole partitions until the cap, but never nothing.
        results = dict(self._results)
        total = 0
        for key in self._order:
            r = results.get(key)
            if r is None:  # ended before this partition's first answer (its session stopped)
                r = results[key] = P.FetchPartitionResponse(partition=key[1])
            size = len(r.records)
            if size and total and total + size > self._max_bytes:
                results[key] = replace(r, records=b"")
            else:
                total += size
        self._send(P.FetchResponse(topics=_group(self._order, results, P.FetchTopicResponse)))
