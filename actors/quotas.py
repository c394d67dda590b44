"""Client quotas in the broker (docs/security.md, "Quotas"): measure, throttle, hold.

``BrokerQuotas`` (one per broker, any thread) keeps a token bucket (coordinator/quotas.py's
``Bucket``) per quota type and metric tags, and turns a client's usage into a throttle time
with the quotas of the current metadata image. ``SessionThrottle`` (one per client
connection) is what a ``ClientSession`` asks:

- ``gate(request, principal, respond)`` before a request is handled: a Produce's bytes are
  recorded at once; a consumer Fetch's bytes when its response goes out. The response
  carries ``throttle_time_ms`` and the connection is *held* for that long: as Kafka mutes
  the channel, the session keeps the connection's next requests queued (in order, in the
  session itself: no thread waits) until the throttle has passed;
- ``charge(principal, nanos)`` after it: the session's time on the request, for
  ``request_percentage`` (its throttle only holds the connection).

Only the client listener is throttled (brokers' own traffic never is).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from rillet.coordinator import quotas as Q
from rillet.transport import protocol as P

_PREFIX = "User:"


def user_of(principal: str) -> str:
    """The quota user of a principal: ``alice`` for ``User:alice``."""
    return principal[len(_PREFIX):] if principal.startswith(_PREFIX) else principal


class BrokerQuotas:
    """The broker's quota buckets (thread-safe). ``quotas()``: the image's current quotas;
    ``clock()``: milliseconds (monotonic enough for windows of a second)."""

    def __init__(self, quotas: Callable[[], Q.Quotas], *, num: int = 11, window_s: int = 1,
                 clock: Callable[[], float] = lambda: time.monotonic() * 1000) -> None:
        self.quotas = quotas
        self.num = num
        self.window_ms = window_s * 1000
        self.clock = clock
        self._buckets: dict[tuple[str, str, str], Q.Bucket] = {}
        self._lock = threading.Lock()
        self.throttled_ms_total = 0

    def record(self, key: str, user: str, client_id: str, value: float) -> int:
        """Record ``value`` of quota ``key`` for this client; the throttle in ms (0: none)."""
        quotas = self.quotas()
        if not quotas:
            return 0
        applied = Q.resolve(quotas, user, client_id, key)
        if applied is None:
            return 0
        now = self.clock()
        cap = self.window_ms if key == Q.REQUEST_PERCENTAGE else None  # as Kafka's
        with self._lock:
            tags = (key, applied.user_tag, applied.client_tag)
            bucket = self._buckets.get(tags)
            if bucket is None:
                bucket = self._buckets[tags] = Q.Bucket(num=self.num, window_ms=self.window_ms)
            ms = bucket.record(value, applied.bound, now, cap)
            self.throttled_ms_total += ms
            return ms

    def unrecord(self, key: str, user: str, client_id: str, value: float) -> None:
        """Take back ``value`` recorded for this client (Kafka's ``unrecordQuotaSensor``: a
        throttled Fetch is answered empty, so its bytes were never sent)."""
        quotas = self.quotas()
        applied = Q.resolve(quotas, user, client_id, key) if quotas else None
        if applied is None:
            return
        with self._lock:
            bucket = self._buckets.get((key, applied.user_tag, applied.client_tag))
            if bucket is not None:
                bucket.record(-value, applied.bound, self.clock())

    def tokens(self, key: str, user_tag: str, client_tag: str) -> float | None:
        """What is left in the bucket under these tags now (None: never used)."""
        with self._lock:
            bucket = self._buckets.get((key, user_tag, client_tag))
            return None if bucket is None else bucket.bucket.tokens


def _produce_bytes(req: P.ProduceRequest) -> int:
    return sum(len(p.records) for t in req.topics for p in t.partitions)


def _fetch_bytes(resp: P.FetchResponse) -> int:
    return sum(len(p.records) for t in resp.topics for p in t.partitions)


class SessionThrottle:
    """One connection's quota state: its client id and until when it is held."""

    __slots__ = ("broker", "client_id", "hold_until", "_lock")

    def __init__(self, broker: BrokerQuotas) -> None:
        self.broker = broker
        self.client_id = ""
        self.hold_until = 0.0  # broker.clock() ms
        self._lock = threading.Lock()

    def held_for(self) -> float:
        """Milliseconds this connection is still held (<= 0: not held)."""
        return self.hold_until - self.broker.clock()

    def _hold(self, ms: int) -> None:
        if ms > 0:
            with self._lock:
                self.hold_until = max(self.hold_until, self.broker.clock() + ms)

    def gate(self, req: object, principal: str, respond: Callable[[object], None]):
        """``respond`` wrapped so that the response carries the throttle and the
        connection is held for it."""
        if not self.broker.quotas():  # no quota in the cluster: nothing to measure
            return respond
        if isinstance(req, P.ProduceRequest):
            self.client_id = req.client_id or self.client_id
            ms = self.broker.record(Q.PRODUCER_BYTE_RATE, user_of(principal), self.client_id,
                                    _produce_bytes(req))
            self._hold(ms)
            if not ms:
                return respond
            return lambda r: respond(
                replace(r, throttle_time_ms=ms) if isinstance(r, P.ProduceResponse) else r)
        if isinstance(req, P.FetchRequest) and req.replica_id < 0:
            self.client_id = req.client_id or self.client_id
            user = user_of(principal)

            def fetched(r: object) -> None:
                if isinstance(r, P.FetchResponse):
                    ms = self.broker.record(Q.CONSUMER_BYTE_RATE, user, self.client_id,
                                            _fetch_bytes(r))
                    if ms:
                        self._hold(ms)
                        r = replace(r, throttle_time_ms=ms)
                respond(r)

            return fetched
        return respond

    def charge(self, principal: str, nanos: int) -> None:
        """The session spent ``nanos`` on a request (request_percentage: percent of one
        thread per second, as Kafka's ``nanosToPercentage``)."""
        ms = self.broker.record(Q.REQUEST_PERCENTAGE, user_of(principal), self.client_id,
                                nanos * 100 / 1e9)
        self._hold(ms)


