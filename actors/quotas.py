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
- ``begin()`` / ``end(principal)`` around it: the session's time on the request, for
  ``request_percentage``, charged when its answer goes out if that is at once (the answer
  carries the larger of the two throttles, as Kafka's), else when the session is done.

Only the client listener is throttled (brokers' own traffic never is).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

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
    """One connection's quota state: its client id, until when it is held, and the
    session time of the request in hand (``begin`` / ``end``, request_percentage)."""

    __slots__ = ("broker", "client_id", "hold_until", "request_until", "nanos", "_began",
                 "_request", "_lock")

    def __init__(self, broker: BrokerQuotas,
                 nanos: Callable[[], int] = time.perf_counter_ns) -> None:
        self.broker = broker
        self.client_id = ""
        self.hold_until = 0.0  # broker.clock() ms
        self.request_until = 0.0  # broker.clock() ms: the request_percentage throttle's end
        self.nanos = nanos
        self._began: int | None = None  # the request in hand started (nanos())
        self._request: object = None  # its token: which answer is its own
        self._lock = threading.Lock()

    def held_for(self) -> float:
        """Milliseconds this connection is still held (<= 0: not held)."""
        return self.hold_until - self.broker.clock()

    def _hold(self, ms: int) -> None:
        if ms > 0:
            with self._lock:
                self.hold_until = max(self.hold_until, self.broker.clock() + ms)

    def begin(self) -> None:
        """The session starts on a request: its time runs until its answer or ``end``. With
        no quota in the cluster nothing is measured (``end`` then charges nothing), as
        ``gate`` leaves such a request's answer alone."""
        if not self.broker.quotas():
            self._began = None
            return
        self._began = self.nanos()
        self._request = object()

    def end(self, principal: str) -> None:
        """The session is done with the request: its time is charged if its answer (sent
        at once) has not charged it already."""
        if self._began is not None:
            self._charge_now(principal)

    def _charge_now(self, principal: str) -> int:
        nanos = self.nanos() - self._began
        self._began = None
        return self.charge(principal, nanos)

    def _request_throttle(self, principal: str, request: object) -> int:
        """The request_percentage throttle an answer carries, as Kafka's (the max of it and
        the byte-rate one): an answer given while its request is in hand charges the
        session's time so far; a later one carries what is left of the throttle."""
        if self._began is not None and self._request is request:
            return self._charge_now(principal)
        return max(0, int(round(self.request_until - self.broker.clock())))

    def gate(self, req: object, principal: str, respond: Callable[[object], None]):
        """``respond`` wrapped so that the response carries the throttle and the
        connection is held for it."""
        if not self.broker.quotas():  # no quota in the cluster: nothing to measure
            return respond
        request = self._request

        def answer(r: object, byte_ms: int = 0) -> None:
            ms = max(byte_ms, self._request_throttle(principal, request))
            if ms > getattr(r, "throttle_time_ms", ms):
                r = replace(r, throttle_time_ms=ms)
            respond(r)

        if isinstance(req, P.ProduceRequest):
            self.client_id = req.client_id or self.client_id
            ms = self.broker.record(Q.PRODUCER_BYTE_RATE, user_of(principal), self.client_id,
                                    _produce_bytes(req))
            self._hold(ms)
            return lambda r: answer(r, ms if isinstance(r, P.ProduceResponse) else 0)
        if isinstance(req, P.FetchRequest) and req.replica_id < 0:
            self.client_id = req.client_id or self.client_id
            user = user_of(principal)

            def fetched(r: object) -> None:
                ms = 0
                if isinstance(r, P.FetchResponse):
                    ms = self.broker.record(Q.CONSUMER_BYTE_RATE, user, self.client_id,
                                            _fetch_bytes(r))
                    self._hold(ms)
                answer(r, ms)

            return fetched
        if isinstance(req, P.FetchRequest):  # a follower's: never throttled
            return respond
        return answer

    def charge(self, principal: str, nanos: int) -> int:
        """The session spent ``nanos`` on a request (request_percentage: percent of one
        thread per second, as Kafka's ``nanosToPercentage``); the throttle (ms)."""
        ms = self.broker.record(Q.REQUEST_PERCENTAGE, user_of(principal), self.client_id,
                                nanos * 100 / 1e9)
        if ms > 0:
            self._hold(ms)
            with self._lock:
                self.request_until = max(self.request_until, self.broker.clock() + ms)
        return ms


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


def made_once(ctx, attr: str, make: Callable[[], Any]) -> Any:
    """``ctx.<attr>``, made by ``make()`` on first use (once, under the context's lock)."""
    got = getattr(ctx, attr, None)
    if got is None:
        with ctx._count_lock:
            if getattr(ctx, attr, None) is None:
                setattr(ctx, attr, make())
            got = getattr(ctx, attr)
    return got


def broker_quotas(ctx) -> BrokerQuotas:
    """The broker's rates (made on first use), shared by every listener's connections: one
    budget per quota entity, whichever listener its clients use."""
    configs = ctx.broker_configs
    return made_once(ctx, "quotas", lambda: BrokerQuotas(
        lambda: ctx.image.client_quotas, num=int(configs.get("quota.window.num", 11)),
        window_s=int(configs.get("quota.window.size.seconds", 1))))


def session_parts(ctx, wake: Callable[[], None]) -> tuple[SessionThrottle, HeldRequests]:
    """A client session's throttle and hold queue (the broker's rates made on first use)."""
    throttle = SessionThrottle(broker_quotas(ctx))
    return throttle, HeldRequests(throttle, lambda d, fn: ctx.ticker.call_later(d, fn), wake)
