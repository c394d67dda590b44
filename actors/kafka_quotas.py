"""Client quotas on the KAFKA listener (docs/security.md, "Quotas"), as Kafka's broker has them.

A Kafka connection's quota entity is its principal's user (``User:NAME`` after SASL,
``User:ANONYMOUS`` on a PLAINTEXT listener) and the request header's ``client.id``; its
usage goes into the broker's one set of rates (actors/quotas.py ``BrokerQuotas``), the
same the native listener's sessions use: one budget per entity, whichever listener.

- Produce: the request's size is recorded when it arrives (Kafka records the request
  size); the answer carries the throttle in ``throttle_time_ms``.
- Fetch (a consumer's): the answer's record bytes are recorded when it is ready; over the
  quota they are taken back and the answer goes out *empty* at once with the throttle,
  as Kafka's ``getThrottledResponse``: the consumer fetches the same offsets again later.
- Request time (``request_percentage``): the handler's own time, charged after it returns;
  its throttle rides on the answer if that goes out after (the larger of the two, as
  Kafka's ``throttle_time_ms``), and mutes the connection in any case.

The listener then *mutes* the connection (actors/kafka_listener.py): it handles none of its
next requests before ``throttle_time_ms`` has passed, whatever the client does (KIP-219:
the client is expected to wait too; librdkafka and the Java client do).
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

from kio.static.primitive import i32Timedelta
from rillet.coordinator import quotas as Q

from .authorize import ANONYMOUS
from .quotas import broker_quotas, user_of

_ZERO = i32Timedelta.parse(timedelta(0))
_MAX_MS = 2**31 - 1


def throttle_time(ms: int):
    """kio's ``throttle_time`` field for ``ms`` milliseconds."""
    return _ZERO if ms <= 0 else i32Timedelta.parse(timedelta(milliseconds=min(ms, _MAX_MS)))


def with_throttle(response: Any, ms: int) -> Any:
    """``response`` carrying at least ``ms`` in ``throttle_time_ms`` (Kafka answers with the
    larger of the byte-rate and the request_percentage throttles); unchanged if it has no
    such field or carries more already."""
    if ms <= 0 or not isinstance(getattr(response, "throttle_time", None), timedelta):
        return response
    if throttle_ms_of(response) >= ms:
        return response
    return dataclasses.replace(response, throttle_time=throttle_time(ms))


def throttle_ms_of(response: Any) -> int:
    """The ``throttle_time_ms`` a kio response carries (0: none, or no such field)."""
    t = getattr(response, "throttle_time", None)
    if isinstance(t, timedelta):
        return max(0, int(t.total_seconds() * 1000))
    return 0


def who(call: Any) -> tuple[str, str]:
    """(quota user, client id) of the call's connection."""
    session = call.session
    principal = getattr(session, "principal", None) or ANONYMOUS
    return user_of(principal), call.request.client_id or ""


def _rates(call: Any):
    """The broker's rates, or None while no quota is set (nothing to measure)."""
    ctx = call.broker
    if not getattr(getattr(ctx, "image", None), "client_quotas", None):
        return None
    return broker_quotas(ctx)


def _record(call: Any, key: str, value: float) -> int:
    rates = _rates(call)
    return 0 if rates is None else rates.record(key, *who(call), value)


def produced(call: Any) -> int:
    """Record a Produce's size; the throttle (ms) its answer carries."""
    return _record(call, Q.PRODUCER_BYTE_RATE, call.request.size)


def fetched(call: Any, nbytes: int) -> int:
    """Record a consumer Fetch answer of ``nbytes`` record bytes; over the quota they are
    taken back (the answer will go out empty) and the throttle (ms) is returned."""
    rates = _rates(call)
    if rates is None:
        return 0
    ms = rates.record(Q.CONSUMER_BYTE_RATE, *who(call), nbytes)
    if ms > 0 and nbytes > 0:
        rates.unrecord(Q.CONSUMER_BYTE_RATE, *who(call), nbytes)
    return ms


def fetch_max_bytes(call: Any, max_bytes: int) -> int:
    """A consumer Fetch's ``max_bytes`` capped at what its consumer_byte_rate allows in
    the quota's windows, ``quota x (num - 1) x window`` (Kafka's
    ``getMaxValueInQuotaWindow``): an answer larger than that would be throttled whole."""
    rates = _rates(call)
    if rates is None:
        return max_bytes
    applied = Q.resolve(rates.quotas(), *who(call), Q.CONSUMER_BYTE_RATE)
    if applied is None:
        return max_bytes
    cap = int(applied.bound * (rates.num - 1) * rates.window_ms / 1000)
    return max(1, min(max_bytes, cap))


def charged(call: Any, nanos: int) -> int:
    """The handler spent ``nanos`` on the call (request_percentage: percent of one thread
    per second, Kafka's ``nanosToPercentage``); the throttle (ms) that mutes the
    connection, capped at one window as Kafka's."""
    return _record(call, Q.REQUEST_PERCENTAGE, nanos * 100 / 1e9)


class RequestThrottle:
    """A call's request_percentage throttle for its answer: ``charge(nanos)`` once the
    handler returns; ``ms()`` what is left of it when the answer goes out (0 before the
    charge: an answer sent from another thread before the handler returned only mutes)."""

    __slots__ = ("call", "until")

    def __init__(self, call: Any) -> None:
        self.call = call
        self.until = 0.0  # time.monotonic() of the throttle's end

    def charge(self, nanos: int) -> int:
        ms = charged(self.call, nanos)
        if ms > 0:
            self.until = time.monotonic() + ms / 1000
        return ms

    def ms(self) -> int:
        return max(0, int(round((self.until - time.monotonic()) * 1000))) if self.until else 0


def mutations(call: Any, api_key: int, native: Any) -> tuple[Any, dict, Any]:
    """controller_mutation_rate (actors/mutation_quota.py) for a Kafka CreateTopics,
    CreatePartitions or DeleteTopics: (the native request less the refused topics, or None;
    the refused topics: name -> (THROTTLING_QUOTA_EXCEEDED, message); kio's throttle_time).
    Strict from the versions Kafka makes strict, permissive before."""
    from . import mutation_quota

    strict = call.request.api_version >= mutation_quota.STRICT_FROM[api_key]
    principal = getattr(call.session, "principal", None) or ANONYMOUS
    refused, ms = mutation_quota.admit(call.broker, principal, call.request.client_id or "",
                                       native, strict)
    kept = mutation_quota.without(native, refused) if refused else native
    return kept, refused, throttle_time(ms)