RESUME = object()  # the session's own message: a hold has passed


class HeldRequests:
    """A held connection's requests, queued in arrival order in its session (no thread
    waits): ``hold(message)`` queues it if the connection is held or others wait already;
    ``resume(handle)`` (on RESUME) handles the queue while the hold allows."""

    __slots__ = ("throttle", "call_later", "wake", "queue", "_timer")

    def __init__(self, throttle: SessionThrottle, call_later, wake: Callable[[], None]) -> None:
        self.throttle = throttle
        self.call_later = call_later  # (delay_s, fn) -> timer with cancel()
        self.wake = wake
        self.queue: deque | None = None  # made on the first hold: idle sessions stay small
        self._timer = None

    def hold(self, message: object) -> bool:
        if not self.queue and self.throttle.held_for() <= 0:
            return False
        if self.queue is None:
            self.queue = deque()
        self.queue.append(message)
        self._schedule()
        return True

    def _schedule(self) -> None:
        if self._timer is None:
            self._timer = self.call_later(max(self.throttle.held_for(), 0) / 1000, self._fire)

    def _fire(self) -> None:
        try:
            self.wake()
        except Exception:  # noqa: BLE001 - the session stopped meanwhile: nothing to resume
            pass

    def resume(self, handle: Callable[[object], None]) -> None:
        self._timer = None
        while self.queue and self.throttle.held_for() <= 0:
            handle(self.queue.popleft())
        if self.queue:
            self._schedule()

    def drop(self) -> list:
        """The session stops: what was still queued (its leases are the caller's)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        out, self.queue = list(self.queue or ()), None
        return out


def broker_quotas(ctx) -> BrokerQuotas:
    """The broker's rates (made on first use), shared by every listener's connections: one
    budget per quota entity, whichever listener its clients use."""
    broker = ctx.quotas
    if broker is None:
        with ctx._count_lock:
            if ctx.quotas is None:
                configs = ctx.broker_configs
                ctx.quotas = BrokerQuotas(
                    lambda: ctx.image.client_quotas,
                    num=int(configs.get("quota.window.num", 11)),
                    window_s=int(configs.get("quota.window.size.seconds", 1)))
            broker = ctx.quotas
    return broker


def session_parts(ctx, wake: Callable[[], None]) -> tuple[SessionThrottle, HeldRequests]:
    """A client session's throttle and hold queue (the broker's rates made on first use)."""
    throttle = SessionThrottle(broker_quotas(ctx))
    return throttle, HeldRequests(throttle, lambda d, fn: ctx.ticker.call_later(d, fn), wake)
