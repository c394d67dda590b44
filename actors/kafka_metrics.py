"""The KAFKA listener's metrics (docs/metrics.md, "Which listener").

The native listener counts its requests in ``actors/metrics.BrokerMetrics``; the KAFKA
listener (actors/kafka_listener.py) counts its own in a ``ListenerMetrics`` registered in
``BrokerMetrics.listeners`` under the listener's name, which ``BrokerCollector`` exports in
the same families with ``listener="KAFKA"`` (the native rows say ``listener="CLIENT"``):

- requests and their latency per API (Kafka's RequestMetrics name: Produce, Fetch,
  Metadata, JoinGroup...), from the request's dispatch to its response handed to the socket
  loop (acks=0 produces: when the appends are queued);
- error codes per API, found in the kio response itself (top level and nested entries, by a
  per-class plan of its ``error_code`` fields computed once), as Kafka's ``errorCounts``;
- connections: open, created, closed by the peer, closed for bad input; bytes received and
  sent on the socket (Kafka's socket-server-metrics ``incoming-byte-total`` /
  ``outgoing-byte-total``), bumped by the loop thread alone (plain integer adds, no lock);
- fetches parked in a long poll, added to the ``Fetch`` purgatory.

Bytes and records in/out per topic are not per listener (Kafka's BrokerTopicMetrics are
not): a Kafka produce is counted by the native produce path it goes through
(``ClientSession._produce``), a Kafka fetch by ``fetched`` below, both in the stored
(rillet) batch format, so the two listeners' figures add up and match the log's size.
"""

from __future__ import annotations

import bisect
import dataclasses
import threading
import time
import types
import typing
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily

from .metrics import BUCKETS, count_records

KAFKA = "KAFKA"


class ListenerMetrics:
    """One listener's request, error and connection figures; read at scrape time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.latency_sum: dict[str, float] = {}
        self.latency_buckets: dict[str, list[int]] = {}
        self.errors: dict[tuple[str, int], int] = {}
        self.throttle_ms: dict[str, int] = {}  # quotas: throttle_time_ms given, per API
        # the socket loop's own (one writer: plain ints)
        self.connection_count = 0
        self.connection_creation = 0
        self.connection_close_disconnected = 0
        self.connection_close_bad_input = 0
        self.incoming_bytes = 0
        self.outgoing_bytes = 0
        self._waiting: set[Any] = set()  # SessionStates of fetches in flight (long polls)

    # ------------------------------------------------------------------ request threads

    def responded(self, api: str, response: Any, seconds: float) -> None:
        """One request answered after ``seconds``; ``response`` (kio's, or None: no answer)
        is scanned for error codes."""
        codes: list[int] = []
        if response is not None:
            error_codes(response, codes)
        i = bisect.bisect_left(BUCKETS, seconds)  # first bound >= seconds; len: +Inf
        throttle = getattr(response, "throttle_time", None)
        throttle = int(throttle.total_seconds() * 1000) if hasattr(throttle, "total_seconds") else 0
        with self._lock:
            if throttle > 0:
                self.throttle_ms[api] = self.throttle_ms.get(api, 0) + throttle
            self.requests[api] = self.requests.get(api, 0) + 1
            self.latency_sum[api] = self.latency_sum.get(api, 0.0) + seconds
            buckets = self.latency_buckets.get(api)
            if buckets is None:
                buckets = self.latency_buckets[api] = [0] * (len(BUCKETS) + 1)
            buckets[i] += 1
            for c in codes:
                self.errors[(api, c)] = self.errors.get((api, c), 0) + 1

    def parking(self, state: Any) -> None:
        """A fetch is being routed with ``state`` (a SessionState): its parked long poll,
        if any, is in the Fetch purgatory until ``unparked``."""
        with self._lock:
            self._waiting.add(state)

    def unparked(self, state: Any) -> None:
        with self._lock:
            self._waiting.discard(state)

    def parked(self) -> int:
        with self._lock:
            return sum(len(s.parked) for s in self._waiting)

    def snapshot(self) -> dict[str, Any]:
        """The request part in ``BrokerMetrics.snapshot``'s shape."""
        with self._lock:
            return {
                "requests": dict(self.requests),
                "latency_sum": dict(self.latency_sum),
                "latency_buckets": {k: list(v) for k, v in self.latency_buckets.items()},
                "errors": dict(self.errors),
                "throttle_ms": dict(self.throttle_ms),
            }


def register(broker: Any, name: str = KAFKA) -> ListenerMetrics | None:
    """The listener's metrics, registered with the broker's (None: metrics off, or no
    broker context as in codec tests). Its parked fetches join the Fetch purgatory."""
    metrics = getattr(broker, "metrics", None)
    if metrics is None:
        return None
    mine = ListenerMetrics(name)
    metrics.listeners[name] = mine
    sources = metrics.sources
    before = sources.parked_fetches  # the native sessions' (metrics_sources.wire)

    def parked_fetches() -> int:
        return (before() if before is not None else 0) + mine.parked()

    sources.parked_fetches = parked_fetches
    return mine


def of(broker: Any, name: str = KAFKA) -> ListenerMetrics | None:
    metrics = getattr(broker, "metrics", None)
    return None if metrics is None else metrics.listeners.get(name)


def fetched(broker: Any, response: Any) -> None:
    """Bytes and records out per topic of a native FetchResponse a Kafka fetch is answered
    from (the batch headers' counts, a walk without decoding), as the native listener's."""
    metrics = getattr(broker, "metrics", None)
    if metrics is None:
        return
    out = []
    for t in getattr(response, "topics", None) or ():
        size = count = 0
        for p in t.partitions:
            records = p.records
            if records:
                size += len(records)
                count += count_records(records)
        if size:
            out.append((t.name, size, count))
    if out:
        metrics.sent_out(out)


_NAMES: dict[int, str] = {}


def api_name(api_key: int, body: Any) -> str:
    """Kafka's name of an API (its RequestMetrics ``request`` tag): kio's class name less
    ``Request``, once per key."""
    name = _NAMES.get(api_key)
    if name is None:
        name = _NAMES[api_key] = type(body).__name__.removesuffix("Request") or str(api_key)
    return name


# ----------------------------------------------------------------------------- error codes

_PLANS: dict[type, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}


def error_codes(entity: Any, out: list[int]) -> None:
    """Append every non-zero ``error_code`` of a kio entity and its nested entities."""
    cls = type(entity)
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _plan(cls)
    codes, many, one = plan
    for f in codes:
        c = getattr(entity, f)
        if c:
            out.append(int(c))
    for f in many:
        for item in getattr(entity, f) or ():
            error_codes(item, out)
    for f in one:
        item = getattr(entity, f)
        if item is not None:
            error_codes(item, out)


def _plan(cls: type) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(error code fields, tuple-of-entity fields, entity fields) of a kio dataclass."""
    if not dataclasses.is_dataclass(cls):
        return (), (), ()
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable hints: only the obvious field
        hints = {}
    codes, many, one = [], [], []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name, f.type)
        if f.name == "error_code" or f.name.endswith("_error_code"):
            codes.append(f.name)
        elif _holds_codes(_inner(hint, tuple)):
            many.append(f.name)
        elif _holds_codes(_optional(hint)):
            one.append(f.name)
    return tuple(codes), tuple(many), tuple(one)


def _holds_codes(hint: Any) -> bool:
    """An entity type with an error code somewhere inside (others are never walked)."""
    if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
        return False
    plan = _PLANS.get(hint)
    if plan is None:
        plan = _PLANS[hint] = _plan(hint)
    return any(plan)


def _inner(hint: Any, container: type) -> Any:
    if typing.get_origin(hint) is container:
        args = typing.get_args(hint)
        return args[0] if args else None
    return None


def _optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return hint


# ------------------------------------------------------------------------- scrape time

def families(metrics: Any) -> Iterator[Any]:
    """The per-listener socket figures that have no native counterpart (yet)."""
    listeners = sorted(metrics.listeners.items())
    for name, doc, attr in (
        ("rillet_listener_incoming_bytes", "Bytes received on the listener's sockets "
         "(socket-server-metrics incoming-byte-total)", "incoming_bytes"),
        ("rillet_listener_outgoing_bytes", "Bytes sent on the listener's sockets "
         "(socket-server-metrics outgoing-byte-total)", "outgoing_bytes"),
        ("rillet_connection_close_bad_input", "Connections the listener closed for bad "
         "input (a malformed frame, an unknown API version...)", "connection_close_bad_input"),
    ):
        family = CounterMetricFamily(name, doc, labels=["listener"])
        for listener, m in listeners:
            family.add_metric([listener], getattr(m, attr))
        yield family


def now() -> float:
    return time.perf_counter()
